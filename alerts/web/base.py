"""What every part of the web app shares: the App's key and the one JSON error format.

Imported by the JSON API, the officers' pages, the public pages, ``ops`` and ``auth``; it
imports none of them (``alerts.web``'s ``make_web_app`` assembles them), so a face that needs
the App never depends on the other faces through the package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from alerts.app import App
from alerts.core.errors import AlertsError

logger = logging.getLogger(__name__)

APP = web.AppKey("app", App)
#: Headers of an aiohttp HTTP error that the JSON error keeps (405's Allow, 401's challenge).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")

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
