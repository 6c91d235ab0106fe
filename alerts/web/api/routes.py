"""JSON API under /api/v1: bearer tokens, one route table, request checking.

Every API route is declared once, as a ``Route`` (method, path, summary, permission, request
and response schemas) in the ``ROUTES`` of its handler module. ``alerts.web.api.table`` gathers
them, registers them with aiohttp (``endpoint`` wraps each) and serves the OpenAPI document
that ``alerts.web.api.openapi`` builds from the same table, so the two cannot drift; the request body
is checked against the very schema the document publishes (``check``).

A request is refused in this order: no or bad token (401), role or a read-only token on any
method but GET (403), body too large
(413), wrong content type (415), malformed JSON (400), a field that does not fit (422).
Handlers write in one transaction (``app.sessions.begin()``): a refusal rolls it back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from alerts.accounts import users
from alerts.app import App
from alerts.compose import drafts
from alerts.core.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from alerts.core.ids import ID_PATTERN, parse_id, parse_number
from alerts.core.ids import MAX_ID as MAX_ID  # the route modules and OpenAPI read it here
from alerts.core.nesting import check_depth
from alerts.delivery import tracking
from alerts.store.models import User
from alerts.web.api.schema import Schema as Schema
from alerts.web.api.schema import check
from alerts.web.base import check_fields
from alerts.web.bodies import read_body

PREFIX = "/api/v1"
#: The methods a read-only API token may use.
READ_METHODS = frozenset({"GET", "HEAD"})
READ_ONLY = (
    "this API token is read-only: it may only read (GET), not {method}; "
    "ask an admin for a token that may write"
)
#: Largest JSON body accepted (bytes); the CSV import has its own limit.
MAX_JSON_BYTES = 256 * 1024
#: Largest id a path accepts: bigger numbers cannot name a row (and would overflow the database).
ID_PATH = "{id:" + ID_PATTERN + "}"


async def authenticate(request: web.Request) -> User:
    """The user named by the request's bearer token."""
    from alerts.web.base import APP

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an API token is required: Authorization: Bearer <token>.")
    async with request.app[APP].reads() as session:
        return await users.authenticate_token(session, token.strip())


