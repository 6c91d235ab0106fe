"""Officer pages (server-rendered): the alerts overview and the mailbox, in ``alerts demo`` only
until sign-in exists."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web
from sqlalchemy import select

from alerts import tracking
from alerts.models import Alert

PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "pages"), autoescape=True, undefined=jinja2.StrictUndefined
)


def _page(name: str, **context: object) -> web.Response:
    return web.Response(text=PAGES.get_template(name).render(**context), content_type="text/html")


async def index(request: web.Request) -> web.Response:
    """Recent alerts with live counts by channel and state."""
    from alerts.web import APP

    app = request.app[APP]
    if "capture" not in app.extras:
        # Without sign-in these pages would show case names to anyone who can reach the
        # port, so outside `alerts demo` (local, sample data) they stay off.
        raise web.HTTPNotFound(text="The officers' pages need sign-in, which this version does not have yet; "
                                    "use the CLI or the JSON API.")
    async with app.sessions() as session:
        alerts = (await session.execute(select(Alert).order_by(Alert.id.desc()).limit(50))).scalars().all()
        rows = [await tracking.stats(session, a) | {"title": a.title, "status": a.status} for a in alerts]
    return _page("index.html", alerts=rows, mailbox="capture" in app.extras)


async def mailbox(request: web.Request) -> web.Response:
    """What the demo's local capture SMTP server received."""
    from alerts.web import APP

    capture = request.app[APP].extras.get("capture")
    if capture is None:
        raise web.HTTPNotFound()
    messages = list(reversed(capture.messages()))[:500]
    return _page("mailbox.html", messages=messages, mailbox=True)


def setup(webapp: web.Application) -> None:
    """Add the page routes."""
    webapp.router.add_get("/", index)
    webapp.router.add_get("/mailbox", mailbox)
