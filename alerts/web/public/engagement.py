"""Opt-in engagement tracking endpoints (``[tracking] opens clicks``, both off by default).

``GET /t/o/{token}.gif`` answers a 1x1 transparent GIF and records ``opened``;
``GET /t/c/{token}`` records ``clicked`` and redirects (302) to the URL signed into the token,
and nowhere else. Each kind is recorded at most once per delivery, and never changes the
delivery's state. A garbled or forged token gets the public 404 page before the database is
asked. The routes answer even when tracking is switched off again, so links already sent keep
working (a signed link still goes where the message said); they record nothing then.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from alerts.app import App
from alerts.core.clock import utcnow
from alerts.core.states import EventType
from alerts.delivery.links import Tracked, TrackingLinks, TrackKind
from alerts.store.events import engagement
from alerts.store.models import Delivery, DeliveryEvent
from alerts.web.public.pages import not_found

logger = logging.getLogger(__name__)

#: The smallest transparent GIF (1x1, one transparent colour).
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = {
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_EVENT = {TrackKind.OPEN: EventType.OPENED, TrackKind.CLICK: EventType.CLICKED}


def _links(app: App) -> TrackingLinks:
    s = app.settings
    return TrackingLinks(app.signing, public_url=s.server.public_url)


async def record(app: App, tracked: Tracked) -> bool:
    """Record the engagement once per delivery and kind; True when this call recorded it."""
    settings = app.settings.tracking
    if not (settings.opens if tracked.kind is TrackKind.OPEN else settings.clicks):
        return False
    event = _EVENT[tracked.kind]
    async with app.sessions.begin() as session:
        # the row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) orders two fetches of one pixel
        delivery = await session.scalar(
            select(Delivery).where(Delivery.id == tracked.delivery_id).with_for_update()
        )
        if delivery is None:
            return False
        seen = await session.scalar(
            select(DeliveryEvent.id)
            .where(DeliveryEvent.delivery_id == delivery.id, DeliveryEvent.type == str(event))
            .limit(1)
        )
        if seen is not None:
            return False
        await engagement(session, delivery, event, now=utcnow(), detail=f"{event} via tracking link")
    logger.info("delivery %d: %s", tracked.delivery_id, event)
    return True


async def opened(request: web.Request) -> web.Response:
    """The open pixel."""
    from alerts.web.base import APP

    app = request.app[APP]
    tracked = _links(app).read(request.match_info["token"], TrackKind.OPEN)
    if tracked is None:
        return not_found()
    await record(app, tracked)
    return web.Response(body=PIXEL, content_type="image/gif", headers=NO_STORE)


async def clicked(request: web.Request) -> web.Response:
    """A tracked link: record, then go to the one URL the token was signed for."""
    from alerts.web.base import APP

    app = request.app[APP]
    tracked = _links(app).read(request.match_info["token"], TrackKind.CLICK)
    if tracked is None:
        return not_found()
    await record(app, tracked)
    raise web.HTTPFound(location=tracked.url, headers=NO_STORE)


def setup(webapp: web.Application) -> None:
    """Add the tracking routes."""
    webapp.router.add_get("/t/o/{token}.gif", opened)
    webapp.router.add_get("/t/c/{token}", clicked)
