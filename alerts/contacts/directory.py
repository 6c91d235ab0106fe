"""Contacts and lists: create, update, find, delete; list membership.

Every function takes the caller's session and only flushes: the caller commits, so a refused
request writes nothing. Fields are checked by ``alerts.contacts.fields`` (the same validator
as the CSV import). The CSV import/export lives in ``alerts.contacts.csv_import``; export of one
person's data and erasure in ``alerts.contacts.erasure``.

A contact *reference* (``ref``) is a contact id (int, or ``id:12``), an email address, or a
Telegram chat id / @name (``telegram:12345`` to be explicit). A bare number that is both a
contact id and another contact's chat id is refused as ambiguous rather than guessed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.contacts.fields import (
    DEFAULT_LANGUAGE,
    clean_email,
    clean_fields,
    clean_list_name,
    clean_names,
    clean_status,
)
from alerts.contacts.suppressions import restore_erased
from alerts.core.channels import SUBSCRIBER_CHANNELS, ChannelName
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.ids import MAX_ID, parse_id
from alerts.store.db import dialect_insert, lower
from alerts.store.models import Contact, ContactList, ListMember

logger = logging.getLogger(__name__)

ContactRef = int | str


def new_token() -> str:
    """A random token for a contact's unsubscribe and preferences links."""
    return secrets.token_urlsafe(24)


def contact_addresses(email: str | None, telegram: str | None) -> list[tuple[str, str]]:
    """The (address space, address) pairs a contact can be reached at: ``email`` (which the
    press channel shares) and ``telegram``; suppressions and erasure work on these."""
    pairs: list[tuple[str, str]] = []
    if email:
        pairs.append((ChannelName.EMAIL.value, email))
    if telegram:
        pairs.append((ChannelName.TELEGRAM.value, telegram))
    return pairs


