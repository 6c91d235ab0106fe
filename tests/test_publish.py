"""Publishing at an embargo time (the dispatcher's ``publish_due`` and a send follow-up):
an alert that can no longer reach anyone is not left ``sending`` with nothing to send."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.app import App, open_app
from alerts.compose import approval
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.errors import Conflict
from alerts.delivery.publish import publish_due, schedule
from alerts.followups.add import add_followup
from alerts.followups.fire import fire
from alerts.store.models import Alert, AuditEntry, Contact, Delivery, Followup
from channels.memory import MemoryChannel
from tests.delivery_cases import staff
from tests.factories import RENDERER, add_contacts, approved_alert, make_users

HOUR = timedelta(hours=1)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    """An App on the test's database; nothing is sent in these tests."""
    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={"email": MemoryChannel(channel_name="email")}) as opened:
        yield opened


async def _scheduled_to_the_public(
    sessions: async_sessionmaker[AsyncSession], *, followup: bool
) -> tuple[int, int | None]:
    """An alert to public contacts only, with consent, scheduled in an hour (by a follow-up or not)."""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, kind="public")
        alert = await approved_alert(session, author=officer, reviewer=reviewer, kinds=("public",))
        await approval.record_consent(session, alert, user=reviewer, scope="public", now=now)
        followup_id = None
        if followup:
            f = await add_followup(
                session,
                alert=alert,
                user=officer,
                kind="send",
                due_at=now + HOUR,
                now=now,
                validate_case=RENDERER.validate_case,
            )
            followup_id = f.id
        else:
            await schedule(session, alert, at=now + HOUR, now=now, user=officer)
        return alert.id, followup_id


async def test_a_scheduled_alert_whose_public_audience_lost_consent_is_not_left_sending(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id, _ = await _scheduled_to_the_public(sessions, followup=False)
    async with sessions.begin() as session:  # consent withdrawn while it waited
        alert = await session.get(Alert, alert_id)
        _, reviewer = await staff(session)
        assert alert is not None
        await approval.record_consent(session, alert, user=reviewer, scope="restricted", now=utcnow())
    async with sessions.begin() as session:
        assert await publish_due(session, now=utcnow() + 2 * HOUR) == []
    async with sessions() as session:
        alert = await session.get(Alert, alert_id)
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "alert.schedule_failed"))
        ).scalar_one()
        deliveries = (await session.execute(select(Delivery.id))).all()
    assert alert is not None and alert.status == "approved" and deliveries == []
    assert "consent" in entry.details["reason"]


async def test_a_scheduled_alert_whose_audience_left_is_refused_with_the_reason(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id, _ = await _scheduled_to_the_public(sessions, followup=False)
    async with sessions.begin() as session:
        await session.execute(update(Contact).values(status="unsubscribed"))
    async with sessions.begin() as session:
        assert await publish_due(session, now=utcnow() + 2 * HOUR) == []
    async with sessions() as session:
        alert = await session.get(Alert, alert_id)
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "alert.schedule_failed"))
        ).scalar_one()
    assert alert is not None and alert.status == "approved"
    assert entry.details["reason"].startswith(f"alert {alert_id} has no recipients: 2 contacts match")


async def test_a_send_followup_whose_audience_left_records_why_and_publishes_nothing(app: App) -> None:
    alert_id, followup_id = await _scheduled_to_the_public(app.sessions, followup=True)
    assert followup_id is not None
    async with app.sessions.begin() as session:
        await session.execute(update(Contact).values(status="unsubscribed"))
    fired = await fire(app, followup_id, utcnow() + 2 * HOUR)
    assert fired is not None
    async with app.sessions() as session:
        alert = await session.get(Alert, alert_id)
        result = await session.scalar(select(Followup.result).where(Followup.id == followup_id))
        deliveries = (await session.execute(select(Delivery.id))).all()
    assert alert is not None and alert.status != "sending" and deliveries == []
    assert result is not None and f"alert {alert_id} has no recipients" in result