# --------------------------------------------------------------------------- the route table


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """A query parameter: its name, schema and meaning."""

    name: str
    schema: Schema
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ctx:
    """What a handler gets: the request, the open App, the user and the checked body/query."""

    request: web.Request
    app: App
    user: User | None
    body: dict[str, Any]
    query: dict[str, Any]

    @property
    def id(self) -> int:
        """The ``{id}`` of the path."""
        return path_id(self.request)


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One API route, declared once: aiohttp registers it, OpenAPI documents it."""

    method: str
    path: str  # aiohttp form, e.g. "/api/v1/alerts/{id:[0-9]{1,16}}"
    handler: Handler | None  # None: registered by another module (its setup), documented here
    summary: str
    action: str | None  # users.PERMISSIONS key; None: no token needed
    tag: str
    #: The JSON body's schema, or how to build it from the App (case data: its template families).
    request: Schema | Callable[[App], Schema] | None = None
    request_type: str = "application/json"
    required_body: bool = False
    max_body: int = MAX_JSON_BYTES
    query: tuple[Param, ...] = ()
    status: int = 200
    response: Schema = field(default_factory=lambda: {"type": "object"})
    response_type: str = "application/json"
    errors: tuple[int, ...] = ()
    #: A create route: the path of what it creates (``…/{id}``); the OpenAPI document links its
    #: response to every route under that path, with the new id (stateful clients chain them).
    creates: str | None = None
    #: The routes this one's success opens on the same object ("METHOD path", e.g. submit opens
    #: approve): the OpenAPI document links them with the object's path id, so a stateful client
    #: walks the workflow (create, submit, approve, send…) rather than jumping into it.
    then: tuple[str, ...] = ()

    HTTP_METHODS: ClassVar[tuple[str, ...]] = ("GET", "POST", "PATCH", "DELETE", "PUT")

    def request_schema(self, app: App) -> Schema | None:
        """The request body's schema for this App."""
        return self.request(app) if callable(self.request) else self.request


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric path segment; too big a number names nothing (404)."""
    value = parse_id(request.match_info[name])
    if value is None:
        raise NotFound(f"{name} {request.match_info[name]} does not exist.")
    return value


def json_response(doc: Any, *, status: int = 200) -> web.Response:
    """JSON without ASCII escapes (names in every script)."""
    return web.json_response(doc, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


# --------------------------------------------------------------------------- request checking


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an int when it is a whole one (JSON Schema's
    ``integer`` counts 1.0), a float otherwise."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


#: Body members holding case data: ``alerts.compose.casedata`` applies the same control-character
#: rule to them and names the variable (``case data: facts.en[2]``), as every face does.
CASE_DATA_MEMBERS = frozenset({"data"})


def _text_in(body: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """(path, value) of every member and item of a decoded JSON body, for ``check_fields``
    (case data left to its own validator)."""
    stack: list[tuple[str, Any]] = [
        (key, value) for key, value in body.items() if key not in CASE_DATA_MEMBERS
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}" if path else key, item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        else:
            yield path, value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request, route: Route, schema: Schema) -> dict[str, Any]:
    """The checked JSON body of ``route`` ({} for an empty optional body)."""
    raw = await read_body(request, route.max_body)
    if not raw.strip():
        if route.required_body:
            raise BadRequest("body: a JSON object is required.")
        return {}
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type: {request.content_type or 'none'} is not supported; send application/json.",
            details={"content_type": request.content_type},
        )
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants, parse_float=_number)
    except UnicodeDecodeError:
        raise BadRequest("body: not UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"body: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            details={"line": exc.lineno, "column": exc.colno},
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body: not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ValidationError("body: must be a JSON object.", details={"field": "body"})
    check_depth(body, "body")
    check_fields(_text_in(body))
    check(body, schema, "body")
    return body


def read_query(request: web.Request, params: Sequence[Param]) -> dict[str, Any]:
    """Query parameters converted to their schema's type and checked (422 naming the parameter);
    an empty value that the schema allows (free text) means the parameter is absent."""
    out: dict[str, Any] = {}
    for p in params:
        raw = request.query.get(p.name)
        value: Any = raw
        if p.schema.get("type") == "integer" and raw:
            value = parse_number(raw, p.name)  # ASCII digits up to MAX_ID; the schema's bounds next
        if raw is not None:
            check(value, p.schema, p.name)  # an empty value too: "?status=" is not a status
        if raw is None or raw == "":
            if "default" in p.schema:
                out[p.name] = p.schema["default"]
            continue
        out[p.name] = value
    return out


def endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``route``: authenticate, check the role, read and check the input."""
    from alerts.web.base import APP

    handler = route.handler
    assert handler is not None

    async def handle(request: web.Request) -> web.StreamResponse:
        user = None
        if route.action is not None:
            user = await authenticate(request)
            users.check(user, route.action)
            if user.token_read_only and request.method not in READ_METHODS:
                raise PermissionDenied(READ_ONLY.format(method=request.method), details={"read_only": True})
        body: dict[str, Any] = {}
        app = request.app[APP]
        schema = route.request_schema(app)
        if schema is not None and route.request_type == "application/json":
            body = await read_json(request, route, schema)
        ctx = Ctx(
            request=request,
            app=app,
            user=user,
            body=body,
            query=read_query(request, route.query),
        )
        return await handler(ctx)

    handle.__doc__ = f"{route.method} {route.path}: {route.summary}"
    return handle


# --------------------------------------------------------------------------- stats and deliveries

LIMIT = Param(
    name="limit",
    schema={"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    description="page size",
)
OFFSET = Param(
    name="offset",
    schema={"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
    description="rows to skip",
)
AFTER = Param(
    name="after",
    schema={"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
    description="start past this id (the last one read): every page costs the same, where an "
    "offset reads each skipped row first",
)


async def alert_stats(ctx: Ctx) -> web.Response:
    """Counts by channel and state."""
    async with ctx.app.reads() as session:
        alert = await drafts.get_alert(session, ctx.id)
        return json_response(await tracking.stats(session, alert, count=ctx.app.counts.figures))


async def alert_deliveries(ctx: Ctx) -> web.Response:
    """The alert's deliveries, filtered by state and channel."""
    async with ctx.app.reads() as session:
        alert = await drafts.get_alert(session, ctx.id)
        rows = await tracking.deliveries(
            session,
            alert.id,
            state=ctx.query.get("state"),
            channel=ctx.query.get("channel"),
            limit=ctx.query["limit"],
            offset=ctx.query["offset"],
            after=ctx.query["after"],
        )
    return json_response({"deliveries": rows})