async def get_contact(session: AsyncSession, ref: ContactRef) -> Contact:
    """The contact named by an id, an email or a Telegram id; NotFound naming the ref."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return await _by_id(session, ref, str(ref))
    text = str(ref).strip()
    if not text:
        raise ValidationError("contact reference is empty", details={"field": "contact"})
    prefix, _, rest = text.partition(":")
    if prefix == "id" and parse_id(rest) is not None:
        return await _by_id(session, int(rest), text)
    if prefix == "telegram" and rest:
        return await _by_telegram(session, rest.strip(), text)
    if "@" in text[1:]:
        email = clean_email(text)
        found = await session.scalar(select(Contact).where(Contact.email_key == email.lower()))
        if found is None:
            raise NotFound(f"no contact with email {text}", details={"contact": text})
        return found
    if text.startswith(("@", "-")):
        return await _by_telegram(session, text, text)
    if text.isascii() and text.isdigit():  # an id, or a chat's numeric id (any length)
        number = parse_id(text)
        by_id = await session.get(Contact, number) if number is not None else None
        by_chat = list(await session.scalars(select(Contact).where(Contact.telegram == text).limit(2)))
        if by_id is not None and by_chat and by_chat[0].id != by_id.id:
            raise Conflict(
                f"contact reference {text} is ambiguous: it is contact id {text} and the Telegram chat of "
                f"contact {by_chat[0].id}; write id:{text} or telegram:{text}",
                details={"contact": text},
            )
        if by_id is not None:
            return by_id
        return await _by_telegram(session, text, text)
    raise NotFound(f"no contact {text!r}: give an id, an email or a Telegram id", details={"contact": text})


async def _by_id(session: AsyncSession, contact_id: int, ref: str) -> Contact:
    found = await session.get(Contact, contact_id) if 0 <= contact_id <= MAX_ID else None
    if found is None:
        raise NotFound(f"no contact with id {contact_id}", details={"contact": ref})
    return found


async def _by_telegram(session: AsyncSession, telegram: str, ref: str) -> Contact:
    found = list(await session.scalars(select(Contact).where(Contact.telegram == telegram).limit(2)))
    if not found:
        raise NotFound(f"no contact with Telegram id {telegram}", details={"contact": ref})
    if len(found) > 1:
        raise Conflict(
            f"several contacts have Telegram id {telegram}; give the contact id", details={"contact": ref}
        )
    return found[0]


async def create_contact(
    session: AsyncSession,
    *,
    lists: Iterable[str] = (),
    status: str = "active",
    channels: list[str] | None = None,
    topics: list[str] | None = None,
    now: datetime | None = None,
    **fields: str | None,
) -> Contact:
    """Create a contact from validated fields (name, kind and an email or telegram required)."""
    clean = clean_fields(fields, complete=True)
    when = now or utcnow()
    list_names = [clean_list_name(n) for n in lists]
    if clean.get("email_key"):
        await _refuse_taken_email(session, clean["email_key"], None)
    contact = Contact(
        **{k: v for k, v in clean.items()},
        status=clean_status(status),
        channels=clean_names("channels", channels, allowed=SUBSCRIBER_CHANNELS),
        topics=clean_names("topics", topics),
        token=new_token(),
        created_at=when,
        updated_at=when,
    )
    contact.language = contact.language or DEFAULT_LANGUAGE
    session.add(contact)
    await session.flush()
    await restore_erased(session, contact_addresses(contact.email, contact.telegram), now=when)
    for name in list_names:
        await add_to_list(session, contact.id, name)
    logger.info("contact %d created", contact.id)
    return contact


async def _refuse_taken_email(session: AsyncSession, email_key: str | None, own_id: int | None) -> None:
    other = await session.scalar(select(Contact.id).where(Contact.email_key == email_key))
    if other is not None and other != own_id:
        raise Conflict(
            f"email is already used by contact {other}", details={"field": "email", "contact": other}
        )


async def update_contact(
    session: AsyncSession, ref: ContactRef, *, now: datetime | None = None, **changes: Any
) -> Contact:
    """Change some fields of a contact; empty values clear optional fields."""
    contact = await get_contact(session, ref)
    extra = {k: changes.pop(k) for k in ("status", "channels", "topics") if k in changes}
    clean = clean_fields(changes, complete=False)
    for required in ("name", "kind"):
        if required in clean and clean[required] is None:
            raise ValidationError(f"{required} is required", details={"field": required})
    email = clean.get("email", contact.email)
    telegram = clean.get("telegram", contact.telegram)
    if not email and not telegram:
        if "email" in clean and "telegram" in clean:  # the request itself clears both
            raise ValidationError("an email or a telegram is required", details={"field": "email"})
        # Valid input that this contact's other address makes impossible: a conflict, not a typo.
        raise Conflict(
            "an email or a telegram is required: the contact would have neither", details={"field": "email"}
        )
    if clean.get("email_key"):
        await _refuse_taken_email(session, clean["email_key"], contact.id)
    if "language" in clean:
        clean["language"] = clean["language"] or DEFAULT_LANGUAGE
    for key, value in clean.items():
        setattr(contact, key, value)
    if "status" in extra:
        contact.status = clean_status(extra["status"])
    if "channels" in extra:
        contact.channels = clean_names("channels", extra["channels"], allowed=SUBSCRIBER_CHANNELS)
    if "topics" in extra:
        contact.topics = clean_names("topics", extra["topics"])
    when = now or utcnow()
    contact.updated_at = when
    await session.flush()
    await restore_erased(session, contact_addresses(contact.email, contact.telegram), now=when)
    logger.info("contact %d updated", contact.id)
    return contact


async def delete_contact(session: AsyncSession, ref: ContactRef) -> int:
    """Delete a contact and its list memberships (not an erasure: see ``erasure``). Returns its id."""
    contact = await get_contact(session, ref)
    contact_id = contact.id
    await session.execute(delete(ListMember).where(ListMember.contact_id == contact_id))
    await session.delete(contact)
    await session.flush()
    logger.info("contact %d deleted", contact_id)
    return contact_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_contacts(
    session: AsyncSession,
    query: str = "",
    *,
    kind: str | None = None,
    list_name: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Contact]:
    """Contacts whose name, email, organisation or Telegram id contains ``query`` (any case)."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise ValidationError("limit must be 1-1000 and offset at least 0", details={"field": "limit"})
    stmt = select(Contact)
    if query.strip():
        pattern = f"%{_escape_like(query.strip().lower())}%"
        stmt = stmt.where(
            or_(
                *(
                    lower(col).like(pattern, escape="\\")
                    for col in (Contact.name, Contact.email_key, Contact.organisation, Contact.telegram)
                )
            )
        )
    if kind is not None:
        stmt = stmt.where(Contact.kind == clean_fields({"kind": kind}, complete=False)["kind"])
    if list_name is not None:
        the_list = await get_list(session, list_name)
        stmt = stmt.join(ListMember, ListMember.contact_id == Contact.id).where(
            ListMember.list_id == the_list.id
        )
    stmt = stmt.order_by(Contact.name, Contact.id).limit(limit).offset(offset)
    return list(await session.scalars(stmt))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListSummary:
    """A list with its member count."""

    id: int
    name: str
    description: str
    members: int