async def test_a_scheduled_alert_published_when_due_keeps_the_time_it_was_scheduled_for(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id, _ = await _scheduled_to_the_public(sessions, followup=False)
    async with sessions() as session:
        scheduled_for = await session.scalar(select(Alert.send_at).where(Alert.id == alert_id))
    assert scheduled_for is not None
    async with sessions.begin() as session:
        assert await publish_due(session, now=utcnow() + 2 * HOUR) == [alert_id]
    async with sessions() as session:
        row = (await session.execute(select(Alert.status, Alert.send_at).where(Alert.id == alert_id))).one()
        deliveries = (await session.execute(select(Delivery.id))).all()
    assert (row.status, row.send_at, len(deliveries)) == ("sending", scheduled_for, 2)


async def test_a_scheduled_alert_that_could_not_go_says_why_in_the_alerts_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The officer's alert page lists the alert's audit history: the failure is there."""
    from alerts.store import audit

    alert_id, _ = await _scheduled_to_the_public(sessions, followup=False)
    async with sessions.begin() as session:
        await session.execute(update(Contact).values(status="unsubscribed"))
    async with sessions.begin() as session:
        assert await publish_due(session, now=utcnow() + 2 * HOUR) == []
    async with sessions() as session:
        history = await audit.list_entries(session, object_type="alert", object_id=alert_id)
    failed = [e for e in history if e.action == "alert.schedule_failed"]
    assert len(failed) == 1
    assert failed[0].details["reason"].startswith(f"alert {alert_id} has no recipients: ")


async def test_publishing_what_is_due_publishes_each_due_alert_and_leaves_later_ones_scheduled(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two alerts due and one scheduled for later: the dispatcher's pass publishes both due ones
    and leaves the later one scheduled for its own time."""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        ids = []
        for at in (now + HOUR, now + HOUR, now + 3 * HOUR):
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            await schedule(session, alert, at=at, now=now, user=officer)
            ids.append(alert.id)
    first, second, later = ids
    async with sessions.begin() as session:
        assert sorted(await publish_due(session, now=now + 2 * HOUR)) == [first, second]
    async with sessions() as session:
        rows = (await session.execute(select(Alert.id, Alert.status, Alert.send_at).order_by(Alert.id))).all()
        queued = (
            await session.execute(select(Delivery.alert_id, func.count()).group_by(Delivery.alert_id))
        ).all()
    assert [(r.id, r.status) for r in rows] == [(first, "sending"), (second, "sending"), (later, "scheduled")]
    assert rows[2].send_at == now + 3 * HOUR
    assert sorted(queued) == [(first, 2), (second, 2)]


async def test_publishing_a_due_alert_logs_how_late_it_went_and_how_many_deliveries_it_made(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """The operator's record of an embargo kept: one INFO line per alert, with its lateness."""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await schedule(session, alert, at=now + HOUR, now=now, user=officer)
        alert_id = alert.id
    caplog.set_level(logging.INFO, logger="alerts.delivery.publish")
    async with sessions.begin() as session:
        assert await publish_due(session, now=now + HOUR + timedelta(seconds=90)) == [alert_id]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "alerts.delivery.publish"] == [
        ("INFO", f"alert {alert_id} published at its scheduled time (90.0 s late): 2 deliveries")
    ]


async def test_a_send_time_of_this_very_moment_is_refused_as_in_the_past(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An embargo time must be after now: at now itself the alert is not scheduled (it would
    only wait for the dispatcher's next pass); it stays approved, with no send time."""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        alert_id = alert.id
        with pytest.raises(Conflict) as info:
            await schedule(session, alert, at=now, now=now, user=officer)
    assert info.value.message == f"alert {alert_id}: the send time {now.isoformat()} is in the past."
    async with sessions() as session:
        row = (await session.execute(select(Alert.status, Alert.send_at).where(Alert.id == alert_id))).one()
    assert (row.status, row.send_at) == ("approved", None)


async def test_a_due_alert_another_process_takes_first_does_not_keep_the_next_one_waiting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two alerts due; while the pass runs, another process (an officer's "send now" elsewhere)
    holds the first and takes it out of the schedule: the pass loses that one and still publishes
    the second. (PostgreSQL: the pass reads both as due and waits on the first row; SQLite: the
    pass waits to begin, then finds the second only.)"""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        ids = []
        for _ in range(2):
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            await schedule(session, alert, at=now + HOUR, now=now, user=officer)
            ids.append(alert.id)
    taken, second = ids

    async def due_pass() -> list[int]:
        async with sessions.begin() as session:
            return await publish_due(session, now=now + 2 * HOUR)

    async with sessions.begin() as other:
        await other.execute(update(Alert).where(Alert.id == taken).values(status="approved", send_at=None))
        running = asyncio.create_task(due_pass())
        await asyncio.sleep(1.0)  # the pass reads the schedule and waits for the row (or the lock)
        assert not running.done()
    assert await asyncio.wait_for(running, 30) == [second]
    async with sessions() as session:
        rows = (await session.execute(select(Alert.id, Alert.status).order_by(Alert.id))).all()
        queued = (await session.execute(select(Delivery.alert_id).distinct())).scalars().all()
    assert [tuple(r) for r in rows] == [(taken, "approved"), (second, "sending")]
    assert queued == [second]


async def test_only_an_approved_alert_is_published_and_publishing_again_keeps_its_first_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A draft is refused with nothing queued; a sending alert published again (a list grew)
    queues the newcomers only and keeps the time it was first published."""
    from alerts.delivery.publish import publish

    first = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        alert_id = alert.id
        await session.execute(update(Alert).where(Alert.id == alert_id).values(status="draft"))
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        with pytest.raises(Conflict, match=f"^alert {alert_id} is draft; only an approved alert can be sent"):
            await publish(session, alert, now=first)
        assert (await session.execute(select(func.count()).select_from(Delivery))).scalar_one() == 0
        await session.execute(update(Alert).where(Alert.id == alert_id).values(status="approved"))
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id, populate_existing=True)
        assert alert is not None
        assert await publish(session, alert, now=first) == 2
    async with sessions.begin() as session:
        await add_contacts(session, 1, start=10)
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert await publish(session, alert, now=first + HOUR) == 1
    async with sessions() as session:
        row = (
            await session.execute(select(Alert.status, Alert.published_at).where(Alert.id == alert_id))
        ).one()
        count = (await session.execute(select(func.count()).select_from(Delivery))).scalar_one()
    assert (row.status, row.published_at, count) == ("sending", first, 3)


async def test_a_scheduled_alert_is_due_at_its_very_send_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await schedule(session, alert, at=now + HOUR, now=now, user=officer)
        alert_id = alert.id
    async with sessions.begin() as session:
        assert await publish_due(session, now=now + HOUR - timedelta(microseconds=1)) == []
    async with sessions.begin() as session:
        assert await publish_due(session, now=now + HOUR) == [alert_id]
