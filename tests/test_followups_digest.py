"""Weekly digests: one pending per officer, 08:00 local every Monday, opt-out by cancelling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from alerts.accounts import users
from alerts.app import App
from alerts.cli.capture import CaptureServer
from alerts.core.errors import Conflict
from alerts.followups.manage import cancel_followup, ensure_digests, fire, next_digest_at
from alerts.store.models import Followup, User
from tests.test_followups import add, app, capture, people, sent_alert

__all__ = ["app", "capture"]

PARIS = ZoneInfo("Europe/Paris")  # [scheduler] timezone of the test settings
WED = datetime(2030, 3, 20, 8, 0, tzinfo=UTC)


async def pending_of(app: App, name: str) -> list[Followup]:
    async with app.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(Followup)
                    .join(User, User.id == Followup.created_by)
                    .where(
                        User.name == name,
                        Followup.kind == "digest",
                        Followup.fired_at.is_(None),
                        Followup.cancelled_at.is_(None),
                    )
                    .order_by(Followup.id)
                )
            ).all()
        )


async def ensure(app: App, now: datetime) -> list[Followup]:
    async with app.sessions.begin() as session:
        return await ensure_digests(session, now=now, tz=PARIS)


def test_next_monday_eight_local() -> None:
    assert next_digest_at(WED, PARIS) == datetime(2030, 3, 25, 7, 0, tzinfo=UTC)  # 08:00 CET
    monday_early = datetime(2030, 4, 1, 5, 59, tzinfo=UTC)  # 07:59 CEST
    assert next_digest_at(monday_early, PARIS) == datetime(2030, 4, 1, 6, 0, tzinfo=UTC)  # today, 08:00 CEST
    assert next_digest_at(datetime(2030, 4, 1, 6, 0, tzinfo=UTC), PARIS) == datetime(
        2030, 4, 8, 6, 0, tzinfo=UTC
    )
    assert next_digest_at(WED, ZoneInfo("UTC")) == datetime(2030, 3, 25, 8, 0, tzinfo=UTC)


async def test_concurrent_ensures_create_one_digest_per_officer(app: App) -> None:
    async with app.sessions.begin() as session:
        await people(session)
        await users.create_user(session, name="ada", role="admin", email="ada@example.org", now=WED)
    added = await asyncio.gather(*(ensure(app, WED) for _ in range(6)))  # six transactions at once
    assert sum(len(a) for a in added) == 2
    assert [f.due_at for f in await pending_of(app, "olga")] == [datetime(2030, 3, 25, 7, 0, tzinfo=UTC)]
    assert len(await pending_of(app, "ada")) == 1 and await pending_of(app, "rafael") == []  # a reviewer
    assert await ensure(app, WED + timedelta(days=1)) == []


async def test_next_digest_keeps_eight_local_across_summer_time(app: App, capture: CaptureServer) -> None:
    await sent_alert(app, 1)
    monday = datetime(2030, 3, 25, 7, 0, tzinfo=UTC)  # 08:00 CET; summer time starts on the 31st
    fid = await add(app, None, kind="digest", due_at=monday, now=WED)
    fired = await fire(app, fid, monday)
    assert fired is not None and fired.result == "digest sent; sent to olga"
    [nxt] = await pending_of(app, "olga")
    assert nxt.due_at == datetime(2030, 4, 1, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert await ensure(app, monday) == []  # she has one: none added


async def test_one_digest_each_and_cancelling_opts_out(app: App, capture: CaptureServer) -> None:
    await sent_alert(app, 1)
    fid = await add(app, None, kind="digest", due_at=WED + timedelta(days=1), now=WED)
    with pytest.raises(
        Conflict, match=rf"^olga already has a weekly digest \(follow-up {fid}, due .*cancel it"
    ):
        await add(app, None, kind="digest", due_at=WED + timedelta(days=2), now=WED)
    async with app.sessions.begin() as session:
        await cancel_followup(session, fid, user=await users.get_user(session, "olga"), now=WED)
    assert await ensure(app, WED) == [] and await pending_of(app, "olga") == []  # opted out: not re-created
    again = await add(app, None, kind="digest", due_at=WED + timedelta(days=2), now=WED)  # opted back in
    assert [f.id for f in await pending_of(app, "olga")] == [again]


async def test_duplicates_are_cancelled_and_a_leaver_gets_no_next(app: App, capture: CaptureServer) -> None:
    await sent_alert(app, 1)
    keep = await add(app, None, kind="digest", due_at=WED + timedelta(days=1), now=WED)
    async with app.sessions.begin() as session:  # as an older version could leave them
        olga = await users.get_user(session, "olga")
        session.add(
            Followup(
                kind="digest",
                due_at=WED + timedelta(days=3),
                data={"every_days": 7},
                created_by=olga.id,
                created_at=WED,
            )
        )
    assert await ensure(app, WED) == []
    assert [f.id for f in await pending_of(app, "olga")] == [keep]
    async with app.sessions.begin() as session:
        await session.execute(update(User).where(User.name == "olga").values(active=False))
    capture.handler.clear()
    fired = await fire(app, keep, WED + timedelta(days=1))
    assert (
        fired is not None
        and fired.result == "skipped: the digest's officer is no longer an active officer or admin."
    )
    assert await pending_of(app, "olga") == [] and capture.messages() == []
