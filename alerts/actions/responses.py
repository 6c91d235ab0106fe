"""The action of recording an authority's answer to an alert (CLI, API and officers' pages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.app import App
from alerts.compose import drafts
from alerts.contacts import directory
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.ids import parse_id
from alerts.core.text import check_line
from alerts.delivery import tracking
from alerts.store import audit
from alerts.store.models import Contact, User

MAX_SENDER = 320


@dataclass(frozen=True, slots=True, kw_only=True)
class Responded:
    """A response recorded: from a contact (``contact_id``) or from anyone (``sender``)."""

    response_id: int
    alert_id: int
    contact_id: int | None
    sender: str | None
    summary: str
    responded_at: datetime


async def respond(
    app: App,
    actor: User,
    alert_id: int,
    *,
    summary: str,
    sender: str | None = None,
    contact_id: int | None = None,
    responded_at: datetime | None = None,
) -> Responded:
    """Record an answer to the alert from anyone; linked to a contact when one matches.

    ``contact_id`` names a contact exactly (else a Conflict naming the field: the alert exists
    and the body is well formed, but names no contact we hold; a 404 would say the alert is
    gone, and a 422 that the body broke the API's schema). ``sender`` is what the
    officer wrote: a contact's id, email (any case), Telegram id or name links that contact;
    anything else ("Ministry of Justice, by phone", an address we do not hold) is kept as written.
    """
    check(actor, "alert.respond")
    text = clean_sender(sender)
    now = utcnow()
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        contact = None
        if contact_id is not None:
            try:
                contact = await directory.get_contact(session, contact_id)
            except NotFound as exc:
                raise Conflict(f"contact_id: {exc.message}", details={"field": "contact_id"}) from None
        elif text:
            contact = await match_contact(session, text)
        response = await tracking.record_response(
            session,
            alert,
            contact_id=contact.id if contact is not None else None,
            sender=None if contact is not None else text,
            summary=summary,
            recorded_by=actor.id,
            now=now,
            responded_at=responded_at,
        )
        await audit.record(
            session,
            user_id=actor.id,
            action="alert.respond",
            object_type="alert",
            object_id=alert.id,
            details={"response": response.id, "contact": response.contact_id},
            now=now,
        )
    app.counts.forget()  # after the commit: the next read counts the answer
    return Responded(
        response_id=response.id,
        alert_id=alert.id,
        contact_id=response.contact_id,
        sender=response.sender,
        summary=response.summary,
        responded_at=response.responded_at,
    )


def clean_sender(sender: str | None) -> str | None:
    """Who answered, as written (None when blank); ValidationError if too long or unprintable."""
    text = (sender or "").strip()
    if not text:
        return None
    if len(text) > MAX_SENDER:
        raise ValidationError(f"from: longer than {MAX_SENDER} characters.", details={"field": "from"})
    return check_line(text, "from")


async def match_contact(session: AsyncSession, text: str) -> Contact | None:
    """The contact ``text`` names (id, email, Telegram id, or a name only one contact has), or None."""
    try:
        number = parse_id(text)
        return await directory.get_contact(session, number if number is not None else text)
    except (NotFound, ValidationError):
        pass  # not an id, email or chat we hold: perhaps a name
    named = list(
        (
            await session.scalars(
                select(Contact)
                .where(func.lower(Contact.name) == text.lower(), Contact.status != "erased")
                .limit(2)
            )
        ).all()
    )
    return named[0] if len(named) == 1 else None
