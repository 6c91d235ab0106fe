"""API routes for contacts, lists, the CSV import and template families."""

from __future__ import annotations

import tempfile

from aiohttp import web

from alerts.actions import contacts as actions
from alerts.contacts import directory as contacts
from alerts.contacts.csv_import import EXPORT_COLUMNS
from alerts.contacts.fields import KINDS, MAX_LENGTHS, STATUSES
from alerts.core.channels import SUBSCRIBER_CHANNELS
from alerts.core.errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType
from alerts.store.models import User
from alerts.web.api.routes import (
    ID_PATH,
    OFFSET,
    PREFIX,
    Ctx,
    Param,
    Route,
    Schema,
    json_response,
)
from alerts.web.api.schema import EMAIL, LANGUAGE_CODE, LIST_NAME, REFUSAL, TELEGRAM, line, text

#: Largest CSV file the import accepts over HTTP (spooled to disk past 1 MiB, never held whole).
MAX_CSV_BYTES = 64 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv")
#: The document describes the canonical file (the header as ``alerts contacts export`` writes
#: it, printable ASCII rows of at most 1,000 characters, no quoting); the import also takes
#: semicolons, any column order, quoted cells and UTF-8 (see README). A row that does not fit
#: is reported in the answer's ``refused``, never a 422.
CSV_BODY: Schema = {
    "type": "string",
    "description": "CSV file (UTF-8): a header line, then one contact a line",
    "maxLength": MAX_CSV_BYTES,
    "pattern": "^(?:\\ufeff)?" + ",".join(EXPORT_COLUMNS) + "(?:\\r?\\n[ !#-~]{0,1000})*$",
}
TOPICS: Schema = {"type": ["array", "null"], "items": line(64), "maxItems": 100}
_OPTIONAL = ("organisation", "country", "title", "form_of_address")

FIELDS: dict[str, Schema] = {
    "name": line(MAX_LENGTHS["name"]),
    "email": EMAIL,
    "telegram": TELEGRAM,
    "kind": {"type": "string", "enum": list(KINDS)},
    "language": {
        "anyOf": [{"type": "null"}, {"const": ""}, LANGUAGE_CODE],
        "description": "ISO 639-1; empty or null: en",
    },
    **{name: line(MAX_LENGTHS[name], blank=True, nullable=True) for name in _OPTIONAL},
    "status": {"type": "string", "enum": list(STATUSES)},
    "channels": {
        "type": ["array", "null"],
        "items": {"type": "string", "enum": [c.value for c in SUBSCRIBER_CHANNELS]},
        "maxItems": 4,
    },
    "topics": TOPICS,
}
#: A new contact needs a way to reach it: an email or a Telegram chat (``contacts.fields``).
REACHABLE: list[Schema] = [
    {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
    for name in ("email", "telegram")
]
CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "anyOf": REACHABLE,
    REFUSAL: {"field": "email", "message": "an email or a telegram is required"},
    "properties": {**FIELDS, "lists": {"type": "array", "items": LIST_NAME, "maxItems": 100}},
}
_CLEARED: Schema = {"enum": [None, ""]}
PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": FIELDS,
    # clearing both addresses at once leaves nothing to reach (clearing one is a 409 when the
    # contact has no other)
    "not": {"required": ["email", "telegram"], "properties": {"email": _CLEARED, "telegram": _CLEARED}},
    REFUSAL: {"field": "email", "message": "an email or a telegram is required"},
}
CONTACT: Schema = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "integer"},
        **{k: {} for k in FIELDS},
        "lists": {"type": "array", "items": {"type": "string"}},
    },
}
LIST: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "members": {"type": "integer"},
    },
}
REPORT: Schema = {
    "type": "object",
    "properties": {
        "total": {"type": "integer"},
        "created": {"type": "integer"},
        "updated": {"type": "integer"},
        "unchanged": {"type": "integer"},
        "merged_in_file": {"type": "integer"},
        "previously_erased": {"type": "integer"},
        "summary": {"type": "string"},
        "refused": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"row": {"type": "integer"}, "reason": {"type": "string"}},
            },
        },
        "lines": {"type": "array", "items": {"type": "string"}, "description": '"row N: reason" lines'},
    },
}


