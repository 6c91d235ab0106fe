"""Officers' reads first: the dispatcher's senders give way while the web answers a GET or
HEAD under ``/office`` or ``/api`` from someone who says who they are: a session cookie or an
``Authorization`` header (``alerts.delivery.give_way``, where the bounds are).

A read counts from the moment it reaches the app until its handler returns or fails (a client
that goes away does not end it: aiohttp lets the handler finish) or, for a stream (the live
counts, a CSV export), until its headers are sent: the stream then goes on without holding
the senders. Nothing else counts: a form or an upload (a client could send its body as slowly
as it likes), the public pages, the probes and /metrics, the static files, and any request
with no credentials at all: anyone on the internet can send those, and they must not slow an
alert down. (A false cookie or token holds the senders only until the handler's first step
refuses it.)
"""

from __future__ import annotations

from aiohttp import web

from alerts.core.urls import OFFICE
from alerts.delivery.give_way import GiveWay
from alerts.web.auth import SESSION_COOKIE
from alerts.web.base import APP, Handler

_HOLDING = web.RequestKey("ua_holding", GiveWay)  # the way this request closed, until it leaves
READS = frozenset({"GET", "HEAD"})
FIRST = (OFFICE + "/", "/api/")


def goes_first(request: web.Request) -> bool:
    """Whether the senders give way to this request."""
    return (
        request.method in READS
        and request.path.startswith(FIRST)
        and (SESSION_COOKIE in request.cookies or "Authorization" in request.headers)
    )


@web.middleware
async def reads_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold the senders while this read is answered."""
    if not goes_first(request):
        return await handler(request)
    way = request.app[APP].give_way
    way.enter()
    request[_HOLDING] = way
    try:
        return await handler(request)
    finally:
        _leave(request)  # the handler's end or error; a stream has left at its prepare


async def _on_prepare(request: web.Request, _response: web.StreamResponse) -> None:
    _leave(request)


def _leave(request: web.Request) -> None:
    if (way := request.pop(_HOLDING, None)) is not None:
        way.leave()


def setup(webapp: web.Application) -> None:
    """Count the reads of ``webapp`` (call after the other middlewares: it goes outermost)."""
    webapp.middlewares.insert(0, reads_first)
    webapp.on_response_prepare.append(_on_prepare)
