"""Requests first: the web tells the dispatcher's senders to give way while it answers one
(``alerts.delivery.give_way``, where the bounds are).

A request counts from the moment it reaches the app until its response is prepared: the
headers of a plain response, or the start of a stream (the live counts, a CSV export), which
then goes on without holding the senders.
"""

from __future__ import annotations

from aiohttp import web

from alerts.web.base import APP, Handler

_IN = web.RequestKey("ua_giving_way", bool)


@web.middleware
async def requests_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold the senders while this request is answered."""
    request.app[APP].give_way.enter()
    request[_IN] = True
    try:
        return await handler(request)
    finally:
        _leave(request)  # an error, a cancelled request: the prepare below never came


async def _on_prepare(request: web.Request, _response: web.StreamResponse) -> None:
    _leave(request)


def _leave(request: web.Request) -> None:
    if request.pop(_IN, False):
        request.app[APP].give_way.leave()


def setup(webapp: web.Application) -> None:
    """Count every request of ``webapp`` (call after the other middlewares: it goes outermost)."""
    webapp.middlewares.insert(0, requests_first)
    webapp.on_response_prepare.append(_on_prepare)
