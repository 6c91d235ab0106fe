"""The follow-up scheduler in-process: rebuilt from the table, reconciled, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from alerts.accounts import users
from alerts.app import App
from alerts.cli.capture import CaptureServer
from alerts.core.clock import utcnow
from alerts.followups.scheduler import start_scheduler
from alerts.store.models import Followup, User
from tests.test_followups import add, app, capture, row, sent_alert

__all__ = ["app", "capture"]


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_jobs_are_rebuilt_from_the_table_and_fire_once(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    now = utcnow()
    overdue = await add(
        app, alert_id, kind="reminder", due_at=now + timedelta(seconds=1), now=now, note="overdue"
    )
    async with app.sessions.begin() as session:  # as if it fell due while the service was down
        await session.execute(
            update(Followup).where(Followup.id == overdue).values(due_at=now - timedelta(minutes=10))
        )
    soon = await add(
        app, alert_id, kind="reminder", due_at=now + timedelta(seconds=1.5), now=now, note="soon"
    )
    doomed = await add(
        app, alert_id, kind="reminder", due_at=now + timedelta(seconds=2), now=now, note="doomed"
    )
    scheduler = await start_scheduler(app, reconcile_seconds=0.2)
    try:
        assert scheduler.is_leader
        await wait_for(lambda: len(capture.messages()) >= 1)
        assert "late by 10 min: the service was down" in capture.messages()[0].raw.decode()
        # cancelled by another process (CLI/API) after the job was scheduled
        from alerts.followups.manage import cancel_followup

        async with app.sessions.begin() as session:
            await cancel_followup(session, doomed, user=await users.get_user(session, "olga"), now=utcnow())
        # added by another process while the scheduler runs
        later = await add(
            app,
            alert_id,
            kind="reminder",
            due_at=utcnow() + timedelta(seconds=0.5),
            now=utcnow(),
            note="added later",
        )
        await wait_for(lambda: len(capture.messages()) >= 3)
        await asyncio.sleep(1.0)  # the cancelled one's time passes
    finally:
        await scheduler.stop()
    assert scheduler.fired == 3
    notes = sorted(m.raw.decode().split("Note: ")[1].split("\n")[0].strip() for m in capture.messages())
    assert notes == ["added later", "overdue", "soon"]
    assert (await row(app, doomed)).fired_at is None
    soon_row = await row(app, soon)
    assert soon_row.late_seconds is not None and soon_row.late_seconds < 2.0  # on time, not only eventually
    # a restart rebuilds jobs from the table: nothing fires twice
    again = await start_scheduler(app, reconcile_seconds=0.2)
    await asyncio.sleep(0.5)
    await again.stop()
    assert again.fired == 0 and len(capture.messages()) == 3
    assert (await row(app, later)).result == "reminder sent; sent to olga"


async def test_two_schedulers_on_one_database_fire_once(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    now = utcnow()
    ids = [
        await add(app, alert_id, kind="reminder", due_at=now + timedelta(seconds=0.3), now=now)
        for _ in range(20)
    ]
    first = await start_scheduler(app, reconcile_seconds=0.1)
    second = await start_scheduler(app, reconcile_seconds=0.1)  # SQLite: both lead; the claim decides
    try:
        await wait_for(lambda: len(capture.messages()) >= 20)
        await asyncio.sleep(0.5)
    finally:
        await first.stop()
        await second.stop()
    assert first.fired + second.fired == 20
    assert len(capture.messages()) == 20
    assert sorted(int(m.headers["message-id"].split("-")[1].split(".")[0]) for m in capture.messages()) == ids


async def pending_digests(app: App) -> dict[str, list[Followup]]:
    """Each officer's pending digests, by name."""
    async with app.sessions() as session:
        rows = (
            await session.execute(
                select(User.name, Followup)
                .join(Followup, Followup.created_by == User.id)
                .where(
                    Followup.kind == "digest", Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
                )
                .order_by(Followup.id)
            )
        ).all()
    out: dict[str, list[Followup]] = {}
    for name, f in rows:
        out.setdefault(name, []).append(f)
    return out