def _actor(ctx: Ctx) -> User:
    if ctx.user is None:  # the routes below all need a token; this is the type's guarantee
        raise Unauthorized("an API token is required")
    return ctx.user


async def list_contacts(ctx: Ctx) -> web.Response:
    """Contacts matching a search, by name, a page at a time."""
    q = ctx.query
    async with ctx.app.reads() as session:
        found = await contacts.search_contacts(
            session,
            q.get("q", ""),
            kind=q.get("kind"),
            list_name=q.get("list"),
            limit=q["limit"],
            offset=q["offset"],
        )
        rows = [(await actions.view_of(session, c)).to_json() for c in found]
    return json_response({"contacts": rows, "limit": q["limit"], "offset": q["offset"]})


async def create_contact(ctx: Ctx) -> web.Response:
    """A new contact (same validation as the CSV import)."""
    fields = dict(ctx.body)
    lists = fields.pop("lists", [])
    view = await actions.add(ctx.app, _actor(ctx), fields=fields, lists=lists)
    return json_response(view.to_json(), status=201)


async def get_contact(ctx: Ctx) -> web.Response:
    """One contact."""
    async with ctx.app.reads() as session:
        contact = await contacts.get_contact(session, ctx.id)
        return json_response((await actions.view_of(session, contact)).to_json())


async def update_contact(ctx: Ctx) -> web.Response:
    """Change some fields; null clears an optional field."""
    view = await actions.update(ctx.app, _actor(ctx), ctx.id, changes=ctx.body)
    return json_response(view.to_json())


async def delete_contact(ctx: Ctx) -> web.Response:
    """Delete a contact and its list memberships (erasure is a separate, admin-only act)."""
    deleted = await actions.delete(ctx.app, _actor(ctx), ctx.id)
    return json_response({"id": deleted.contact_id, "deleted": True})


async def import_contacts(ctx: Ctx) -> web.Response:
    """Import a contacts CSV; refused rows come back as "row N: reason" lines."""
    request = ctx.request
    if request.content_type not in CSV_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type: {request.content_type or 'none'} is not supported; send text/csv.",
            details={"content_type": request.content_type},
        )
    if request.content_length is not None and request.content_length > MAX_CSV_BYTES:
        raise PayloadTooLarge(
            f"body: larger than the limit of {MAX_CSV_BYTES} bytes.", details={"limit": MAX_CSV_BYTES}
        )
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_CSV_BYTES:
                raise PayloadTooLarge(
                    f"body: larger than the limit of {MAX_CSV_BYTES} bytes.", details={"limit": MAX_CSV_BYTES}
                )
            spool.write(chunk)
        spool.seek(0)
        report = await actions.import_file(ctx.app, _actor(ctx), spool, list_name=ctx.query.get("list"))  # type: ignore[arg-type]
    return json_response(
        {
            "total": report.total,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "merged_in_file": report.merged_in_file,
            "previously_erased": report.previously_erased,
            "summary": report.summary(),
            "refused": [{"row": r.row, "reason": r.reason} for r in report.refused],
            "lines": [str(r) for r in report.refused],
        }
    )


async def list_lists(ctx: Ctx) -> web.Response:
    """Every list with its member count."""
    async with ctx.app.reads() as session:
        rows = await contacts.list_lists(session)
    return json_response(
        {
            "lists": [
                {"id": s.id, "name": s.name, "description": s.description, "members": s.members} for s in rows
            ]
        }
    )


async def create_list(ctx: Ctx) -> web.Response:
    """A new, empty list; 409 when the name is taken."""
    made = await actions.create_list(
        ctx.app, _actor(ctx), ctx.body["name"], description=ctx.body.get("description", "")
    )
    doc = {"id": made.id, "name": made.name, "description": made.description, "members": made.members}
    return json_response(doc, status=201)


