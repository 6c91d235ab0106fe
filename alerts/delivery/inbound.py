"""Apply bounce reports to deliveries, from ``alerts bounces process`` or from the LMTP
listener (``alerts.delivery.lmtp``) that ``alerts serve`` runs when ``[bounces] listen`` is true.

A report is applied only to an address this service mailed. The delivery is found by its VERP
return path (the signed delivery id the relay sent the bounce to, ``[bounces] verp``) or by
the Message-ID of the returned message (with its MAC, ``messages.message_id``: the numbers
alone can be guessed), and the report must name that delivery's address
(compared case-insensitively; with VERP, a report naming one address only is that delivery's,
whatever address a forwarder put in it). Anything else — a forged report, a bounce for mail
someone else sent, a report quoting nothing without VERP — is logged without the address and
counted, and suppresses nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.contacts.suppressions import suppress
from alerts.core.channels import EMAIL_ADDRESSED, ChannelName
from alerts.core.states import DeliveryState, SuppressionReason
from alerts.delivery.bounces import BounceReport, Dsn
from alerts.delivery.messages import parse_message_id
from alerts.store.events import transition
from alerts.store.models import Delivery

logger = logging.getLogger(__name__)

_EMAIL_CHANNELS = sorted(c.value for c in EMAIL_ADDRESSED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What one bounce message did, recipient by recipient."""

    bounced: int = 0  # hard bounces applied: delivery bounced (if it was sent), address suppressed
    soft: int = 0  # delayed, or failed with a 4.x.x status: nothing to do
    unmatched: int = 0  # hard bounces naming no address this service mailed: nothing done
    # hard bounces that came back before the dispatcher recorded the send (a fast relay): the
    # address is suppressed, the delivery not yet marked; the report must be applied again
    early: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(
            bounced=self.bounced + other.bounced,
            soft=self.soft + other.soft,
            unmatched=self.unmatched + other.unmatched,
            early=self.early + other.early,
        )

    def describe(self) -> str:
        """``1 hard bounce(s) applied, 0 soft, 1 unmatched (not ours: nothing suppressed)``."""
        early = f", {self.early} before the send was recorded (apply it again later)" if self.early else ""
        return (
            f"{self.bounced} hard bounce(s) applied, {self.soft} soft, "
            f"{self.unmatched} unmatched (not ours: nothing suppressed){early}"
        )


def _names(report: BounceReport, address: str | None) -> bool:
    wanted = (address or "").strip().lower()
    return bool(wanted) and wanted in (report.recipient.lower(), report.final_recipient.lower())


async def _by_message_id(session: AsyncSession, report: BounceReport) -> Delivery | None:
    ours = parse_message_id(report.original_message_id or "")
    if ours is None:
        return None
    alert_id, contact_id = ours
    if contact_id is None:
        return None  # a webhook's Message-ID: no address there
    rows = (
        await session.execute(
            select(Delivery).where(
                Delivery.alert_id == alert_id,
                Delivery.contact_id == contact_id,
                Delivery.channel.in_(_EMAIL_CHANNELS),
                Delivery.message_id == (report.original_message_id or "").strip(),
            )
        )
    ).scalars()
    return next((d for d in rows if _names(report, d.address)), None)


async def find_delivery(
    session: AsyncSession, report: BounceReport, *, verp_delivery: Delivery | None, reports: int
) -> Delivery | None:
    """The delivery this report is about, or None when it names nothing we sent."""
    if verp_delivery is not None and (_names(report, verp_delivery.address) or reports == 1):
        return verp_delivery
    return await _by_message_id(session, report)


async def apply_bounce(
    session: AsyncSession, bounce: Dsn, *, now: datetime, verp_delivery_id: int | None = None
) -> Applied:
    """Mark hard-bounced deliveries ``bounced`` and suppress their addresses, ours only."""
    verp_delivery = None
    if verp_delivery_id is not None:
        verp_delivery = await session.get(Delivery, verp_delivery_id)
        if verp_delivery is not None and verp_delivery.channel not in _EMAIL_CHANNELS:
            verp_delivery = None
    applied = Applied()
    for report in bounce.reports:
        if not report.hard:
            applied += Applied(soft=1)
            continue
        delivery = await find_delivery(
            session, report, verp_delivery=verp_delivery, reports=len(bounce.reports)
        )
        if delivery is None or not delivery.address:
            logger.info(
                "%s bounce report names no address this service mailed (%s): nothing suppressed",
                bounce.kind,
                "no Message-ID of ours"
                if parse_message_id(report.original_message_id or "") is None
                else "Message-ID of ours, another address",
            )
            logger.debug("unmatched bounce: %s, %s", report.recipient, report.original_message_id)
            applied += Applied(unmatched=1)
            continue
        await _apply(session, delivery, report, bounce_kind=bounce.kind, now=now)
        applied += Applied(early=1) if delivery.state == DeliveryState.SENDING else Applied(bounced=1)
    return applied


async def _apply(
    session: AsyncSession, delivery: Delivery, report: BounceReport, *, bounce_kind: str, now: datetime
) -> None:
    assert delivery.address is not None
    await suppress(
        session,
        channel=ChannelName.EMAIL.value,
        address=delivery.address,
        reason=SuppressionReason.BOUNCED,
        detail=f"{report.status} {report.diagnostic}"[:500],
        now=now,
    )
    if delivery.state in (DeliveryState.SENT, DeliveryState.DELIVERED):
        payload: dict[str, Any] = {
            "status": report.status,
            "action": report.action,
            "diagnostic": report.diagnostic,
            "format": bounce_kind,
        }
        detail = f"hard bounce {report.status}"
        await transition(session, delivery, DeliveryState.BOUNCED, now=now, detail=detail, payload=payload)
