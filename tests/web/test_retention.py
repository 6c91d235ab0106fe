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
from sqlalchemy import delete, func, select, update

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


async def test_which_long_finished_alerts_may_go(sessions: Any) -> None:
    """Finished (``sent`` or ``closed``) strictly before the cut-off, by ``completed_at`` else
    ``closed_at``; no delivery queued, sending or deferred; no follow-up still due (one fired or
    cancelled is done); rows to delete; an update more than one level below its case is kept."""
    from alerts.delivery.retention import prunable
    from tests.delivery_cases import mark_sent, staff
    from tests.factories import published_alert

    before = utcnow().replace(microsecond=0) - 100 * DAY
    long_ago = before - DAY
    first = await published_alert(sessions, 2)

    async def alert(
        status: str,
        completed: Any,
        closed: Any,
        *,
        parent_id: int | None = None,
        family: str = "urgent-appeal",
    ) -> int:
        async with sessions.begin() as session:
            officer, reviewer = await staff(session)
            made = await approved_alert(
                session, author=officer, reviewer=reviewer, parent_id=parent_id, family=family
            )
            await publish(session, made, now=utcnow())
            alert_id = made.id
        await mark_sent(sessions, alert_id)
        async with sessions.begin() as session:
            await session.execute(
                update(Alert)
                .where(Alert.id == alert_id)
                .values(status=status, completed_at=completed, closed_at=closed)
            )
        return alert_id

    await mark_sent(sessions, first)
    child = await alert("sent", long_ago, None, parent_id=first, family="update")
    grandchild = await alert("sent", long_ago, None, parent_id=child, family="update")
    unsent_update = await alert("approved", long_ago, long_ago, parent_id=first, family="update")
    async with sessions.begin() as session:  # the case closes with its updates
        await session.execute(
            update(Alert)
            .where(Alert.id.in_([first, child, grandchild]))
            .values(status="closed", completed_at=long_ago, closed_at=long_ago)
        )
    closed_unfinished = await alert("closed", None, long_ago)  # closed without completing: its closing counts
    completed_after = await alert("closed", before + timedelta(seconds=1), long_ago)
    at_the_cut = await alert("closed", before, before)
    still_sending = await alert("sending", long_ago, long_ago)
    open_rows = {
        state: await alert("closed", long_ago, long_ago) for state in ("queued", "sending", "deferred")
    }
    fired = await alert("closed", long_ago, long_ago)
    cancelled = await alert("closed", long_ago, long_ago)
    due = await alert("closed", long_ago, long_ago)
    emptied = await alert("closed", long_ago, long_ago)
    async with sessions.begin() as session:
        for state, alert_id in open_rows.items():
            one = await session.scalar(select(Delivery.id).where(Delivery.alert_id == alert_id).limit(1))
            await session.execute(update(Delivery).where(Delivery.id == one).values(state=state))
        for alert_id, fired_at, cancelled_at in (
            (fired, long_ago, None),
            (cancelled, None, long_ago),
            (due, None, None),
        ):
            session.add(
                Followup(
                    alert_id=alert_id, kind="reminder", due_at=long_ago, note="", fired_at=fired_at,
                    cancelled_at=cancelled_at,
                )
            )  # fmt: skip
        await session.execute(delete(DeliveryEvent).where(DeliveryEvent.alert_id == emptied))
        await session.execute(delete(Delivery).where(Delivery.alert_id == emptied))
    async with sessions() as session:
        assert await prunable(session, before=before) == sorted(
            [first, closed_unfinished, fired, cancelled, child]
        )
        assert await prunable(session, before=before, among=[cancelled, due, child]) == [child, cancelled]
        assert await prunable(session, before=before, among=[]) == []
        kept = [completed_after, at_the_cut, still_sending, *open_rows.values(), due, emptied, grandchild]
        kept.append(unsent_update)
        assert await prunable(session, before=before, among=kept) == []


async def test_a_second_prune_of_an_alert_adds_to_the_counts_kept(sessions: Any) -> None:
    """Counts per channel and state, and each engagement counted once per delivery; pruning
    rows that came after adds them up."""
    from alerts.delivery.retention import prune_alert, pruned_counts, rows_of
    from tests.delivery_cases import mark_sent
    from tests.factories import published_alert

    alert_id = await published_alert(sessions, 3)
    await mark_sent(sessions, alert_id)
    async with sessions.begin() as session:
        ids = list(
            await session.scalars(
                select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id)
            )
        )
        for delivery_id, kind in (
            (ids[0], EventType.CLICKED),
            (ids[0], EventType.CLICKED),
            (ids[1], EventType.CLICKED),
        ):
            session.add(
                DeliveryEvent(delivery_id=delivery_id, alert_id=alert_id, type=str(kind), at=utcnow())
            )
        assert await rows_of(session, [alert_id]) == (3, 6)
        assert await rows_of(session, []) == (0, 0)
        pruned = await prune_alert(session, alert_id)
        assert (pruned.alert_id, pruned.deliveries, pruned.events) == (alert_id, 3, 6)
    async with sessions.begin() as session:  # a delivery recorded after the first prune
        later = Delivery(
            alert_id=alert_id,
            channel="email",
            audience="authority",
            language="en",
            state="sent",
            address="x@example.org",
        )
        session.add(later)
        await session.flush()
        session.add(
            DeliveryEvent(delivery_id=later.id, alert_id=alert_id, type=str(EventType.CLICKED), at=utcnow())
        )
    async with sessions.begin() as session:
        await prune_alert(session, alert_id)
        assert sorted(await pruned_counts(session, [alert_id])) == [
            (alert_id, "email", "clicked", 3),
            (alert_id, "email", "sent", 4),
        ]
        assert await pruned_counts(session, []) == []
        assert await rows_of(session, [alert_id]) == (0, 0)


async def test_an_age_under_a_day_is_refused_naming_the_older_than_field(db_url: str) -> None:
    async with running(db_url) as (app, _base):
        staff = await make_staff(app)
        async with app.sessions() as session:
            admin = await session.get(User, staff["admin"])
        assert admin is not None
        with pytest.raises(ValidationError) as refused:
            await retention.prune(app, admin, older_than="23h")
    assert (refused.value.message, refused.value.details) == (
        "--older-than: '23h' is less than a day; retention keeps a day of delivery records at least.",
        {"field": "older_than"},
    )


async def test_a_prune_is_audited_as_done_to_alerts_by_the_admin(db_url: str) -> None:
    """The audit page filtered to alerts (/office/audit?type=alert) lists the entry."""
    from tests.delivery_cases import mark_sent

    async with running(db_url) as (app, _base):
        staff = await make_staff(app)
        async with app.sessions.begin() as session:
            await add_contacts(session, 1)
            officer = await session.get(User, staff["officer"])
            reviewer = await session.get(User, staff["reviewer"])
            assert officer is not None and reviewer is not None
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            await publish(session, alert, now=utcnow())
            alert_id = alert.id
        await mark_sent(app.sessions, alert_id)
        await _age(app, alert_id, days=200, closed=True)
        async with app.sessions() as session:
            admin = await session.get(User, staff["admin"])
        assert admin is not None
        assert (await retention.prune(app, admin, older_than="26w")).alerts == [alert_id]
        async with app.sessions() as session:
            entries = (
                await session.execute(
                    select(AuditEntry.user_id, AuditEntry.object_type, AuditEntry.object_id).where(
                        AuditEntry.action == "deliveries.prune"
                    )
                )
            ).all()
    assert [tuple(e) for e in entries] == [(staff["admin"], "alert", None)]
