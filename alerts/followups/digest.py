"""Weekly digests: one pending digest per active officer or admin, and what it says.

A digest follow-up belongs to the officer in its ``created_by``: it tells that officer about
their open cases, follow-ups due soon and authorities that have not responded. The leading
scheduler calls ``ensure_digests`` on every reconcile, so nobody has to remember to create
the first one: an active officer or admin without a pending digest gets one for the next
Monday 08:00 in the [scheduler] time zone. Each digest schedules the next one, a week later
on the wall clock, in its claiming transaction. An officer whose latest digest was cancelled
has opted out; adding a digest again opts back in.

Creating a digest is serialised across processes: on PostgreSQL by a transaction-level
advisory lock taken before the check, on SQLite by its single writer (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import AlertStatus, DeliveryState, FollowupKind, Role
from alerts.followups.notices import Notice, Plan, alert_link, footer, when
from alerts.store import audit
from alerts.store.models import Alert, Contact, Delivery, Followup, Response, User

if TYPE_CHECKING:
    from alerts.app import App

DIGEST_EVERY = timedelta(days=7)
#: When a first digest is due: Monday (weekday 0), 08:00 in the [scheduler] time zone.
DIGEST_WEEKDAY = 0
DIGEST_TIME = time(8, 0)
#: Who gets a digest.
DIGEST_ROLES = (Role.OFFICER.value, Role.ADMIN.value)
#: The transaction-level advisory lock that serialises digest creation ("UAdigst" in ASCII).
DIGEST_LOCK_KEY = 0x55_41_64_69_67_73_74
_DIGEST = FollowupKind.DIGEST.value


def next_digest_at(now: datetime, tz: ZoneInfo) -> datetime:
    """The first Monday 08:00 (in ``tz``) after ``now``, in UTC."""
    local = now.astimezone(tz)
    day = local.date() + timedelta(days=(DIGEST_WEEKDAY - local.weekday()) % 7)
    due = datetime.combine(day, DIGEST_TIME, tzinfo=tz)
    if due <= now:
        due = datetime.combine(day + timedelta(days=7), DIGEST_TIME, tzinfo=tz)
    return due.astimezone(UTC)


async def lock_digests(session: AsyncSession) -> None:
    """Serialise digest creation until this transaction ends (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DIGEST_LOCK_KEY})


async def _pending_digests(session: AsyncSession, owners: Sequence[int]) -> list[Followup]:
    """Pending digests (not retrying a delivery) of these officers, oldest first."""
    rows = await session.scalars(
        select(Followup)
        .where(
            Followup.kind == _DIGEST,
            Followup.created_by.in_(list(owners)),
            Followup.fired_at.is_(None),
            Followup.cancelled_at.is_(None),
        )
        .order_by(Followup.due_at, Followup.id)
    )
    return [f for f in rows.all() if not (f.data or {}).get("attempts")]


async def pending_digest(session: AsyncSession, user_id: int) -> Followup | None:
    """The officer's pending digest, if any (call ``lock_digests`` first when about to add one)."""
    found = await _pending_digests(session, [user_id])
    return found[0] if found else None


