"""What every part of the web app shares: the App's key, the one JSON error format, and the
edge's check of what a request carries (``check_fields``: control characters, before any handler).

Imported by the JSON API, the officers' pages, the public pages, ``ops`` and ``auth``; it
imports none of them (``alerts.web``'s ``make_web_app`` assembles them), so a face that needs
the App never depends on the other faces through the package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from alerts.app import App
from alerts.core.errors import AlertsError, BadRequest, ValidationError
from alerts.core.text import check_input

logger = logging.getLogger(__name__)

APP = web.AppKey("app", App)
#: Headers of an aiohttp HTTP error that the JSON error keeps (405's Allow, 401's challenge).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")
#: Password fields (sign-in, a new password and its repeat): hashed, never stored, shown or
#: logged as text, and any character is allowed in a password (``accounts.users``): not
#: checked for control characters, so no one who chose such a password is locked out.
PASSWORD_FIELDS = frozenset({"password", "current", "repeat", "current_password"})
#: Where the officers' pages' static files are served: the only responses that may be cached.
STATIC_PREFIX = "/static/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> web.Response:
    """The one JSON error format."""
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every AlertsError (and, under /api/, every HTTP error) as ``{"error": {...}}``;
    an HTTP error keeps the headers its status needs (a 405's ``Allow``)."""
    try:
        return await handler(request)
    except AlertsError as exc:
        return error_response(exc.http_status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        # aiohttp's 405 names the allowed methods in Allow (RFC 9110 §15.5.6); keep such headers.
        for name in _KEPT_HEADERS:
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")


class MalformedRequests(logging.Filter):
    """aiohttp answers a malformed request (a 9 KB request line, a broken header) with a 400
    but logs it at ERROR with a traceback: anyone could flood the log and set off alarms. This
    filter on ``aiohttp.server`` makes such a record one INFO line naming the kind of fault,
    without the request's text (which may hold a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "refused a malformed request (%s)", (type(exc).__name__,)
            record.exc_info = record.exc_text = None
        return True


def quiet_malformed_requests() -> None:
    """Install ``MalformedRequests`` on aiohttp's server logger, once per process."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())


def check_fields(fields: Iterable[tuple[str, object]]) -> None:
    """BadRequest (400) naming the first field whose name, text or file name holds a character
    that no field accepts (``alerts.core.text.check_input``: NUL, other controls, bidi
    overrides). Every face applies it where it reads input — query and path here in
    ``inputs_middleware``, forms where they are parsed, JSON where it is decoded — so that
    such text never reaches a handler, a log line or the database (PostgreSQL refuses NUL)."""
    for name, value in fields:
        try:
            check_input(name, f"field name {name!r}")
            if isinstance(value, str) and name not in PASSWORD_FIELDS:
                check_input(value, name)
            elif isinstance(getattr(value, "filename", None), str):
                check_input(value.filename, f"{name} (file name)")  # type: ignore[attr-defined]
        except ValidationError as exc:
            raise BadRequest(exc.message, details=exc.details) from None


@web.middleware
async def inputs_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (400) a query parameter or path segment that ``check_fields`` refuses."""
    check_fields(request.query.items())
    check_fields(request.match_info.items())
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response (``on_response_prepare``: aiohttp's own 404 and 405 too):
    ``X-Content-Type-Options: nosniff``, and ``Cache-Control: no-store`` on all but the static
    files. Officers' pages and API answers hold contacts, cases and tokens; public pages hold
    subscription links and published alerts whose consent may be withdrawn at any time: no
    browser, proxy or shared cache keeps a copy of any of them."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith(STATIC_PREFIX):
        return
    if "no-store" not in response.headers.get("Cache-Control", ""):
        response.headers["Cache-Control"] = "no-store"
