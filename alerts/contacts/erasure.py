"""One person's data: export everything held about a contact, or erase it (GDPR art. 15, 17).

Erasure removes the contact row and its list memberships; their deliveries stay as anonymous
counts (address, contact, provider error text and event details cleared); their addresses are
kept only as SHA-256 hashes in the suppression list, so that a later import never reaches them
again. Nothing personal is logged: only the contact id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.contacts.directory import ContactRef, contact_addresses, contact_lists, get_contact
from alerts.contacts.suppressions import address_key, hash_for_erasure, hashed_key
from alerts.core.clock import iso
from alerts.store.models import Contact, Delivery, DeliveryEvent, ListMember, Response, Suppression

logger = logging.getLogger(__name__)

_EXPORTED_FIELDS = (
    "id",
    "name",
    "email",
    "telegram",
    "kind",
    "language",
    "organisation",
    "country",
    "title",
    "form_of_address",
    "channels",
    "topics",
    "status",
)


async def export_contact(session: AsyncSession, ref: ContactRef) -> dict[str, Any]:
    """Everything held about a contact, JSON-able: fields, lists, deliveries, responses, suppressions."""
    contact = await get_contact(session, ref)
    data: dict[str, Any] = {field: getattr(contact, field) for field in _EXPORTED_FIELDS}
    data["created_at"] = iso(contact.created_at)
    data["updated_at"] = iso(contact.updated_at)
    deliveries = []
    rows = await session.scalars(
        select(Delivery).where(Delivery.contact_id == contact.id).order_by(Delivery.id)
    )
    for d in rows:
        events = await session.execute(
            select(DeliveryEvent.type, DeliveryEvent.at)
            .where(DeliveryEvent.delivery_id == d.id)
            .order_by(DeliveryEvent.id)
        )
        deliveries.append(
            {
                "alert_id": d.alert_id,
                "channel": d.channel,
                "address": d.address,
                "language": d.language,
                "state": d.state,
                "attempts": d.attempts,
                "created_at": iso(d.created_at),
                "updated_at": iso(d.updated_at),
                "events": [{"type": t, "at": iso(at)} for t, at in events],
            }
        )
    responses = await session.execute(
        select(Response.alert_id, Response.summary, Response.responded_at)
        .where(Response.contact_id == contact.id)
        .order_by(Response.id)
    )
    return {
        "contact": data,
        "lists": await contact_lists(session, contact.id),
        "deliveries": deliveries,
        "responses": [{"alert_id": a, "summary": s, "responded_at": iso(at)} for a, s, at in responses],
        "suppressions": await _suppressions_of(session, contact),
    }


async def _suppressions_of(session: AsyncSession, contact: Contact) -> list[dict[str, Any]]:
    out = []
    for channel, address in contact_addresses(contact.email, contact.telegram):
        keys = (address_key(channel, address), hashed_key(channel, address))
        rows = await session.scalars(
            select(Suppression).where(Suppression.channel == channel, Suppression.address_key.in_(keys))
        )
        for row in rows:
            out.append(
                {
                    "channel": channel,
                    "address": address,
                    "reason": row.reason,
                    "detail": row.detail,
                    "created_at": iso(row.created_at),
                }
            )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureReport:
    """What an erasure did (counts only: nothing personal)."""

    contact_id: int
    deliveries_anonymised: int
    suppressions_hashed: int


async def erase_contact(session: AsyncSession, ref: ContactRef, *, now: datetime) -> ErasureReport:
    """Remove a contact's personal data for good; keep anonymous delivery counts and hashed suppressions."""
    contact = await get_contact(session, ref)
    contact_id = contact.id
    addresses = contact_addresses(contact.email, contact.telegram)
    delivery_ids = list(await session.scalars(select(Delivery.id).where(Delivery.contact_id == contact_id)))
    for start in range(0, len(delivery_ids), 500):
        chunk = delivery_ids[start : start + 500]
        # Provider answers often quote the recipient ("550 <x@y>: unknown user"): clear them too.
        await session.execute(
            update(DeliveryEvent).where(DeliveryEvent.delivery_id.in_(chunk)).values(detail="", payload=None)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(chunk))
            .values(contact_id=None, address=None, last_error=None, updated_at=now)
        )
    hashed = await hash_for_erasure(session, addresses, now=now)
    await session.execute(update(Response).where(Response.contact_id == contact_id).values(contact_id=None))
    await session.execute(delete(ListMember).where(ListMember.contact_id == contact_id))
    await session.delete(contact)
    await session.flush()
    logger.info("contact %d erased (%d deliveries anonymised)", contact_id, len(delivery_ids))
    return ErasureReport(
        contact_id=contact_id, deliveries_anonymised=len(delivery_ids), suppressions_hashed=hashed
    )
