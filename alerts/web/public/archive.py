"""The public archive, no sign-in: public alerts, one alert's page, the Atom feed and
CAP 1.2 output (an Atom index and one document per alert). The routes are added by ``public``.
"""

from __future__ import annotations

from aiohttp import web

from alerts.core import urls
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.ids import MAX_PAGE, parse_id, parse_number
from alerts.delivery.archive import atom_feed, public_alert, public_alerts
from alerts.delivery.cap import CAP_TYPE, cap_alert
from alerts.web.public.pages import SECURITY_HEADERS, message_page, render_page

PAGE_SIZE = 30


async def archive(request: web.Request) -> web.Response:
    """Public alerts, newest first."""
    from alerts.web.base import APP

    app = request.app[APP]
    raw = request.query.get("page", "1")
    try:
        page = parse_number(raw, "page", minimum=1, maximum=MAX_PAGE)
    except ValidationError:
        page = 1  # a reader's mistyped link still shows the archive
    async with app.sessions() as session:
        alerts = await public_alerts(session, app.builder, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_page("archive.html", alerts=alerts[:PAGE_SIZE], more=len(alerts) > PAGE_SIZE, page=page)


def _alert_id(request: web.Request) -> int | None:
    return parse_id(request.match_info["id"])


async def alert_page(request: web.Request) -> web.Response:
    """One public alert, in the language asked for (``?lang=``)."""
    from alerts.web.base import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    async with app.sessions() as session:
        found = await public_alert(session, app.builder, alert_id) if alert_id is not None else None
    if found is None:
        return message_page("Not found", "There is no public alert here.", status=404)
    text = found.text(request.query.get("lang"))
    paragraphs = [p.strip() for p in text.text.split("\n\n") if p.strip()]
    return render_page("alert.html", alert=found, text=text, paragraphs=paragraphs, lang=text.language)


async def feed(request: web.Request) -> web.Response:
    """Atom 1.0 feed of the public alerts."""
    from alerts.web.base import APP

    app = request.app[APP]
    async with app.sessions() as session:
        alerts = await public_alerts(session, app.builder, limit=PAGE_SIZE)
    body = atom_feed(
        alerts,
        base_url=urls.base(app.settings.server.public_url),
        self_path="/feed.atom",
        title="Urgent Alerts",
        now=utcnow(),
        language=request.query.get("lang"),
    )
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8", headers=SECURITY_HEADERS
    )


async def cap_feed(request: web.Request) -> web.Response:
    """Atom index of the public alerts' CAP documents."""
    from alerts.web.base import APP

    app = request.app[APP]
    async with app.sessions() as session:
        alerts = await public_alerts(session, app.builder, limit=PAGE_SIZE)
    body = atom_feed(
        alerts,
        base_url=urls.base(app.settings.server.public_url),
        self_path="/alerts/cap.atom",
        title="Urgent Alerts (CAP 1.2)",
        now=utcnow(),
        entry_link="/alerts/{id}.cap.xml",
        entry_type=CAP_TYPE,
    )
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8", headers=SECURITY_HEADERS
    )


async def cap_document(request: web.Request) -> web.Response:
    """One public alert as CAP 1.2 XML."""
    from alerts.web.base import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    async with app.sessions() as session:
        found = await public_alert(session, app.builder, alert_id) if alert_id is not None else None
        original = None
        if found is not None and found.parent_id is not None:
            original = await public_alert(session, app.builder, found.parent_id)
    if found is None:
        return message_page("Not found", "There is no public alert here.", status=404)
    body = cap_alert(found, public_url=urls.base(app.settings.server.public_url), original=original)
    return web.Response(body=body, content_type=CAP_TYPE, charset="utf-8", headers=SECURITY_HEADERS)