async def test_two_schedulers_give_each_officer_one_digest_then_one_next(
    app: App, capture: CaptureServer
) -> None:
    await sent_alert(app, 1)  # olga (officer, one open case) and rafael (reviewer)
    async with app.sessions.begin() as session:
        await users.create_user(session, name="ada", role="admin", email="ada@example.org", now=utcnow())
        otto, _ = await users.create_user(
            session, name="otto", role="officer", email="otto@example.org", now=utcnow()
        )
        otto.active = False
        await users.create_user(session, name="vera", role="viewer", email="vera@example.org", now=utcnow())
    capture.handler.clear()
    tz = ZoneInfo("Europe/Paris")  # [scheduler] timezone of the test settings
    start = utcnow()
    first = await start_scheduler(app, reconcile_seconds=0.1)
    second = await start_scheduler(app, reconcile_seconds=0.1)  # SQLite: both lead; PostgreSQL: one waits
    try:
        await asyncio.sleep(0.6)  # several reconciles by both
        created = await pending_digests(app)
        assert {name: len(fs) for name, fs in created.items()} == {"olga": 1, "ada": 1}
        for [f] in created.values():
            local = f.due_at.astimezone(tz)
            assert (local.weekday(), local.hour, local.minute) == (0, 8, 0)
            assert start < f.due_at <= start + timedelta(days=7)
        soon = utcnow() + timedelta(seconds=0.3)
        async with app.sessions.begin() as session:  # let both fall due now
            await session.execute(update(Followup).where(Followup.kind == "digest").values(due_at=soon))
        await wait_for(lambda: first.fired + second.fired >= 2)
        await asyncio.sleep(0.6)  # more reconciles by both after the firing
    finally:
        await first.stop()
        await second.stop()
    assert first.fired + second.fired == 2
    nxt = await pending_digests(app)
    assert {name: len(fs) for name, fs in nxt.items()} == {"olga": 1, "ada": 1}
    for name, [f] in nxt.items():
        assert f.due_at == (soon.astimezone(tz) + timedelta(days=7)).astimezone(UTC), name
    # each digest goes to its own officer only; ada has no open case, so nothing to send her
    assert [m.rcpt_tos for m in capture.messages()] == [("olga@example.org",)]
    assert capture.messages()[0].subject.startswith("Weekly digest: your open cases")
    async with app.sessions() as session:
        results = sorted(
            r or ""
            for r in (
                await session.scalars(
                    select(Followup.result).where(Followup.kind == "digest", Followup.fired_at.is_not(None))
                )
            ).all()
        )
    assert results == ["digest sent; sent to olga", "digest: ada has no open cases."]


async def test_stopping_lets_a_follow_up_being_fired_finish(app: App, capture: CaptureServer) -> None:
    """Shutting down mid-firing must not leave a half-fired row (APScheduler cancels its jobs)."""
    from channels.memory import MemoryChannel

    alert_id, _ = await sent_alert(app, 1)
    slow = MemoryChannel(delay=0.5)  # the officer's email takes a while
    app.channels["email"] = slow
    now = utcnow()
    fid = await add(app, alert_id, kind="reminder", due_at=now + timedelta(seconds=0.3), now=now, note="due")
    scheduler = await start_scheduler(app, reconcile_seconds=0.2)
    await wait_for(lambda: scheduler._in_flight)  # it is being fired now
    await scheduler.stop()
    assert len(slow.sent) == 1
    result = (await row(app, fid)).result or ""
    assert result.startswith("reminder sent"), result


async def test_stopping_lets_a_reconcile_in_progress_finish(app: App) -> None:
    """APScheduler cancelled a reconcile caught in mid-statement at shutdown; on SQLite the torn
    connection then hung the event loop. stop() waits for it instead."""
    if app.engine.dialect.name != "sqlite":
        pytest.skip("the writer lock that holds the reconcile up is SQLite's")
    scheduler = await start_scheduler(app, reconcile_seconds=0.1)
    async with app.sessions.begin() as blocker:  # BEGIN IMMEDIATE: SQLite's one writer lock
        await blocker.execute(select(1))
        await wait_for(lambda: scheduler._running)  # a reconcile now waits for that lock
        stopping = asyncio.create_task(scheduler.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()
    await asyncio.wait_for(stopping, timeout=10)
    assert not scheduler._running and not scheduler.scheduler.running
