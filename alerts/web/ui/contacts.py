"""Officers' pages for contacts: search, create, edit, lists, CSV import with its row report.

Contact addresses are shown only to roles that manage contacts (``contacts.edit``): a viewer
or a reviewer has no need for a journalist's or an authority's address book.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from aiohttp import web

from alerts.actions import contacts as actions
from alerts.contacts import directory as contacts
from alerts.contacts.fields import KINDS, STATUSES, TEXT_FIELDS
from alerts.core.errors import AlertsError, ValidationError
from alerts.core.ids import MAX_PAGE, parse_number
from alerts.store.models import Contact
from alerts.web.i18n import N_
from alerts.web.ui.pages import ID, Ctx, page, path_id, redirect
from alerts.web.ui.pages import PREFIX as P

logger = logging.getLogger(__name__)
PAGE_SIZE = 50
MAX_UPLOAD = 8 * 1024 * 1024


@page("contacts.edit")
async def contact_list(c: Ctx) -> web.Response:
    """GET /office/contacts?q=&kind=&list=&page="""
    q = c.request.query
    query, kind, list_name, raw_page = (
        q.get("q", ""),
        q.get("kind", ""),
        q.get("list", ""),
        q.get("page", "1"),
    )
    number = parse_number(raw_page, "page", minimum=1, maximum=MAX_PAGE)
    async with c.app.reads() as session:
        found = await contacts.search_contacts(
            session,
            query,
            kind=kind or None,
            list_name=list_name or None,
            limit=PAGE_SIZE + 1,
            offset=(number - 1) * PAGE_SIZE,
        )
        lists = await contacts.list_lists(session)
    return c.render(
        "contacts.html",
        contacts=found[:PAGE_SIZE],
        more=len(found) > PAGE_SIZE,
        page=number,
        q=query,
        kind=kind,
        list_name=list_name,
        kinds=KINDS,
        lists=lists,
        notice=c.request.query.get("notice", ""),
    )


def _form_values(c: Ctx) -> dict[str, Any]:
    return {name: c.field(name) for name in TEXT_FIELDS}


def _contact_values(contact: Contact | None) -> dict[str, Any]:
    if contact is None:
        return {name: "" for name in TEXT_FIELDS} | {"kind": "authority", "language": "en"}
    return {name: getattr(contact, name) or "" for name in TEXT_FIELDS}


async def _editor(
    c: Ctx,
    contact: Contact | None,
    *,
    values: dict[str, Any],
    member_of: list[str],
    error: str = "",
    status: int = 200,
) -> web.Response:
    async with c.app.reads() as session:
        lists = [s.name for s in await contacts.list_lists(session)]
    return c.render(
        "contact.html",
        contact=contact,
        values=values,
        member_of=member_of,
        all_lists=lists,
        kinds=KINDS,
        statuses=STATUSES,
        error=error,
        status=status,
    )


@page("contacts.edit")
async def new_contact_form(c: Ctx) -> web.Response:
    """GET /office/contacts/new"""
    return await _editor(c, None, values=_contact_values(None), member_of=[])


@page("contacts.edit")
async def create_contact(c: Ctx) -> web.Response:
    """POST /office/contacts/new"""
    values = _form_values(c)
    lists = c.fields("lists") + [n.strip() for n in c.field("new_lists").split(",") if n.strip()]
    try:
        fields: dict[str, Any] = {k: (v or None) for k, v in values.items()}
        new_id = (await actions.add(c.app, c.user, fields=fields, lists=lists)).id
    except AlertsError as exc:
        if exc.http_status not in (409, 422):
            raise
        return await _editor(
            c, None, values=values, member_of=lists, error=c.said(exc), status=exc.http_status
        )
    return redirect(f"{P}/contacts/{new_id}?notice=saved")


@page("contacts.edit")
async def contact_page(c: Ctx) -> web.Response:
    """GET /office/contacts/{id}: the editor on one contact."""
    async with c.app.reads() as session:
        contact = await contacts.get_contact(session, path_id(c.request))
        member_of = await contacts.contact_lists(session, contact.id)
    return await _editor(c, contact, values=_contact_values(contact), member_of=member_of, status=200)


@page("contacts.edit")
async def update_contact(c: Ctx) -> web.Response:
    """POST /office/contacts/{id}: change fields, status and list memberships."""
    cid = path_id(c.request)
    values = _form_values(c)
    wanted = set(c.fields("lists")) | {n.strip() for n in c.field("new_lists").split(",") if n.strip()}
    changes: dict[str, Any] = dict(values)
    if c.field("status"):
        changes["status"] = c.field("status")
    try:
        await actions.update(c.app, c.user, cid, changes=changes, lists=sorted(wanted))
    except AlertsError as exc:
        if exc.http_status not in (409, 422):
            raise
        async with c.app.reads() as session:
            contact = await contacts.get_contact(session, cid)
        return await _editor(
            c, contact, values=values, member_of=sorted(wanted), error=c.said(exc), status=exc.http_status
        )
    return redirect(f"{P}/contacts/{cid}?notice=saved")


@page("contacts.erase")
async def erase_contact(c: Ctx) -> web.Response:
    """POST /office/contacts/{id}/erase: remove the person's data for good (admins)."""
    await actions.erase(c.app, c.user, path_id(c.request))
    return redirect(f"{P}/contacts?notice=erased")


@page("contacts.import")
async def import_form(c: Ctx) -> web.Response:
    """GET /office/contacts/import"""
    return c.render("import.html", report=None, error="", list_name="")


@page("contacts.import")
async def import_contacts(c: Ctx) -> web.Response:
    """POST /office/contacts/import (multipart: file, list): the summary and one line per refused row."""
    upload = c.form.get("file") if c.form is not None else None
    list_name = c.field("list") or None
    if not isinstance(upload, web.FileField):
        return c.render(
            "import.html",
            status=422,
            report=None,
            list_name=list_name or "",
            error=c.translate(N_("file: choose a CSV file to import")),
        )
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return c.render(
            "import.html",
            status=422,
            report=None,
            list_name=list_name or "",
            error=c.translate(
                N_("file: larger than %(n)s MB; use `alerts contacts import`"), n=MAX_UPLOAD // (1024 * 1024)
            ),
        )
    try:
        report = await actions.import_file(c.app, c.user, io.BytesIO(data), list_name=list_name)
    except ValidationError as exc:
        return c.render("import.html", status=422, report=None, list_name=list_name or "", error=c.said(exc))
    logger.info("contacts imported from the web: %s", report.summary())
    return c.render("import.html", report=report, error="", list_name=list_name or "")


def setup(webapp: web.Application) -> None:
    """Add the contact pages."""
    webapp.router.add_get(f"{P}/contacts", contact_list)
    webapp.router.add_get(f"{P}/contacts/new", new_contact_form)
    webapp.router.add_post(f"{P}/contacts/new", create_contact)
    webapp.router.add_get(f"{P}/contacts/import", import_form)
    webapp.router.add_post(f"{P}/contacts/import", import_contacts)
    webapp.router.add_get(f"{P}/contacts/{ID}", contact_page)
    webapp.router.add_post(f"{P}/contacts/{ID}", update_contact)
    webapp.router.add_post(f"{P}/contacts/{ID}/erase", erase_contact)
