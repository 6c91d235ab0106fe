"""One writer that records send outcomes in batches.

A commit per status change caps tracking at a few hundred rows per second; one transaction
per batch (flushed every few tens of milliseconds) reaches tens of thousands. A crash can
then repeat only what was sent since the last flush, plus what was in flight.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Executable,
    FromClause,
    Integer,
    String,
    Table,
    Text,
    Update,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from alerts.core.channels import EMAIL_ADDRESSED, ChannelName, address_key, address_space
from alerts.core.states import DeliveryState, EventType
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.messages import AlertInfo, Claimed
from alerts.delivery.retry import RetryPolicy
from alerts.store.db import any_of, dialect_insert, rowset_json, rowset_of
from alerts.store.events import append_events, event_row, events_from
from alerts.store.models import Alert, Contact, Delivery, DeliveryEvent, Suppression, UTCDateTime

logger = logging.getLogger(__name__)

_table = cast(Table, Delivery.__table__)

# One batch of outcomes as a rowset (db.rowset): a row per delivery, with the state it must
# still be in and the worker that must still hold it, then its event (the delivery's alert,
# the event type, the attempt, the detail and the payload; ``at`` and the states are shared).
_OUTCOME_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("id", BigInteger()),
    ("holder", String()),
    ("from_state", String()),
    ("state", String()),
    ("next", UTCDateTime()),
    ("provider", String()),
    ("message_id", String()),
    ("unknown", Integer()),
    ("error", Text()),
    ("at", UTCDateTime()),
    ("alert_id", BigInteger()),
    ("type", String()),
    ("attempt", Integer()),
    ("detail", Text()),
    ("payload", JSON()),
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A send's outcome waiting to be recorded."""

    item: Claimed
    outcome: Outcome
    message_id: str
    at: datetime


def redact(text: str, address: str) -> str:
    """The text with the recipient's address, bare or in angle brackets, replaced by ``<recipient>``."""
    if not address or not text or address.lower() not in text.lower():
        return text  # the usual case ("250 OK"): no pattern to compile for each recipient
    found = re.escape(address)
    return re.sub(f"<{found}>|{found}", "<recipient>", text, flags=re.IGNORECASE)


def decide(result: Result, policy: RetryPolicy) -> tuple[DeliveryState, datetime | None, EventType]:
    """The delivery's next state, retry time and event type for one outcome."""
    o, item = result.outcome, result.item
    if o.kind is OutcomeKind.SENT:
        return DeliveryState.SENT, None, EventType.SENT
    if o.kind is OutcomeKind.PERMANENT:
        if o.suppress is not None:
            return DeliveryState.SUPPRESSED, None, EventType.SUPPRESSED
        return DeliveryState.FAILED, None, EventType.FAILED
    retry_at = policy.decide(
        attempts=item.attempts, unknown_before=item.unknown_outcomes, outcome=o, now=result.at
    )
    event = EventType.UNKNOWN if o.kind is OutcomeKind.UNKNOWN else EventType.DEFERRED
    if retry_at is None:
        return DeliveryState.FAILED, None, event if o.kind is OutcomeKind.UNKNOWN else EventType.FAILED
    return DeliveryState.DEFERRED, retry_at, event


def moves(dialect: str) -> Update:
    """One UPDATE for a batch of outcomes (bound as ``r_rows``), returning the ids it moved.

    Only rows this worker still holds: if our lease expired and another worker took a row
    over, its outcome is that worker's to record (no events, fallbacks or suppressions here).
    The holder and the expected state come from the batch, as join conditions: as constant
    filters, both SQLite and PostgreSQL chose to drive the UPDATE from the deliveries in
    'sending' and scanned the whole batch again for each (quadratic; ~100 times slower on
    SQLite), instead of looking each row of the batch up by primary key. On PostgreSQL the
    batch's ids are bound once more as an array (``r_ids``): without fresh statistics (a
    fan-out just inserted the outbox) it joined the batch to a full scan of the deliveries.
    """
    return _move(_batch(dialect), dialect)


def _move(u: FromClause, dialect: str) -> Update:
    conditions = [_table.c.id == u.c.id, _table.c.claimed_by == u.c.holder, _table.c.state == u.c.from_state]
    if dialect == "postgresql":
        conditions.append(any_of(dialect, _table.c.id, "r_ids"))
    return (
        update(_table)
        .where(*conditions)
        .values(
            state=u.c.state,
            next_attempt_at=u.c.next,
            lease_until=None,
            provider_id=u.c.provider,
            message_id=u.c.message_id,
            unknown_outcomes=u.c.unknown,
            last_error=u.c.error,
            updated_at=u.c.at,
        )
        .returning(_table.c.id)
    )


