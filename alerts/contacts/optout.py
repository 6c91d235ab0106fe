"""Opting out, and a Telegram chat opting in: what stops what.

The contract every face keeps (public pages, bot, actions):

- **The unsubscribe link** (its page and the RFC 8058 one-click POST) only ever arrives in an
  email, so it stops *that email address*: the address is suppressed for ``email`` and
  ``press``, which share it. A Telegram chat of the same contact keeps receiving.
- **/stop in a Telegram chat** stops *that chat*: the chat is suppressed; the email address of
  the same contact (a partner whose group is also on file) keeps receiving.
- When a contact has no address left that can receive, its status becomes ``unsubscribed``.
- **The preferences page** chooses among the contact's channels; choosing none stops every
  address of the contact.
- A stopped address comes back only by its own new opt-in: ``/start`` in that chat, or
  subscribing that email again and confirming (``alerts.contacts.subscriptions``; a
  confirmation link issued before the address was stopped does not count).
- ``/start`` changes the language only of a contact reached by Telegram alone: a group's
  administrator does not choose the language of the partner's email.

Every stop suppresses the address (the fan-out leaves suppressed addresses out), puts an
``unsubscribed`` event on the latest delivery to it, and writes an audit entry. Chat ids and
addresses are never logged above DEBUG. Functions flush; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.contacts.directory import contact_addresses, create_contact
from alerts.contacts.subscriptions import clean_language, clean_topics
from alerts.contacts.suppressions import is_suppressed, suppress, unsuppress
from alerts.core.channels import SUBSCRIBER_CHANNELS
from alerts.core.errors import ValidationError
from alerts.core.states import EventType, SuppressionReason
from alerts.store import audit
from alerts.store.events import engagement
from alerts.store.models import Contact, Delivery

logger = logging.getLogger(__name__)


async def unsubscribe(
    session: AsyncSession,
    contact: Contact,
    *,
    now: datetime,
    via: str = "link",
    channels: Collection[str] | None = None,
) -> bool:
    """Stop the contact's addresses on ``channels`` (None: every address); see the module docstring.

    Each stopped address is suppressed, the latest delivery on it gets an ``unsubscribed``
    event, and the contact becomes ``unsubscribed`` when no address of it can still receive.
    Returns False when there was nothing left to stop (nothing more is written).
    """
    if contact.status == "unsubscribed":
        return False
    names = {"email", "press", "telegram"} if channels is None else {*channels}
    if names & {"email", "press"}:
        names |= {"email", "press"}  # one address, one suppression
    stopped: list[str] = []
    live = False
    for channel, address in contact_addresses(contact.email, contact.telegram):
        if channel == "press":
            continue  # press shares email's suppression namespace
        if channel not in names:
            live = live or await _receives(session, contact, channel, address)
            continue
        if await is_suppressed(session, channel, address):
            continue
        await suppress(
            session,
            channel=channel,
            address=address,
            reason=SuppressionReason.UNSUBSCRIBED,
            detail=f"unsubscribed via {via}",
            now=now,
        )
        stopped.append(channel)
    if not stopped and live:
        return False
    if not live:
        contact.status = "unsubscribed"
    contact.updated_at = now
    latest = await session.scalar(
        select(Delivery)
        .where(Delivery.contact_id == contact.id, Delivery.channel.in_(sorted(names)))
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    if latest is not None:
        await engagement(session, latest, EventType.UNSUBSCRIBED, now=now, detail=f"unsubscribed via {via}")
    await session.flush()
    await audit.record(
        session,
        user_id=None,
        action="contact.unsubscribe",
        object_type="contact",
        object_id=contact.id,
        details={"via": via, "channels": sorted(stopped), "status": contact.status},
        now=now,
    )
    logger.info("contact %d unsubscribed via %s (%s)", contact.id, via, ", ".join(stopped) or "nothing new")
    return True


async def _receives(session: AsyncSession, contact: Contact, channel: str, address: str) -> bool:
    """Whether this address of the contact can still receive (wanted and not suppressed)."""
    wanted = contact.channels
    if wanted is not None and not set(wanted) & ({"email", "press"} if channel == "email" else {channel}):
        return False
    return not await is_suppressed(session, channel, address)


async def update_preferences(
    session: AsyncSession,
    contact: Contact,
    *,
    channels: Sequence[str],
    language: str,
    kinds: Sequence[str] = (),
    countries: Sequence[str] = (),
    now: datetime,
) -> None:
    """Change what a subscriber receives; choosing no channel at all is unsubscribing.

    An empty choice goes through ``unsubscribe`` (status, suppressions, event), so nothing
    further reaches the contact; the stored channels are kept for a later re-subscription.
    """
    chosen = [c.value for c in SUBSCRIBER_CHANNELS if c in channels]
    unknown = sorted(set(channels) - set(SUBSCRIBER_CHANNELS))
    if unknown:
        raise ValidationError(
            f"channels: {unknown[0]!r} is not one of {', '.join(SUBSCRIBER_CHANNELS)}",
            details={"field": "channels"},
        )
    contact.language = clean_language(language)
    contact.topics = clean_topics(kinds, countries)
    if not chosen:
        await unsubscribe(session, contact, now=now, via="preferences")
        return
    contact.channels = chosen
    contact.updated_at = now
    await session.flush()
    await audit.record(
        session,
        user_id=None,
        action="contact.preferences",
        object_type="contact",
        object_id=contact.id,
        details={"channels": chosen, "language": contact.language},
        now=now,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatStarted:
    """What /start did: the contacts of the chat, and whether one was created for it."""

    contact_ids: tuple[int, ...]
    created: bool


async def start_chat(
    session: AsyncSession, *, chat_id: str, name: str, language: str, now: datetime
) -> ChatStarted:
    """/start: a new public contact for the chat, or the chat's contacts receiving on it again."""
    lang = clean_language(language)
    found = list(
        await session.scalars(select(Contact).where(Contact.telegram == chat_id).order_by(Contact.id))
    )
    if not found:
        contact = await create_contact(
            session,
            name=name[:200] or "Telegram subscriber",
            telegram=chat_id,
            kind="public",
            language=lang,
            channels=["telegram"],
            now=now,
        )
        found, created = [contact], True
    else:
        created = False
        await unsuppress(session, channel="telegram", address=chat_id)
        for contact in found:
            contact.status = "active"
            if contact.channels is not None and "telegram" not in contact.channels:
                contact.channels = [*contact.channels, "telegram"]
            if not contact.email:
                contact.language = lang
            contact.updated_at = now
        await session.flush()
    for contact in found:
        await audit.record(
            session,
            user_id=None,
            action="contact.subscribe",
            object_type="contact",
            object_id=contact.id,
            details={"via": "telegram", "language": lang, "created": created},
            now=now,
        )
    logger.info("a Telegram chat subscribed (%s)", lang)
    return ChatStarted(contact_ids=tuple(c.id for c in found), created=created)


async def stop_chat(session: AsyncSession, *, chat_id: str, now: datetime) -> str:
    """/stop: suppress the chat, for every contact that has it and none; returns the reply language."""
    found = list(
        await session.scalars(select(Contact).where(Contact.telegram == chat_id).order_by(Contact.id))
    )
    for contact in found:
        await unsubscribe(session, contact, now=now, via="telegram", channels=("telegram",))
    # Also with no contact (or one already unsubscribed): the chat said no, keep it out.
    await suppress(
        session,
        channel="telegram",
        address=chat_id,
        reason=SuppressionReason.UNSUBSCRIBED,
        detail="unsubscribed via telegram",
        now=now,
    )
    return found[0].language if found else "en"
