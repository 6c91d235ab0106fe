"""``alerts prune --older-than``: the deliveries and events of long-finished alerts go, their
counts stay the same on the alert's page, the dashboard, ``alert status --json`` and the API;
nothing of a recent alert, an open case or an alert with a follow-up due is touched."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from alerts.accounts.users import new_token
from alerts.actions import retention
from alerts.cli.parser import main
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.errors import PermissionDenied, ValidationError
from alerts.core.states import EventType
from alerts.delivery import tracking
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.store.models import Alert, AuditEntry, Delivery, DeliveryEvent, Followup, User
from channels.memory import MemoryChannel
from tests.factories import RENDERER, add_contacts, approved_alert
from tests.web import make_staff, running, signed_in

DAY = timedelta(days=1)


async def _sent_alert(app: Any, officer: User, reviewer: User, *, n: int = 3) -> int:
    async with app.sessions.begin() as session:
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())
        alert_id = alert.id
    email = MemoryChannel(channel_name="email")
    dispatcher = Dispatcher(
        sessions=app.sessions,
        channels={"email": email},
        builder=MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test"),
        settings=DispatcherSettings(flush_interval=0.01),
        alert_id=alert_id,
    )
    await dispatcher.run_until_done(alert_id, timeout=30)
    return alert_id


async def _age(app: Any, alert_id: int, *, days: int, closed: bool) -> None:
    at = utcnow() - days * DAY
    async with app.sessions.begin() as session:
        await session.execute(
            update(Alert)
            .where(Alert.id == alert_id)
            .values(status="closed" if closed else "sent", completed_at=at, closed_at=at if closed else None)
        )


async def _rows(app: Any, alert_id: int) -> tuple[int, int]:
    async with app.sessions() as session:
        d = await session.scalar(select(func.count()).where(Delivery.alert_id == alert_id))
        e = await session.scalar(select(func.count()).where(DeliveryEvent.alert_id == alert_id))
    return int(d or 0), int(e or 0)


def _page_counts(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-cell="([^"]+)">(\d+)<', page))


async def _views(app: Any, base: str, token: str, client: Any, alert_id: int, capsys: Any) -> dict[str, Any]:
    """The alert's counts as every face shows them: API, the alert's page, the dashboard's
    totals, ``alert status --json`` (the CLI, in a thread: it runs its own event loop)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats") as r:
            assert r.status == 200
            api = await r.json()
    status, page = await client.get(f"/office/alerts/{alert_id}")
    assert status == 200
    async with app.sessions() as session:
        dashboard = await tracking.totals_by_alert(session, [alert_id])
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["alert", "status", str(alert_id), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    return {"api": api, "page": _page_counts(page), "cli": cli, "dashboard": dashboard}


async def test_prune_keeps_the_counts_and_touches_nothing_recent(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ALERTS_CONFIG", raising=False)
    monkeypatch.setenv("ALERTS_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    async with running(db_url) as (app, base):
        staff = await make_staff(app)
        async with app.sessions.begin() as session:
            officer = await session.get(User, staff["officer"])
            reviewer = await session.get(User, staff["reviewer"])
            admin = await session.get(User, staff["admin"])
            await add_contacts(session, 3)
            assert admin is not None
            token = await new_token(session, admin, now=utcnow())
        assert officer is not None and reviewer is not None
        old = await _sent_alert(app, officer, reviewer)
        recent = await _sent_alert(app, officer, reviewer)
        open_case = await _sent_alert(app, officer, reviewer)
        with_followup = await _sent_alert(app, officer, reviewer)
        await _age(app, old, days=200, closed=True)
        await _age(app, recent, days=10, closed=True)
        await _age(app, open_case, days=200, closed=False)
        await _age(app, with_followup, days=200, closed=True)
        async with app.sessions.begin() as session:
            # one recipient opened the old alert twice: counted once, kept after the prune
            first = await session.scalar(select(Delivery).where(Delivery.alert_id == old).limit(1))
            assert first is not None
            for _ in range(2):
                session.add(
                    DeliveryEvent(delivery_id=first.id, alert_id=old, type=str(EventType.OPENED), at=utcnow())
                )
            session.add(Followup(alert_id=with_followup, kind="reminder", due_at=utcnow() + DAY, note="call"))
        client = await signed_in(base, "admin")
        try:
            before = await _views(app, base, token, client, old, capsys)
            assert before["api"]["total"] == 3 and before["cli"]["channels"]["email"]["sent"] == 3
            assert before["api"]["engagement"]["email"]["opened"] == 1
            assert before["page"]["email:sent"] == "3" and before["dashboard"] == {old: {"sent": 3}}
            untouched = {a: await _rows(app, a) for a in (recent, open_case, with_followup)}
            async with app.sessions() as session:
                admin_user = await session.get(User, staff["admin"])
            assert admin_user is not None

            capsys.readouterr()
            argv = ["prune", "--older-than", "180d", "--dry-run", "--as", "admin"]
            assert await asyncio.to_thread(main, argv) == 0
            said = capsys.readouterr().out
            assert (
                "1 alert finished before" in said
                and "would delete 3 deliveries and 11 delivery events" in said
            )
            dry = await retention.prune(app, admin_user, older_than="180d", dry_run=True)
            assert dry.alerts == [old] and dry.deliveries == 3 and dry.events == 3 * 3 + 2
            when = dry.before.isoformat(timespec="seconds")
            assert dry.summary() == (
                f"1 alert finished before {when}: would delete 3 deliveries and 11 delivery events; "
                "their counts are kept"
            )
            assert await _rows(app, old) == (3, 11)  # a dry run deletes nothing

            seen: list[tuple[int, int]] = []
            done = await retention.prune(
                app, admin_user, older_than="180d", progress=lambda d, t: seen.append((d, t))
            )
            assert done.alerts == [old] and (done.deliveries, done.events) == (3, 11)
            assert done.summary() == (
                f"1 alert finished before {done.before.isoformat(timespec='seconds')}: "
                "deleted 3 deliveries and 11 delivery events; their counts are kept"
            )
            assert seen[0] == (0, 1) and seen[-1] == (1, 1)
            assert await _rows(app, old) == (0, 0)
            assert {a: await _rows(app, a) for a in untouched} == untouched
            async with app.sessions() as session:  # no event points at a delivery that is gone
                orphans = await session.scalar(
                    select(func.count())
                    .select_from(DeliveryEvent)
                    .outerjoin(Delivery, Delivery.id == DeliveryEvent.delivery_id)
                    .where(DeliveryEvent.delivery_id.is_not(None), Delivery.id.is_(None))
                )
            assert orphans == 0

            after = await _views(app, base, token, client, old, capsys)
            assert after == before
            again = await retention.prune(app, admin_user, older_than="180d")
            assert again.alerts == [] and await _views(app, base, token, client, old, capsys) == before
            async with app.sessions() as session:
                entries = (
                    await session.scalars(select(AuditEntry).where(AuditEntry.action == "deliveries.prune"))
                ).all()
            assert len(entries) == 1 and entries[0].details["alerts"] == [old]
            assert entries[0].details["deliveries"] == 3 and entries[0].user_id == staff["admin"]
        finally:
            await client.close()


async def test_prune_is_for_admins_and_a_real_age(db_url: str) -> None:
    async with running(db_url) as (app, _base):
        staff = await make_staff(app)
        async with app.sessions() as session:
            officer = await session.get(User, staff["officer"])
            admin = await session.get(User, staff["admin"])
        assert officer is not None and admin is not None
        with pytest.raises(PermissionDenied, match="may not data.prune"):
            await retention.prune(app, officer, older_than="180d")
        with pytest.raises(ValidationError, match="--older-than: '12h' is less than a day"):
            await retention.prune(app, admin, older_than="12h")
        with pytest.raises(ValidationError, match="--older-than: 'soon' is not a duration"):
            await retention.prune(app, admin, older_than="soon")


async def test_a_closed_update_waits_for_its_original_case_to_close_and_keeps_each_states_count(
    sessions: Any,
) -> None:
    """The case is the original: an update closed on its own is kept while the original is open.
    Pruning keeps one count per channel and state."""
    from alerts.delivery.retention import prunable, prune_alert, pruned_counts
    from tests.delivery_cases import mark_sent, staff
    from tests.factories import published_alert

    original = await published_alert(sessions, 3)
    await mark_sent(sessions, original)
    async with sessions.begin() as session:
        officer, reviewer = await staff(session)
        update_alert = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original
        )
        await publish(session, update_alert, now=utcnow())
        follow = update_alert.id
    await mark_sent(sessions, follow)
    long_ago = utcnow() - 400 * DAY
    async with sessions.begin() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == follow, Delivery.address == "person2@example.org")
            .values(state="failed")
        )
        await session.execute(
            update(Alert)
            .where(Alert.id == follow)
            .values(status="closed", completed_at=long_ago, closed_at=long_ago)
        )
        await session.execute(update(Alert).where(Alert.id == original).values(completed_at=long_ago))
        assert await prunable(session, before=utcnow()) == []
        await session.execute(
            update(Alert).where(Alert.id == original).values(status="closed", closed_at=long_ago)
        )
        assert await prunable(session, before=utcnow()) == [original, follow]
        await prune_alert(session, follow)
        kept = await pruned_counts(session, [follow])
    assert sorted(kept) == [(follow, "email", "failed", 1), (follow, "email", "sent", 2)]


