"""Append a DeliveryEvent for every state change, and refuse changes states.py forbids.

The dispatcher records outcomes in batches through ``event_row()`` dicts; everything else
(bounces, responses, resend-failed, cancellations) changes one delivery at a time through
``transition()``. Both check ``alerts.states.can_transition``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    BindParameter,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine

from alerts.core.errors import Conflict
from alerts.core.states import DeliveryState, EventType, can_transition
from alerts.store.db import rowset_json, rowset_of
from alerts.store.models import ENGAGEMENTS, Delivery, DeliveryEvent, UTCDateTime


def is_engagement() -> ColumnElement[bool]:
    """SQL: the event is an open or a click, written as the partial index's condition
    (``models.ENGAGED_SQL``: constants, in its order; with bound parameters, or the constants
    in another order, SQLite would not use the index, nor PostgreSQL's generic plans)."""
    types: BindParameter[list[str]] = bindparam(
        "engagements", list(ENGAGEMENTS), expanding=True, literal_execute=True, unique=True
    )
    return DeliveryEvent.type.in_(types)


def event_row(
    *,
    delivery_id: int,
    alert_id: int,
    type: EventType | str,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    attempt: int = 0,
    detail: str = "",
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DeliveryEvent as a dict, for bulk inserts."""
    return {
        "delivery_id": delivery_id,
        "alert_id": alert_id,
        "type": str(type),
        "at": at,
        "from_state": from_state,
        "to_state": to_state,
        "attempt": attempt,
        "detail": detail[:2000],
        "payload": payload,
    }


_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("delivery_id", BigInteger()),
    ("alert_id", BigInteger()),
    ("type", String()),
    ("at", UTCDateTime()),
    ("from_state", String()),
    ("to_state", String()),
    ("attempt", Integer()),
    ("detail", Text()),
    ("payload", JSON()),
]
_NAMES = [name for name, _ in _COLUMNS]
_INSERT = insert(cast(Table, DeliveryEvent.__table__))


def events_from(query: Select[Any]) -> Insert:
    """``INSERT INTO delivery_events … SELECT``: ``query`` yields the columns of ``event_row()``
    in its order, so the database writes a batch's events from rows it already has."""
    return _INSERT.from_select(_NAMES, query)


async def append_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert many ``event_row()`` dicts in one statement with one parameter (db.rowset).

    The dispatcher appends two events per message; per-row parameter processing (or the ORM's
    bulk insert, which also fetches every new key back) cost more than sending the message.
    """
    if rows:
        dialect = session.get_bind().dialect
        await session.execute(_append(dialect.name), {"event_rows": rowset_json(dialect, rows)})


@functools.cache
def _append(dialect: str) -> Insert:
    """The INSERT of ``append_events`` (built once per dialect)."""
    batch = rowset_of(dialect, "event", _COLUMNS, bindparam("event_rows", type_=String()))
    return events_from(select(*(batch.c[n] for n in _NAMES)))


async def record_moves(
    session: AsyncSession,
    rows: Sequence[Any],
    *,
    type: EventType,
    from_state: DeliveryState | None,
    to_state: DeliveryState,
    at: datetime,
    detail: str | Callable[[Any], str],
) -> None:
    """One event per row moved by a bulk UPDATE … RETURNING (rows carry id, alert_id, attempts)."""
    await append_events(
        session,
        [
            event_row(
                delivery_id=r.id,
                alert_id=r.alert_id,
                type=type,
                at=at,
                from_state=str(from_state) if from_state is not None else None,
                to_state=str(to_state),
                attempt=r.attempts,
                detail=detail(r) if callable(detail) else detail,
            )
            for r in rows
        ],
    )


async def cancel_unsent(
    session: AsyncSession, alert_id: int, *, now: datetime, detail: str, audience: str | None = None
) -> int:
    """Withdraw the alert's deliveries that have not gone out (queued or deferred), optionally
    only those to one audience kind; one ``cancelled`` event each."""
    conditions = [
        Delivery.alert_id == alert_id,
        Delivery.state.in_([str(DeliveryState.QUEUED), str(DeliveryState.DEFERRED)]),
    ]
    if audience is not None:
        conditions.append(Delivery.audience == audience)
    rows = (
        await session.execute(
            update(Delivery)
            .where(*conditions)
            .values(state=str(DeliveryState.CANCELLED), next_attempt_at=None, updated_at=now)
            .returning(Delivery.id, Delivery.alert_id, Delivery.attempts)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await record_moves(
        session,
        rows,
        type=EventType.CANCELLED,
        from_state=None,
        to_state=DeliveryState.CANCELLED,
        at=now,
        detail=detail,
    )
    return len(rows)


def check_transition(delivery_id: int, old: str, new: DeliveryState) -> None:
    """Raise Conflict unless states.py allows old -> new."""
    if not can_transition(DeliveryState(old), new):
        raise Conflict(
            f"delivery {delivery_id}: cannot change from {old} to {new}.",
            details={"delivery": delivery_id, "from": old, "to": str(new)},
        )


async def transition(
    session: AsyncSession,
    delivery: Delivery,
    new: DeliveryState,
    *,
    now: datetime,
    type: EventType | None = None,
    detail: str = "",
    payload: dict[str, Any] | None = None,
) -> None:
    """Move one delivery to ``new`` and append its event (caller commits)."""
    old = delivery.state
    check_transition(delivery.id, old, new)
    delivery.state = str(new)
    delivery.updated_at = now
    session.add(
        DeliveryEvent(
            delivery_id=delivery.id,
            alert_id=delivery.alert_id,
            type=str(type or EventType(str(new))),
            at=now,
            from_state=old,
            to_state=str(new),
            attempt=delivery.attempts,
            detail=detail[:2000],
            payload=payload,
        )
    )


async def engagement(
    session: AsyncSession,
    delivery: Delivery,
    type: EventType,
    *,
    now: datetime,
    detail: str = "",
    payload: dict[str, Any] | None = None,
) -> None:
    """Record an engagement event (opened, clicked, unsubscribed…) that leaves the state alone."""
    session.add(
        DeliveryEvent(
            delivery_id=delivery.id,
            alert_id=delivery.alert_id,
            type=str(type),
            at=now,
            from_state=delivery.state,
            to_state=delivery.state,
            attempt=delivery.attempts,
            detail=detail[:2000],
            payload=payload,
        )
    )
