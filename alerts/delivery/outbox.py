"""fan_out(): one Delivery per (alert, contact, channel), written in ONE transaction.

The rows come from ``audience.audience_select`` through ``INSERT … SELECT``: the database
does the expansion, so a 100,000-recipient audience never sits in Python memory, and
publishing twice creates nothing twice (``ON CONFLICT DO NOTHING`` on the unique (alert_id,
contact_id, channel) absorbs the repeat; the alert's first fan-out, which has nothing to
absorb, goes without it). Each new row gets its ``queued`` event
in the same transaction: on PostgreSQL in the same statement, from the INSERT's ``RETURNING``
(no second pass over a million rows); on SQLite, which has no INSERT in a WITH, by the ids
past the highest before the fan-out. An alert that would reach nobody is refused (``empty_audience``),
with nothing written, instead of being left ``sending`` with nothing to send.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ALL, ChannelName
from alerts.core.errors import Conflict
from alerts.core.states import DeliveryState, EventType
from alerts.delivery.audience import fan_out_selects, topics_match
from alerts.delivery.empty_audience import refuse_empty
from alerts.store.db import dialect_insert
from alerts.store.models import Alert, Delivery, DeliveryEvent

logger = logging.getLogger(__name__)

FAN_OUT_WORK_MEM = "64MB"  # PostgreSQL: for the fan-out's transaction only (SET LOCAL)


async def fan_out(
    session: AsyncSession,
    alert: Alert,
    *,
    approved_languages: Sequence[str],
    now: datetime,
    webhook_url: str = "",
    exclude_kinds: Sequence[str] = (),
    available: Collection[str] | None = None,
    country: str | None = None,
) -> int:
    """Write the alert's outbox rows (caller commits); returns how many were new.

    ``available``: the channels this deployment has configured (None: all). An alert that
    asks for a channel nobody can send on is refused, rather than queued for ever; an alert
    that names no channel goes out on every configured one. ``country``: the case's, for the
    contacts who chose topics. Raises Conflict, having written nothing, when the alert has
    (and had) no contact to reach on its contact channels, or no delivery at all.
    """
    audience = alert.audience or {}
    explicit = list(audience.get("channels") or ())
    if available is not None:
        missing = [c for c in explicit if c not in available]
        if missing:
            noun, verb, them = ("channel", "is", "it") if len(missing) == 1 else ("channels", "are", "them")
            raise Conflict(
                f"alert {alert.id}: {noun} {', '.join(missing)} {verb} not configured on this service "
                f"(see [{missing[0]}] in the config); remove {them} from the alert or configure {them}.",
                details={"alert": alert.id, "channels": missing},
            )
    requested = explicit or [
        c.value for c in ALL if available is None or c in available
    ]  # empty: every channel
    channels = [c for c in requested if c in ALL]
    topics = topics_match(family=alert.family, country=country)
    cols = ["alert_id", "contact_id", "channel", "audience", "language", "address"]
    # an update goes to exactly the people the original reached, threaded under it
    selects = fan_out_selects(
        alert,
        channels=channels,
        approved_languages=approved_languages,
        exclude_kinds=exclude_kinds,
        topics=topics,
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # the audience join hashes a million contact ids; 4 MB (the default) spills it to disk
        await session.execute(text(f"SET LOCAL work_mem = '{FAN_OUT_WORK_MEM}'"))
        # one fan-out of an alert at a time (SQLite's writers are one at a time already): a
        # second waits here until the first commits, then sees its rows, and ``alert`` is read
        # again (a second "send now" must not record the status change a second time)
        await session.execute(
            select(Alert)
            .where(Alert.id == alert.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    else:
        before = (await session.execute(select(func.coalesce(func.max(Delivery.id), 0)))).scalar_one()
    # The alert's first fan-out cannot meet a row of its own (PostgreSQL: the lock above; only
    # fan-out writes deliveries): plain INSERTs, without ON CONFLICT's speculative insertion
    # (on PostgreSQL a second look into the unique index and a WAL record per row). The unique
    # constraint still stands: a duplicate would fail the whole transaction, not skip a row.
    first = not await _has_any_delivery(session, alert.id)
    names = [*cols, "state", "attempts", "unknown_outcomes", "next_attempt_at", "created_at", "updated_at"]
    reached = created = 0
    for base in selects:
        sel = base.add_columns(
            literal(str(DeliveryState.QUEUED)).label("state"),
            literal(0).label("attempts"),
            literal(0).label("unknown_outcomes"),
            literal(now, Delivery.next_attempt_at.type).label("next_attempt_at"),
            literal(now, Delivery.created_at.type).label("created_at"),
            literal(now, Delivery.updated_at.type).label("updated_at"),
        )
        stmt = dialect_insert(session, Delivery).from_select(names, sel)
        if not first:  # a repeat: the unique constraint absorbs the rows already there
            stmt = stmt.on_conflict_do_nothing(index_elements=["alert_id", "contact_id", "channel"])
        if postgres:
            # the new rows' events straight from the INSERT's RETURNING: no second pass over
            # the deliveries (one statement; its row count is the new deliveries')
            new = stmt.returning(Delivery.id, Delivery.alert_id).cte("new_deliveries")
            written = await _queue_events(session, select(new.c.id, new.c.alert_id), now=now)
            reached += written
            created += written
        else:
            reached += int(cast(CursorResult[Any], await session.execute(stmt)).rowcount or 0)
    if not reached and not await _has_contact_delivery(session, alert.id, selects=bool(selects)):
        # nothing was written: the contact rows were none, the webhook's and events come after
        await refuse_empty(
            session,
            alert,
            channels=channels if webhook_url else [c for c in channels if c != ChannelName.WEBHOOK],
            exclude_kinds=exclude_kinds,
            topics=topics,
        )
    if ChannelName.WEBHOOK in channels and webhook_url:
        exists_already = (
            await session.execute(
                select(Delivery.id).where(
                    Delivery.alert_id == alert.id, Delivery.channel == ChannelName.WEBHOOK.value
                )
            )
        ).first()
        if exists_already is None:
            webhook = Delivery(
                alert_id=alert.id,
                contact_id=None,
                channel=ChannelName.WEBHOOK.value,
                audience="partner",
                language=approved_languages[0],
                address=webhook_url,
                state=str(DeliveryState.QUEUED),
                attempts=0,
                unknown_outcomes=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(webhook)
            await session.flush()
            if postgres:
                created += await _queue_events(session, _id_and_alert(Delivery.id == webhook.id), now=now)
    if not postgres:  # every row written above: their ids are past ``before``
        created += await _queue_events(
            session, _id_and_alert(Delivery.alert_id == alert.id, Delivery.id > before), now=now
        )
    if not created and not await _has_any_delivery(session, alert.id):
        await refuse_empty(session, alert, channels=[], exclude_kinds=exclude_kinds, topics=topics)
    alert.fanned_out_at = alert.fanned_out_at or now
    logger.info("alert %s: fan-out wrote %d new deliveries", alert.id, created)
    return created


def _id_and_alert(*where: Any) -> Select[int, int]:
    return select(Delivery.id, Delivery.alert_id).where(*where)


async def _queue_events(session: AsyncSession, rows: Select[int, int], *, now: datetime) -> int:
    """One ``queued`` event for each (delivery id, alert id) of ``rows``; returns how many."""
    events = rows.add_columns(
        literal(str(EventType.QUEUED)),
        literal(now, DeliveryEvent.at.type),
        literal(None),
        literal(str(DeliveryState.QUEUED)),
        literal(0),
        literal("fan-out"),
    )
    result = await session.execute(
        insert(DeliveryEvent).from_select(
            ["delivery_id", "alert_id", "type", "at", "from_state", "to_state", "attempt", "detail"], events
        )
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)


async def _has_contact_delivery(session: AsyncSession, alert_id: int, *, selects: bool) -> bool:
    """Whether the alert already reaches a contact (published before); True if it asks for no
    contact channel at all (a webhook-only alert is judged by ``_has_any_delivery``)."""
    if not selects:
        return True
    found = await session.execute(
        select(Delivery.id).where(Delivery.alert_id == alert_id, Delivery.contact_id.is_not(None)).limit(1)
    )
    return found.first() is not None


async def _has_any_delivery(session: AsyncSession, alert_id: int) -> bool:
    found = await session.execute(select(Delivery.id).where(Delivery.alert_id == alert_id).limit(1))
    return found.first() is not None