async def test_a_long_finished_case_is_prunable_while_another_alert_is_still_sending(
    sessions: Any,
) -> None:
    """Only the alert's own open deliveries keep its rows: on a busy service another alert is
    nearly always sending, and retention must not wait for a quiet moment."""
    from alerts.delivery.retention import prunable
    from tests.delivery_cases import mark_sent, staff
    from tests.factories import published_alert

    old = await published_alert(sessions, 2)
    await mark_sent(sessions, old)
    long_ago = utcnow() - 400 * DAY
    async with sessions.begin() as session:
        officer, reviewer = await staff(session)
        sending = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, sending, now=utcnow())  # its deliveries are queued: open
        await session.execute(
            update(Alert)
            .where(Alert.id == old)
            .values(status="closed", completed_at=long_ago, closed_at=long_ago)
        )
    async with sessions() as session:
        assert await prunable(session, before=utcnow()) == [old]


async def test_prune_works_in_batches_each_with_its_own_audit_entry(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction and one audit entry per batch of alerts (``BATCH``, made 1 here so two
    alerts make two batches): each entry names its own alerts and the ``--older-than`` asked for;
    the report counts every alert once, in the plural."""
    from tests.delivery_cases import mark_sent

    monkeypatch.setattr(retention, "BATCH", 1)
    async with running(db_url) as (app, _base):
        staff = await make_staff(app)
        ids = []
        for new_contacts in (2, 1):  # the second alert reaches one more contact: 2, then 3 deliveries
            async with app.sessions.begin() as session:
                await add_contacts(session, new_contacts, start=len(ids) * 10)
                officer = await session.get(User, staff["officer"])
                reviewer = await session.get(User, staff["reviewer"])
                assert officer is not None and reviewer is not None
                alert = await approved_alert(session, author=officer, reviewer=reviewer)
                await publish(session, alert, now=utcnow())
                ids.append(alert.id)
        first, second = ids
        for alert_id in (first, second):
            await mark_sent(app.sessions, alert_id)
            await _age(app, alert_id, days=200, closed=True)
        async with app.sessions() as session:
            admin = await session.get(User, staff["admin"])
        assert admin is not None
        seen: list[tuple[int, int]] = []
        done = await retention.prune(app, admin, older_than="26w", progress=lambda d, t: seen.append((d, t)))
        assert (done.alerts, done.deliveries) == ([first, second], 2 + 3)
        assert done.summary().startswith("2 alerts finished before ")
        assert seen == [(0, 2), (1, 2), (2, 2)]
        async with app.sessions() as session:
            entries = (
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "deliveries.prune").order_by(AuditEntry.id)
                )
            ).all()
        assert [(e.details["alerts"], e.details["deliveries"], e.details["older_than"]) for e in entries] == [
            ([first], 2, "26w"),
            ([second], 3, "26w"),
        ]


async def test_a_dry_run_with_nothing_old_enough_would_delete_nothing(db_url: str) -> None:
    """Only a recent alert: the operator's dry run names no alert and counts no rows at all."""
    async with running(db_url) as (app, _base):
        staff = await make_staff(app)
        async with app.sessions.begin() as session:
            await add_contacts(session, 2)
            officer = await session.get(User, staff["officer"])
            reviewer = await session.get(User, staff["reviewer"])
            admin = await session.get(User, staff["admin"])
        assert officer is not None and reviewer is not None and admin is not None
        recent = await _sent_alert(app, officer, reviewer)
        await _age(app, recent, days=10, closed=True)

        dry = await retention.prune(app, admin, older_than="180d", dry_run=True)

        assert (dry.alerts, dry.deliveries, dry.events) == ([], 0, 0)
        assert dry.summary() == (
            f"0 alerts finished before {dry.before.isoformat(timespec='seconds')}: "
            "would delete 0 deliveries and 0 delivery events; their counts are kept"
        )
        assert await _rows(app, recent) == (2, 6)