async def get_list(session: AsyncSession, name: str) -> ContactList:
    """The list with this name; NotFound naming it."""
    clean = clean_list_name(name)
    found = await session.scalar(select(ContactList).where(ContactList.name == clean))
    if found is None:
        raise NotFound(f"no list named {clean!r}", details={"list": clean})
    return found


async def get_or_create_list(session: AsyncSession, name: str, description: str = "") -> ContactList:
    """The list with this name, created when missing (also when another transaction is creating
    it at the same moment: its INSERT decides, and this one waits for it and joins its list)."""
    clean = clean_list_name(name)
    named = select(ContactList).where(ContactList.name == clean)
    found = await session.scalar(named)
    if found is None:
        created = await session.scalar(
            dialect_insert(session, ContactList)
            .values(name=clean, description=description, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(ContactList.id)
        )
        if created is not None:
            logger.info("list %r created", clean)
        found = await session.scalar(named)
    assert found is not None  # created here, or committed by the other transaction
    return found


async def list_lists(session: AsyncSession) -> list[ListSummary]:
    """Every list, by name, with its member count."""
    counts = select(ListMember.list_id, func.count().label("n")).group_by(ListMember.list_id).subquery()
    rows = await session.execute(
        select(ContactList, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.list_id == ContactList.id)
        .order_by(ContactList.name)
    )
    return [
        ListSummary(id=lst.id, name=lst.name, description=lst.description, members=int(n)) for lst, n in rows
    ]


async def add_to_list(session: AsyncSession, ref: ContactRef, list_name: str) -> bool:
    """Add a contact to a list (created when missing); False when it was already a member."""
    contact = await get_contact(session, ref)
    the_list = await get_or_create_list(session, list_name)
    if await session.get(ListMember, (the_list.id, contact.id)) is not None:
        return False
    session.add(ListMember(list_id=the_list.id, contact_id=contact.id))
    await session.flush()
    return True


async def remove_from_list(session: AsyncSession, ref: ContactRef, list_name: str) -> bool:
    """Remove a contact from a list; False when it was not a member."""
    contact = await get_contact(session, ref)
    the_list = await get_list(session, list_name)
    result = await session.execute(
        delete(ListMember).where(ListMember.list_id == the_list.id, ListMember.contact_id == contact.id)
    )
    return bool(getattr(result, "rowcount", 0))


async def contact_lists(session: AsyncSession, contact_id: int) -> list[str]:
    """Names of the lists a contact belongs to, sorted."""
    rows = await session.scalars(
        select(ContactList.name)
        .join(ListMember, ListMember.list_id == ContactList.id)
        .where(ListMember.contact_id == contact_id)
        .order_by(ContactList.name)
    )
    return list(rows)
