"""Contact actions: add, update, delete, import (CSV), export and erase a contact.

Each checks the actor's role (``contacts.edit``; ``contacts.import``; ``contacts.erase`` for
erasure, admins only), does its work in one transaction with its audit entry, and returns
what the faces show. Audit entries name the contact by id and list the fields that changed,
never an address.

The CSV import is the one exception to "one transaction": a file of any size is written in
batches of short transactions (bounded memory; SQLite has one writer), every batch complete
or not at all; its audit entry, with the counts, is written once the last batch is in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.app import App
from alerts.contacts import directory, erasure
from alerts.contacts.batch import ImportReport
from alerts.contacts.csv_import import DEFAULT_KIND, import_csv
from alerts.contacts.erasure import ErasureReport
from alerts.contacts.fields import TEXT_FIELDS, clean_list_name
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict
from alerts.store import audit
from alerts.store.db import dialect_insert
from alerts.store.models import Contact, ContactList, User

#: Contact settings besides the text fields.
SETTINGS = ("status", "channels", "topics")
_TAKEN = "email is already used by another contact"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactView:
    """A contact as the faces show it (never its link token)."""

    id: int
    name: str
    email: str | None
    telegram: str | None
    kind: str
    language: str
    organisation: str | None
    country: str | None
    title: str | None
    form_of_address: str | None
    status: str
    channels: tuple[str, ...] | None
    topics: tuple[str, ...] | None
    lists: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API's form."""
        return {
            "id": self.id,
            **{name: getattr(self, name) for name in TEXT_FIELDS},
            "status": self.status,
            "channels": None if self.channels is None else list(self.channels),
            "topics": None if self.topics is None else list(self.topics),
            "lists": list(self.lists),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


async def view_of(session: AsyncSession, contact: Contact) -> ContactView:
    """The view of a loaded contact, with its lists."""
    return ContactView(
        id=contact.id,
        **{name: getattr(contact, name) for name in TEXT_FIELDS},
        status=contact.status,
        channels=None if contact.channels is None else tuple(contact.channels),
        topics=None if contact.topics is None else tuple(contact.topics),
        lists=tuple(await directory.contact_lists(session, contact.id)),
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Deleted:
    """A deleted contact (its deliveries keep their counts)."""

    contact_id: int


async def add(
    app: App,
    actor: User,
    *,
    fields: Mapping[str, Any],
    lists: Sequence[str] = (),
    now: datetime | None = None,
) -> ContactView:
    """Add a contact: text fields, optional status/channels/topics, and the lists it joins."""
    check(actor, "contacts.edit")
    when = now or utcnow()
    values = dict(fields)
    settings = {key: values.pop(key) for key in SETTINGS if key in values}
    try:
        async with app.sessions.begin() as session:
            contact = await directory.create_contact(session, lists=lists, now=when, **settings, **values)
            view = await view_of(session, contact)
            await audit.record(
                session,
                user_id=actor.id,
                action="contact.create",
                object_type="contact",
                object_id=contact.id,
                details={"kind": view.kind, "lists": list(view.lists)},
                now=when,
            )
    except IntegrityError:  # the same email added concurrently since the check
        raise Conflict(_TAKEN, details={"field": "email"}) from None
    return view


@dataclass(frozen=True, slots=True, kw_only=True)
class ListView:
    """A contact list as the faces show it."""

    id: int
    name: str
    description: str
    members: int


async def create_list(app: App, actor: User, name: str, *, description: str = "") -> ListView:
    """A new, empty list; Conflict when the name is taken (also when someone took it a moment
    ago, between the check and the write)."""
    check(actor, "contacts.edit")
    clean = clean_list_name(name)
    taken = Conflict(f"list {clean!r} already exists", details={"field": "name"})
    async with app.sessions.begin() as session:
        # one statement decides, whoever else adds the name at the same moment: the loser's
        # INSERT returns no row (a check before the insert can pass for both)
        created = await session.scalar(
            dialect_insert(session, ContactList)
            .values(name=clean, description=description, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(ContactList.id)
        )
        if created is None:
            raise taken
        await audit.record(
            session, user_id=actor.id, action="list.create", object_type="list",
            object_id=created, details={"name": clean}, now=utcnow(),
        )  # fmt: skip
        view = ListView(id=created, name=clean, description=description, members=0)
    return view


async def update(
    app: App,
    actor: User,
    contact_id: int,
    *,
    changes: Mapping[str, Any],
    lists: Sequence[str] | None = None,
    now: datetime | None = None,
) -> ContactView:
    """Change some fields (empty values clear optional ones); ``lists``, when given, become its lists."""
    check(actor, "contacts.edit")
    when = now or utcnow()
    try:
        async with app.sessions.begin() as session:
            contact = await directory.get_contact(session, contact_id)
            before = await view_of(session, contact)
            await directory.update_contact(session, contact.id, now=when, **changes)
            if lists is not None:
                wanted, current = set(lists), set(before.lists)
                for name in sorted(wanted - current):
                    await directory.add_to_list(session, contact.id, name)
                for name in sorted(current - wanted):
                    await directory.remove_from_list(session, contact.id, name)
            view = await view_of(session, contact)
            changed = [
                name
                for name in (*TEXT_FIELDS, *SETTINGS, "lists")
                if getattr(before, name) != getattr(view, name)
            ]
            await audit.record(
                session,
                user_id=actor.id,
                action="contact.update",
                object_type="contact",
                object_id=contact.id,
                details={"fields": changed},
                now=when,
            )
    except IntegrityError:
        raise Conflict(_TAKEN, details={"field": "email"}) from None
    return view


async def delete(app: App, actor: User, contact_id: int, *, now: datetime | None = None) -> Deleted:
    """Delete a contact and its list memberships (not an erasure: its addresses stay on deliveries)."""
    check(actor, "contacts.edit")
    when = now or utcnow()
    async with app.sessions.begin() as session:
        deleted = await directory.delete_contact(session, contact_id)
        await audit.record(
            session,
            user_id=actor.id,
            action="contact.delete",
            object_type="contact",
            object_id=deleted,
            now=when,
        )
    return Deleted(contact_id=deleted)


async def import_file(
    app: App,
    actor: User,
    source: BinaryIO | Path,
    *,
    list_name: str | None = None,
    progress: bool = False,
    now: datetime | None = None,
    default_kind: str = DEFAULT_KIND,
) -> ImportReport:
    """Import a contacts CSV (see ``alerts.contacts.csv_import``); refused rows are in the report."""
    check(actor, "contacts.import")
    when = now or utcnow()
    report = await import_csv(
        app.sessions, source, list_name=list_name, progress=progress, now=when, default_kind=default_kind
    )
    async with app.sessions.begin() as session:
        await audit.record(
            session,
            user_id=actor.id,
            action="contact.import",
            object_type="contact",
            object_id=None,
            details={
                "rows": report.total,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "refused": len(report.refused),
                "list": list_name,
            },
            now=when,
        )
    return report


async def export(
    app: App, actor: User, ref: directory.ContactRef, *, now: datetime | None = None
) -> dict[str, Any]:
    """Everything held about one contact (a data-protection access request); the export is audited."""
    check(actor, "contacts.edit")
    async with app.sessions.begin() as session:
        data = await erasure.export_contact(session, ref)
        await audit.record(
            session,
            user_id=actor.id,
            action="contact.export",
            object_type="contact",
            object_id=data["contact"]["id"],
            now=now or utcnow(),
        )
    return data


async def erase(
    app: App, actor: User, ref: directory.ContactRef, *, now: datetime | None = None
) -> ErasureReport:
    """Erase one contact's personal data for good (admins); anonymous counts and hashed suppressions stay."""
    check(actor, "contacts.erase")
    when = now or utcnow()
    async with app.sessions.begin() as session:
        report = await erasure.erase_contact(session, ref, now=when)
        await audit.record(
            session,
            user_id=actor.id,
            action="contact.erase",
            object_type="contact",
            object_id=report.contact_id,
            details={
                "deliveries_anonymised": report.deliveries_anonymised,
                "suppressions_hashed": report.suppressions_hashed,
            },
            now=when,
        )
    return report