def _batch(dialect: str) -> FromClause:
    return rowset_of(dialect, "outcome", _OUTCOME_COLUMNS, bindparam("r_rows", type_=String()))


def _event_columns(row: Any) -> list[Any]:
    """The columns of ``events_from`` for one row carrying the batch's columns."""
    return [
        row.id,
        row.alert_id,
        row.type,
        row.at,
        row.from_state,
        row.state,
        row.attempt,
        row.detail,
        row.payload,
    ]


@functools.cache
def _writes(dialect: str) -> tuple[Executable, Executable]:
    """The statements that write a batch, built once per dialect.

    PostgreSQL: the events and the move in one statement, ``WITH moved AS (UPDATE … RETURNING
    …) INSERT INTO delivery_events SELECT … FROM moved RETURNING delivery_id``, so exactly the
    rows the UPDATE moved get an event; the second is not used. SQLite has no UPDATE in WITH:
    the UPDATE returns the ids it moved, then the events are inserted from the batch's rows
    (or, when some were not moved, from those that were, encoded again).
    """
    u = _batch(dialect)
    move = _move(u, dialect)
    events = events_from(select(*_event_columns(u.c)))
    if dialect == "postgresql":
        moved = move.returning(*(c.label(f"e_{i}") for i, c in enumerate(_event_columns(u.c)))).cte("moved")
        both = events_from(select(*(moved.c[f"e_{i}"] for i in range(9))))
        return both.returning(cast(Table, DeliveryEvent.__table__).c.delivery_id), events
    return move, events


async def record(
    session: AsyncSession,
    results: list[Result],
    *,
    worker: str,
    policy: RetryPolicy,
    alerts: dict[int, AlertInfo],
    now: datetime,
) -> list[tuple[str, str]]:
    """Write a batch of outcomes: delivery rows, events, suppressions, fallbacks (caller commits).

    Returns (channel, new state) of each delivery it moved (for the metrics).

    The batch is encoded once, as one parameter (db.rowset) of statements built once: on
    PostgreSQL one statement moves its deliveries and appends their events, on SQLite an
    ``UPDATE … FROM`` and an ``INSERT … SELECT`` (``_writes``), whatever the batch's size.
    """
    decided = []
    outcomes: list[dict[str, Any]] = []
    sending = str(DeliveryState.SENDING)
    for res in results:
        state, retry_at, event = decide(res, policy)
        o, item = res.outcome, res.item
        # provider texts often quote the address ("550 <jane@…>: unknown"); viewers see details
        detail = redact(o.detail, item.address)
        if o.kind is OutcomeKind.UNKNOWN:
            detail = f"outcome unknown: {detail}" + ("" if retry_at else "; not retried again")
        decided.append((res, state, detail))
        outcomes.append(
            {
                "id": item.id,
                "holder": worker,
                "from_state": sending,
                "state": str(state),
                "next": retry_at,
                "provider": o.provider_id,
                "message_id": res.message_id,
                "unknown": item.unknown_outcomes + (1 if o.kind is OutcomeKind.UNKNOWN else 0),
                "error": None if state is DeliveryState.SENT else detail[:2000],
                "at": res.at,
                "alert_id": item.alert_id,
                "type": str(event),
                "attempt": item.attempts,
                "detail": detail[:2000],
                "payload": {
                    "outcome": str(o.kind),
                    "provider_id": o.provider_id,
                    "retry_after": o.retry_after.total_seconds() if o.retry_after else None,
                },
            }
        )
    if not outcomes:
        return []
    dialect = session.get_bind().dialect
    params: dict[str, Any] = {"r_rows": rowset_json(dialect, outcomes)}
    if dialect.name == "postgresql":
        params["r_ids"] = [o["id"] for o in outcomes]
    write, events = _writes(dialect.name)
    owned = set((await session.execute(write, params)).scalars().all())
    if dialect.name != "postgresql" and owned:
        if not all(o["id"] in owned for o in outcomes):
            params["r_rows"] = rowset_json(dialect, [o for o in outcomes if o["id"] in owned])
        await session.execute(events, params)
    if len(owned) < len(outcomes):
        await _explain_unmoved(session, [o["id"] for o in outcomes if o["id"] not in owned], worker=worker)
    suppressions: list[dict[str, Any]] = []
    fallbacks: list[Claimed] = []
    for res, state, detail in decided:
        o, item = res.outcome, res.item
        if item.id not in owned:
            continue
        if o.suppress is not None and item.address:
            suppressions.append(
                {
                    "id": item.id,
                    "channel": address_space(item.channel),
                    "address_key": address_key(item.channel, item.address),
                    "reason": str(o.suppress),
                    "detail": detail[:500],
                    "created_at": now,
                }
            )
        if o.new_address and item.contact_id is not None:
            await _migrate_chat(session, item, o.new_address, now=now)
        info = alerts.get(item.alert_id)
        if (
            info is not None
            and info.fallback_email
            and item.channel == ChannelName.TELEGRAM
            and state in (DeliveryState.FAILED, DeliveryState.SUPPRESSED)
        ):
            fallbacks.append(item)
    if suppressions:
        suppressions = await _not_erased(session, suppressions)
    if suppressions:
        stmt = dialect_insert(session, Suppression).on_conflict_do_nothing(
            index_elements=["channel", "address_key"]
        )
        await session.execute(stmt, [{k: v for k, v in row.items() if k != "id"} for row in suppressions])
    for item in fallbacks:
        await _fallback_to_email(session, item, now=now)
    return [(res.item.channel, str(state)) for res, state, _ in decided if res.item.id in owned]