async def list_templates(ctx: Ctx) -> web.Response:
    """Template families with their variables and languages."""
    renderer = ctx.app.renderer
    out = []
    for name in renderer.families():
        info = renderer.family(name)
        out.append(
            {
                "family": info.name,
                "description": info.description,
                "languages": list(info.languages),
                "variables": [
                    {"name": v.name, "type": v.type, "required": v.required, "description": v.description}
                    for v in info.variables.values()
                ],
            }
        )
    return json_response({"templates": out})


C = f"{PREFIX}/contacts"
ROUTES: list[Route] = [
    Route(
        method="GET",
        path=C,
        handler=list_contacts,
        summary="Search contacts",
        action="contacts.edit",  # addresses: the same permission as the UI's contact pages
        tag="contacts",
        query=(
            Param(name="q", schema=line(200, blank=True), description="text in name/email/org"),
            Param(name="kind", schema={"type": "string", "enum": list(KINDS)}),
            Param(name="list", schema={"anyOf": [{"const": ""}, LIST_NAME]}),
            Param(name="limit", schema={"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
            OFFSET,
        ),
        response={
            "type": "object",
            "properties": {
                "contacts": {"type": "array", "items": CONTACT},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        },
        errors=(404,),
    ),
    Route(
        method="POST",
        path=C,
        handler=create_contact,
        summary="Create a contact",
        action="contacts.edit",
        tag="contacts",
        request=CREATE,
        required_body=True,
        status=201,
        response=CONTACT,
        creates=f"{C}/{ID_PATH}",
        errors=(409,),
    ),
    Route(
        method="POST",
        path=f"{C}/import",
        handler=import_contacts,
        summary="Import contacts from CSV",
        action="contacts.import",
        tag="contacts",
        request=CSV_BODY,
        request_type="text/csv",
        required_body=True,
        max_body=MAX_CSV_BYTES,
        response=REPORT,
        query=(
            Param(
                name="list",
                schema={"anyOf": [{"const": ""}, LIST_NAME]},
                description="add every imported contact to this list",
            ),
        ),
    ),
    Route(
        method="GET",
        path=f"{C}/{ID_PATH}",
        handler=get_contact,
        summary="One contact",
        action="contacts.edit",  # addresses: the same permission as the UI's contact pages
        tag="contacts",
        response=CONTACT,
        errors=(404,),
    ),
    Route(
        method="PATCH",
        path=f"{C}/{ID_PATH}",
        handler=update_contact,
        summary="Change a contact",
        action="contacts.edit",
        tag="contacts",
        request=PATCH,
        required_body=True,
        response=CONTACT,
        errors=(404, 409),
    ),
    Route(
        method="DELETE",
        path=f"{C}/{ID_PATH}",
        handler=delete_contact,
        summary="Delete a contact",
        action="contacts.edit",
        tag="contacts",
        errors=(404,),
        response={
            "type": "object",
            "properties": {"id": {"type": "integer"}, "deleted": {"type": "boolean"}},
        },
    ),
    Route(
        method="GET",
        path=f"{PREFIX}/lists",
        handler=list_lists,
        summary="Lists with member counts",
        action="view",
        tag="contacts",
        response={"type": "object", "properties": {"lists": {"type": "array", "items": LIST}}},
    ),
    Route(
        method="POST",
        path=f"{PREFIX}/lists",
        handler=create_list,
        summary="Create a list",
        action="contacts.edit",
        tag="contacts",
        required_body=True,
        status=201,
        response=LIST,
        errors=(409,),
        request={
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": LIST_NAME,
                "description": text(2000),
            },
        },
    ),
    Route(
        method="GET",
        path=f"{PREFIX}/templates",
        handler=list_templates,
        summary="Template families, their variables and languages",
        action="view",
        tag="templates",
        response={
            "type": "object",
            "properties": {"templates": {"type": "array", "items": {"type": "object"}}},
        },
    ),
]
