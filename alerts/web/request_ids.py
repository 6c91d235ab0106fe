"""A request id on every HTTP response (``X-Request-Id``) and on every log record of the request.

The id is made here (32 hex digits), unless the peer is one of ``[server] trusted_proxies``
and sent a sane one (letters, digits and ``._:-``, 8 to 128 characters): then the proxy's id
is kept, so one id follows a request through the proxy's logs and ours. Anyone else's header
is ignored: a client must not be able to write what it likes into our logs.

Records logged while the request is handled carry ``request_id`` and, on a route about one
alert (``…/alerts/{id}…``), ``alert_id`` (``alerts.core.logs``).
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from alerts.core.logs import log_context
from alerts.web.base import Handler
from alerts.web.clients import peer_is_trusted

HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("ua_request_id", str)
_SANE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def request_id(request: web.Request) -> str:
    """This request's id (made on first use)."""
    found = request.get(REQUEST_ID)
    if found is None:
        given = request.headers.get(HEADER, "")
        found = given if _SANE.match(given) and peer_is_trusted(request) else uuid.uuid4().hex
        request[REQUEST_ID] = found
    return found


def _alert_id(request: web.Request) -> int | None:
    route = request.match_info.route.resource
    value = request.match_info.get("id", "")
    if route is None or "/alerts/{id" not in route.canonical or not value.isdigit() or len(value) > 16:
        return None
    return int(value)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request its id and its log context."""
    with log_context(request_id=request_id(request), alert_id=_alert_id(request)):
        return await handler(request)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[HEADER] = request_id(request)


def setup(webapp: web.Application) -> None:
    """Put the id on every response of ``webapp`` (errors and streams included)."""
    webapp.middlewares.insert(0, request_ids)
    webapp.on_response_prepare.append(_on_prepare)