async def _not_erased(session: AsyncSession, suppressions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The suppressions whose delivery still has its address: a contact erased while its message
    was in flight has it hashed in the suppressions already (``contacts.erasure``), and writing
    the address from the claim's copy would bring it back in clear, for good."""
    ids = [row["id"] for row in suppressions]
    kept = set(
        (
            await session.execute(
                select(Delivery.id).where(Delivery.id.in_(ids), Delivery.address.is_not(None))
            )
        )
        .scalars()
        .all()
    )
    return [row for row in suppressions if row["id"] in kept]


async def _explain_unmoved(session: AsyncSession, ids: list[int], *, worker: str) -> None:
    """Log why outcomes were not applied: taken over by another worker, or already recorded
    (a batch kept for a retry after a COMMIT whose answer was lost had gone through)."""
    rows = (await session.execute(select(Delivery.id, Delivery.claimed_by).where(Delivery.id.in_(ids)))).all()
    for delivery_id, claimed_by in rows:
        if claimed_by == worker:
            logger.debug("delivery %s: outcome already recorded", delivery_id)
        else:
            logger.warning(
                "delivery %s was taken over after our lease expired; outcome not recorded", delivery_id
            )


async def _migrate_chat(session: AsyncSession, item: Claimed, new_chat: str, *, now: datetime) -> None:
    """Telegram moved the group to a supergroup: follow it, for this and later alerts."""
    await session.execute(
        update(Contact).where(Contact.id == item.contact_id).values(telegram=new_chat, updated_at=now)
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.contact_id == item.contact_id, Delivery.channel == ChannelName.TELEGRAM.value)
        .where(Delivery.state.in_([str(DeliveryState.QUEUED), str(DeliveryState.DEFERRED)]))
        .values(address=new_chat)
    )


async def _fallback_to_email(session: AsyncSession, item: Claimed, *, now: datetime) -> None:
    """A permanent Telegram failure: queue the email version for the same contact, once."""
    contact = (
        await session.execute(
            select(Contact.email, Contact.status, Contact.channels).where(Contact.id == item.contact_id)
        )
    ).first()
    if contact is None or not contact.email or contact.status != "active":
        return
    if contact.channels is not None and ChannelName.EMAIL not in contact.channels:
        return  # they chose not to get email
    closed = await session.scalar(select(Alert.status).where(Alert.id == item.alert_id)) == "closed"
    has_email_form = await session.scalar(
        select(Delivery.id).where(
            Delivery.alert_id == item.alert_id,
            Delivery.contact_id == item.contact_id,
            Delivery.channel.in_(sorted(c.value for c in EMAIL_ADDRESSED)),
        )
    )
    if closed or has_email_form is not None:
        return  # one emailed copy per alert at most (press contacts already have the release)
    suppressed = (
        await session.execute(
            select(Suppression.id).where(
                Suppression.channel == address_space(ChannelName.EMAIL),
                Suppression.address_key == address_key(ChannelName.EMAIL, contact.email),
            )
        )
    ).first()
    if suppressed is not None:
        return
    stmt = (
        dialect_insert(session, Delivery)
        .values(
            alert_id=item.alert_id,
            contact_id=item.contact_id,
            channel=ChannelName.EMAIL.value,
            audience=item.audience,
            language=item.language,
            address=contact.email,
            state=str(DeliveryState.QUEUED),
            attempts=0,
            unknown_outcomes=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["alert_id", "contact_id", "channel"])
        .returning(_table.c.id)
    )
    new_id = (await session.execute(stmt)).scalar()
    if new_id is not None:
        await append_events(
            session,
            [
                event_row(
                    delivery_id=new_id,
                    alert_id=item.alert_id,
                    type=EventType.QUEUED,
                    at=now,
                    to_state=str(DeliveryState.QUEUED),
                    detail=f"fallback for telegram delivery {item.id}",
                )
            ],
        )
