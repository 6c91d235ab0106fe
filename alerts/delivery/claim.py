"""Claim due deliveries under a lease; release them; reclaim expired leases.

PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` then ``UPDATE`` in the same transaction, so
any number of workers claim disjoint rows without blocking each other (procrastinate's
``procrastinate_fetch_job``). SQLite: row locks do not exist, but every write transaction
begins with ``BEGIN IMMEDIATE`` (see db.py), which serialises claimers just the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Table,
    Text,
    bindparam,
    exists,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import CLAIMABLE_STATES, DeliveryState, EventType
from alerts.delivery.audience import contact_address_sql, suppression_key_sql
from alerts.delivery.messages import Claimed
from alerts.delivery.stale import withdraw_stale
from alerts.store.db import any_of
from alerts.store.events import events_from, record_moves
from alerts.store.models import Alert, Contact, Delivery, Suppression, UTCDateTime

_CLAIMABLE = [str(s) for s in CLAIMABLE_STATES]
_deliveries = cast(Table, Delivery.__table__)


class _Due(NamedTuple):
    """A row of ``_candidates``, in its column order."""

    id: int
    state: str
    alert_id: int
    attempts: int
    unknown_outcomes: int
    contact_id: int | None
    channel: str
    audience: str
    language: str
    address: str | None
    provider_id: str | None
    alert_status: str
    contact_status: str | None
    contact_name: str | None
    contact_token: str | None
    contact_kind: str | None
    contact_address: str | None
    suppressed: bool


@functools.cache
def _candidates(for_alert: bool) -> Executable:
    """Due deliveries of one channel with what sending and the stale check need (built once)."""
    namespace, key = suppression_key_sql(Delivery.channel, Delivery.address)
    suppressed = exists().where(Suppression.channel == namespace).where(Suppression.address_key == key)
    query = (
        select(
            Delivery.id,
            Delivery.state,
            Delivery.alert_id,
            Delivery.attempts,
            Delivery.unknown_outcomes,
            Delivery.contact_id,
            Delivery.channel,
            Delivery.audience,
            Delivery.language,
            Delivery.address,
            Delivery.provider_id,
            Alert.status.label("alert_status"),
            Contact.status.label("contact_status"),
            Contact.name.label("contact_name"),
            Contact.token.label("contact_token"),
            Contact.kind.label("contact_kind"),
            contact_address_sql(Delivery.channel).label("contact_address"),
            suppressed.label("suppressed"),
        )
        .join(Alert, Alert.id == Delivery.alert_id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(
            Delivery.channel == bindparam("c_channel"),
            Delivery.state.in_(_CLAIMABLE),
            Delivery.next_attempt_at <= bindparam("c_now", type_=UTCDateTime()),
            Alert.paused.is_(False),
        )
        # no ORDER BY: the (state, channel, next_attempt_at) index already yields due rows
        # without sorting the whole backlog on every claim
        .limit(bindparam("c_limit"))
        .with_for_update(of=Delivery, skip_locked=True)
    )
    if for_alert:
        query = query.where(Delivery.alert_id == bindparam("c_alert"))
    assert list(query.selected_columns.keys()) == list(_Due._fields), "_Due follows the columns"
    return query


@functools.cache
def _take(dialect: str) -> tuple[Executable, Executable]:
    """The two writes of a claim for the picked ids (built once per dialect).

    First the ``sending`` events, written by the database from the rows themselves (nothing
    per row passes through Python); it runs before the UPDATE, so ``state`` is still the state
    left behind. Then the move to ``sending``.
    """
    picked = any_of(dialect, _deliveries.c.id, "c_ids")
    events = events_from(
        select(
            _deliveries.c.id,
            _deliveries.c.alert_id,
            literal(str(EventType.SENDING)),
            bindparam("c_now", type_=UTCDateTime()),
            _deliveries.c.state,
            literal(str(DeliveryState.SENDING)),
            _deliveries.c.attempts + 1,
            bindparam("c_detail", type_=Text()),
            null(),
        ).where(picked)
    )
    move = (
        update(_deliveries)
        .where(picked)
        .values(
            state=str(DeliveryState.SENDING),
            lease_until=bindparam("c_lease_until", type_=UTCDateTime()),
            claimed_by=bindparam("c_worker"),
            attempts=_deliveries.c.attempts + 1,
            updated_at=bindparam("c_now", type_=UTCDateTime()),
        )
    )
    return events, move


async def claim_due(
    session: AsyncSession,
    *,
    channel: str,
    limit: int,
    worker: str,
    lease: timedelta,
    now: datetime,
    alert_id: int | None = None,
) -> list[Claimed]:
    """Mark up to ``limit`` due deliveries of one channel as ``sending`` for this worker.

    Three statements per batch, whatever its size: pick (locking the rows), append their
    ``sending`` events, move them. Rows whose recipient left in the meantime are settled instead.
    """
    params: dict[str, Any] = {"c_channel": channel, "c_now": now, "c_limit": limit}
    if alert_id is not None:
        params["c_alert"] = alert_id
    # plain tuples: a Row's attribute lookup costs ~0.7 µs, and each row is read ~20 times
    picked = [_Due._make(r) for r in (await session.execute(_candidates(alert_id is not None), params))]
    if not picked:
        return []
    picked = await withdraw_stale(session, picked, now=now)
    if not picked:
        return []
    ids = [row.id for row in picked]
    events, move = _take(session.get_bind().dialect.name)
    await session.execute(events, {"c_ids": ids, "c_now": now, "c_detail": f"claimed by {worker}"})
    await session.execute(
        move, {"c_ids": ids, "c_now": now, "c_lease_until": now + lease, "c_worker": worker}
    )
    return [
        Claimed(
            id=r.id,
            alert_id=r.alert_id,
            contact_id=r.contact_id,
            channel=r.channel,
            audience=r.audience,
            language=r.language,
            address=r.address or "",
            attempts=r.attempts + 1,
            unknown_outcomes=r.unknown_outcomes,
            from_state=r.state,
            name=str(r.contact_name or ""),
            token=r.contact_token,
            provider_id=r.provider_id,
        )
        for r in sorted(picked, key=lambda r: r.id)
    ]


async def release(
    session: AsyncSession, items: Sequence[Claimed], *, worker: str, now: datetime, why: str = "on shutdown"
) -> int:
    """Give claimed-but-unsent deliveries back to the queue (on shutdown, or ``why``)."""
    if not items:
        return 0
    ids = [i.id for i in items]
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids), Delivery.claimed_by == worker, Delivery.state == str(DeliveryState.SENDING)
        )
        .values(
            state=str(DeliveryState.QUEUED),
            lease_until=None,
            claimed_by=None,
            attempts=Delivery.attempts - 1,
            next_attempt_at=now,
            updated_at=now,
        )
        .returning(Delivery.id, Delivery.alert_id, Delivery.attempts)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    await record_moves(
        session,
        rows,
        type=EventType.RELEASED,
        from_state=DeliveryState.SENDING,
        to_state=DeliveryState.QUEUED,
        at=now,
        detail=f"released by {worker} {why}",
    )
    return len(rows)


async def extend_leases(session: AsyncSession, *, worker: str, until: datetime) -> int:
    """Heartbeat: push back the lease of every delivery this (living) worker holds.

    Rows locked by another transaction are skipped, not waited for: the recorder (whose UPDATE
    takes its rows in another order) is moving them out of ``sending`` anyway, and a heartbeat
    that waited for it could deadlock with it on PostgreSQL (seen at a million recipients). A
    skipped row still in ``sending`` gets its extension at the next round, well within its lease.
    """
    held = (
        select(Delivery.id)
        .where(Delivery.state == str(DeliveryState.SENDING), Delivery.claimed_by == worker)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held))
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _lease_note(why: str, row: Any) -> str:
    return f"lease of {row.claimed_by} {why}"


async def reclaim_expired(
    session: AsyncSession, *, now: datetime, limit: int = 5000, max_attempts: int | None = None
) -> int:
    """Put deliveries whose lease expired (their worker died) back in the queue.

    Such a message may or may not have gone out before the crash: it is sent again with the
    same Message-ID, which is the bounded repeat DESIGN.md allows. A delivery that has used up
    ``max_attempts`` fails instead, so a message that kills its worker cannot loop forever.
    """
    picked = (
        await session.execute(
            select(Delivery.id, Delivery.attempts)
            .where(Delivery.state == str(DeliveryState.SENDING), Delivery.lease_until < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not picked:
        return 0
    spent = [r.id for r in picked if max_attempts is not None and r.attempts >= max_attempts]
    retry = [r.id for r in picked if r.id not in set(spent)]
    for ids, state, why in (
        (retry, DeliveryState.QUEUED, "expired; reclaimed"),
        (spent, DeliveryState.FAILED, "expired on the last attempt; failed"),
    ):
        if not ids:
            continue
        rows = (
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(
                    state=str(state),
                    lease_until=None,
                    next_attempt_at=now if state is DeliveryState.QUEUED else None,
                    updated_at=now,
                )
                .returning(Delivery.id, Delivery.alert_id, Delivery.attempts, Delivery.claimed_by)
                .execution_options(synchronize_session=False)
            )
        ).all()
        await record_moves(
            session,
            rows,
            type=EventType.RELEASED if state is DeliveryState.QUEUED else EventType.FAILED,
            from_state=DeliveryState.SENDING,
            to_state=state,
            at=now,
            detail=functools.partial(_lease_note, why),
        )
    return len(picked)