async def ensure_digests(session: AsyncSession, *, now: datetime, tz: ZoneInfo) -> list[Followup]:
    """Give every active officer and admin exactly one pending digest; returns those added.

    Missing ones are due the next Monday 08:00 in ``tz``; officers who cancelled their latest
    digest get none; duplicates (left by an older version) are cancelled, the earliest kept.
    """
    await lock_digests(session)
    officers = (
        await session.scalars(
            select(User).where(User.role.in_(DIGEST_ROLES), User.active.is_(True)).order_by(User.id)
        )
    ).all()
    if not officers:
        return []
    have: dict[int, Followup] = {}
    for f in await _pending_digests(session, [o.id for o in officers]):
        assert f.created_by is not None
        if f.created_by not in have:
            have[f.created_by] = f
            continue
        await session.execute(
            update(Followup)
            .where(Followup.id == f.id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
            .values(
                cancelled_at=now, result=f"cancelled: a second digest (follow-up {have[f.created_by].id})"
            )
            .execution_options(synchronize_session=False)
        )
    missing = [o for o in officers if o.id not in have]
    if not missing:
        return []
    latest = (
        select(func.max(Followup.id))
        .where(Followup.kind == _DIGEST, Followup.created_by.in_([o.id for o in missing]))
        .group_by(Followup.created_by)
    )
    opted_out = set(
        (
            await session.scalars(
                select(Followup.created_by).where(Followup.id.in_(latest), Followup.cancelled_at.is_not(None))
            )
        ).all()
    )
    due = next_digest_at(now, tz)
    added = []
    for officer in missing:
        if officer.id in opted_out:
            continue
        f = Followup(
            kind=_DIGEST,
            due_at=due,
            note="",
            data={"every_days": DIGEST_EVERY.days},
            created_by=officer.id,
            created_at=now,
        )
        session.add(f)
        added.append(f)
    if added:
        await session.flush()
        for f in added:
            await audit.record(
                session,
                user_id=None,
                action="followup.add",
                object_type="followup",
                object_id=f.id,
                now=now,
                details={"kind": _DIGEST, "for": f.created_by, "due_at": due.isoformat(), "automatic": True},
            )
    return added


async def _schedule_next(session: AsyncSession, f: Followup, *, now: datetime, tz: ZoneInfo) -> None:
    """The owner's next digest, a week later on the wall clock, unless one is pending already."""
    assert f.created_by is not None
    await lock_digests(session)
    if await pending_digest(session, f.created_by) is not None:
        return
    every = timedelta(days=int((f.data or {}).get("every_days", DIGEST_EVERY.days)))
    due = f.due_at.astimezone(tz) + every  # same tzinfo: wall-clock arithmetic, 08:00 stays 08:00
    while due <= now:
        due += every
    session.add(
        Followup(
            kind=_DIGEST,
            due_at=due.astimezone(UTC),
            note=f.note,
            data={"every_days": every.days},
            created_by=f.created_by,
            created_at=now,
        )
    )


async def plan_digest(
    session: AsyncSession,
    app: App,
    f: Followup,
    *,
    now: datetime,
    tz: ZoneInfo,
    already: frozenset[str],
    attempts: int,
) -> Plan:
    """A just-claimed digest: schedule the next one (first attempt only) and tell its officer."""
    owner = await session.get(User, f.created_by) if f.created_by is not None else None
    if owner is None or not owner.active or owner.role not in DIGEST_ROLES:
        return Plan(result="skipped: the digest's officer is no longer an active officer or admin.")
    if attempts == 0:  # the next digest, once: committed with this one's claim
        await _schedule_next(session, f, now=now, tz=tz)
    if owner.email is None:
        return Plan(result=f"digest: {owner.name} has no email address.")
    every = timedelta(days=int((f.data or {}).get("every_days", DIGEST_EVERY.days)))
    body = await digest_text(session, app, owner, now=now, tz=tz, horizon=every)
    if body is None:
        return Plan(result=f"digest: {owner.name} has no open cases.")
    notice = Notice(
        user_id=owner.id,
        name=owner.name,
        email=owner.email,
        telegram=None,
        subject=f"Weekly digest: your open cases ({when(now, tz)[:10]})",
        text=body + footer(f),
    )
    return Plan(result="digest", notices=(notice,), already=already, attempts=attempts)


async def digest_text(
    session: AsyncSession, app: App, officer: User, *, now: datetime, tz: ZoneInfo, horizon: timedelta
) -> str | None:
    """One officer's digest: open cases, follow-ups due soon, authorities without a response."""
    cases = (
        await session.scalars(
            select(Alert)
            .where(
                Alert.author_id == officer.id,
                Alert.status != AlertStatus.CLOSED.value,
                Alert.parent_id.is_(None),
            )
            .order_by(Alert.id)
        )
    ).all()
    if not cases:
        return None
    ids = [a.id for a in cases]
    lines = [f"Digest for {officer.name}, {when(now, tz)}.", "", f"Open cases ({len(cases)}):"]
    lines += [f'  - alert {a.id} "{a.title}" ({a.status}): {alert_link(app, a.id)}' for a in cases]
    due = (
        await session.scalars(
            select(Followup)
            .where(
                Followup.alert_id.in_(ids),
                Followup.fired_at.is_(None),
                Followup.cancelled_at.is_(None),
                Followup.due_at <= now + horizon,
            )
            .order_by(Followup.due_at)
        )
    ).all()
    lines += ["", f"Follow-ups due by {when(now + horizon, tz)} ({len(due)}):"]
    lines += [
        f"  - {when(x.due_at, tz)}: {x.kind} on alert {x.alert_id}" + (f": {x.note}" if x.note else "")
        for x in due
    ] or ["  (none)"]
    responded = select(Response.contact_id).where(
        Response.alert_id == Delivery.alert_id, Response.contact_id == Delivery.contact_id
    )
    silent = (
        await session.execute(
            select(Delivery.alert_id, Contact.name, Contact.title)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(
                Delivery.alert_id.in_(ids),
                Delivery.audience == "authority",
                Delivery.state.in_([DeliveryState.SENT.value, DeliveryState.DELIVERED.value]),
                ~responded.exists(),
            )
            .group_by(Delivery.alert_id, Contact.id, Contact.name, Contact.title)
            .order_by(Delivery.alert_id, Contact.name)
        )
    ).all()
    by_alert: dict[int, list[str]] = {}
    for alert_id, name, title in silent:
        by_alert.setdefault(alert_id, []).append(f"{name}, {title}" if title else name)
    lines += ["", f"Authorities that have not responded ({len(silent)}):"]
    for alert_id, names in by_alert.items():
        shown = "; ".join(names[:10]) + (f"; and {len(names) - 10} more" if len(names) > 10 else "")
        lines.append(f"  - alert {alert_id}: {shown}")
    if not by_alert:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"
