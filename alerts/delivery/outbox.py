"""fan_out(): one Delivery per (alert, contact, channel), written in ONE transaction.

The rows come from ``audience.audience_select`` through ``INSERT … SELECT … ON CONFLICT DO
NOTHING``: the database does the expansion, so a 100,000-recipient audience never sits in
Python memory, and publishing twice creates nothing twice (the unique constraint on
(alert_id, contact_id, channel) absorbs the repeat). Each new row gets its ``queued`` event
in the same transaction. An alert that would reach nobody is refused (``empty_audience``),
with nothing written, instead of being left ``sending`` with nothing to send.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ALL, ChannelName
from alerts.core.errors import Conflict
from alerts.core.states import DeliveryState, EventType
from alerts.delivery.audience import fan_out_selects, topics_match
from alerts.delivery.empty_audience import refuse_empty
from alerts.store.db import dialect_insert
from alerts.store.models import Alert, Delivery, DeliveryEvent

logger = logging.getLogger(__name__)


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
    before = (await session.execute(select(func.coalesce(func.max(Delivery.id), 0)))).scalar_one()
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
    reached = 0
    for base in selects:
        sel = base.add_columns(
            literal(str(DeliveryState.QUEUED)).label("state"),
            literal(0).label("attempts"),
            literal(0).label("unknown_outcomes"),
            literal(now, Delivery.next_attempt_at.type).label("next_attempt_at"),
            literal(now, Delivery.created_at.type).label("created_at"),
            literal(now, Delivery.updated_at.type).label("updated_at"),
        )
        stmt = (
            dialect_insert(session, Delivery)
            .from_select(
                [
                    *cols,
                    "state",
                    "attempts",
                    "unknown_outcomes",
                    "next_attempt_at",
                    "created_at",
                    "updated_at",
                ],
                sel,
            )
            .on_conflict_do_nothing(index_elements=["alert_id", "contact_id", "channel"])
        )
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
            session.add(
                Delivery(
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
            )
            await session.flush()
    events = select(
        Delivery.id,
        Delivery.alert_id,
        literal(str(EventType.QUEUED)),
        literal(now, DeliveryEvent.at.type),
        literal(None),
        literal(str(DeliveryState.QUEUED)),
        literal(0),
        literal("fan-out"),
    ).where(Delivery.alert_id == alert.id, Delivery.id > before)
    result = await session.execute(
        insert(DeliveryEvent).from_select(
            ["delivery_id", "alert_id", "type", "at", "from_state", "to_state", "attempt", "detail"], events
        )
    )
    created = int(cast(CursorResult[Any], result).rowcount or 0)
    if not created and not await _has_any_delivery(session, alert.id):
        await refuse_empty(session, alert, channels=[], exclude_kinds=exclude_kinds, topics=topics)
    alert.fanned_out_at = alert.fanned_out_at or now
    logger.info("alert %s: fan-out wrote %d new deliveries", alert.id, created)
    return created


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
