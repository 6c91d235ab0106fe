"""Server-Sent Events: an alert's counts by channel and state, pushed while its fan-out runs.

``GET /office/alerts/{id}/live`` sends a ``counts`` event (the ``tracking.stats`` document)
whenever the counts change, a comment line every ``KEEPALIVE`` seconds so proxies keep the
stream open, and a final ``done`` event once nothing is left to send (no queued, sending or
deferred delivery, and the alert is not waiting to be sent). Counts only, never addresses.
The session is checked again before every poll: a stream ends (``signed-out``) as soon as its
user is disabled, changes password or signs out, as any new request would be refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import web

from alerts.compose import drafts
from alerts.core.states import AlertStatus
from alerts.delivery import tracking
from alerts.web import auth
from alerts.web.ui.pages import ID, PREFIX, Ctx, page, path_id

logger = logging.getLogger(__name__)

POLL = 0.5
KEEPALIVE = 15.0
MAX_STREAM = 3600.0  # the browser reconnects (EventSource) after this
STOPPING = web.AppKey("live_stopping", asyncio.Event)
WAITING = (AlertStatus.DRAFT, AlertStatus.IN_REVIEW, AlertStatus.APPROVED, AlertStatus.SCHEDULED)


def finished(doc: dict[str, object]) -> bool:
    """Whether a stats document shows a fan-out with nothing left to do."""
    return doc["open"] == 0 and doc["state"] not in WAITING and not doc["paused"] and bool(doc["total"])


@page("view")
async def live(c: Ctx) -> web.StreamResponse:
    """GET …/live: the event stream."""
    aid = path_id(c.request)
    async with c.app.reads() as session:
        await drafts.get_alert(session, aid)  # 404 before the stream starts
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(c.request)
    if c.request.method == "HEAD":
        return response  # headers only: a body after them would corrupt the client's next response
    stopping = c.request.app[STOPPING]
    last, last_write, started = "", time.monotonic(), time.monotonic()
    try:
        await response.write(b"retry: 2000\n\n")
        while not stopping.is_set() and time.monotonic() - started < MAX_STREAM:
            if not await auth.still_signed_in(c.request):  # disabled, new password, signed out
                await response.write(b"event: signed-out\ndata: {}\n\n")
                break
            async with c.app.reads() as session:
                alert = await drafts.get_alert(session, aid)
                doc = await tracking.stats(session, alert, count=c.app.counts.figures)
            data = json.dumps(doc, sort_keys=True)
            if data != last:
                await response.write(f"event: counts\ndata: {data}\n\n".encode())
                last, last_write = data, time.monotonic()
            if finished(doc):
                await response.write(f"event: done\ndata: {data}\n\n".encode())
                break
            if time.monotonic() - last_write > KEEPALIVE:
                await response.write(b": keepalive\n\n")
                last_write = time.monotonic()
            try:
                await asyncio.wait_for(stopping.wait(), POLL)
            except TimeoutError:
                pass
    except ConnectionResetError:
        logger.debug("live stream for alert %s closed by the client", aid)
    return response


async def _stop_streams(webapp: web.Application) -> None:
    webapp[STOPPING].set()


def setup(webapp: web.Application) -> None:
    """Add the event stream; streams end when the app shuts down."""
    webapp[STOPPING] = asyncio.Event()
    webapp.on_shutdown.append(_stop_streams)
    webapp.router.add_get(f"{PREFIX}/alerts/{ID}/live", live)
