"""Apply bounce reports (RFC 3464) to deliveries, from ``alerts bounces process`` or from the
small inbound LMTP listener that ``alerts serve`` runs when ``[bounces] listen`` is true."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.suppressions import suppress
from alerts.core.channels import EMAIL_ADDRESSED, ChannelName
from alerts.core.clock import utcnow
from alerts.core.errors import AlertsError
from alerts.core.states import DeliveryState, SuppressionReason
from alerts.delivery.bounces import BounceReport, parse_dsn
from alerts.store.events import transition
from alerts.store.models import Delivery

logger = logging.getLogger(__name__)


async def _find_delivery(session: AsyncSession, report: BounceReport) -> Delivery | None:
    if report.original_message_id:
        found = (
            (
                await session.execute(
                    select(Delivery).where(Delivery.message_id == report.original_message_id.strip())
                )
            )
            .scalars()
            .first()
        )
        if found is not None:
            return found
    # no usable Message-ID: the latest sent email to that address
    return (
        (
            await session.execute(
                select(Delivery)
                .where(
                    Delivery.channel.in_(sorted(c.value for c in EMAIL_ADDRESSED)),
                    Delivery.address == report.recipient,
                    Delivery.state.in_([str(DeliveryState.SENT), str(DeliveryState.DELIVERED)]),
                )
                .order_by(Delivery.id.desc())
            )
        )
        .scalars()
        .first()
    )


async def apply_reports(session: AsyncSession, reports: Sequence[BounceReport], *, now: datetime) -> int:
    """Mark hard-bounced deliveries ``bounced`` and suppress their addresses; returns how many."""
    applied = 0
    for report in reports:
        if not report.hard:
            continue
        await suppress(
            session,
            channel=ChannelName.EMAIL.value,
            address=report.recipient,
            reason=SuppressionReason.BOUNCED,
            detail=f"{report.status} {report.diagnostic}"[:500],
            now=now,
        )
        delivery = await _find_delivery(session, report)
        if delivery is not None and delivery.state in (DeliveryState.SENT, DeliveryState.DELIVERED):
            payload: dict[str, Any] = {
                "status": report.status,
                "action": report.action,
                "diagnostic": report.diagnostic,
            }
            await transition(
                session,
                delivery,
                DeliveryState.BOUNCED,
                now=now,
                detail=f"hard bounce {report.status}",
                payload=payload,
            )
        applied += 1
    return applied


class BounceHandler:
    """aiosmtpd handler (LMTP or SMTP) that applies every DSN it receives."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            reports = parse_dsn(envelope.original_content or envelope.content)
        except AlertsError as exc:
            logger.info("inbound message is not a bounce report: %s", exc.message)
            return "250 OK (not a delivery status notification; ignored)"
        async with self.sessions.begin() as db:
            n = await apply_reports(db, reports, now=utcnow())
        logger.info("inbound bounce report: %d hard bounce(s) applied", n)
        return "250 OK"


async def start_listener(
    sessions: async_sessionmaker[AsyncSession], *, host: str, port: int
) -> asyncio.Server:
    """Serve LMTP on this event loop (so the handler can use the app's database engine)."""
    from aiosmtpd.lmtp import LMTP

    handler = BounceHandler(sessions)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: LMTP(handler), host=host, port=port)
