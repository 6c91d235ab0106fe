"""The public archive, no sign-in: public alerts, one alert's page, the Atom feed and
CAP 1.2 output (an Atom index and one document per alert). The routes are added by ``public``.
"""

from __future__ import annotations

from aiohttp import web

from alerts.core import urls
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.ids import MAX_PAGE, parse_id, parse_number
from alerts.delivery.archive import atom_feed, public_alert, public_alerts, withdrawn_alerts, withdrawn_public
from alerts.delivery.cap import CAP_TYPE, cap_alert, cap_cancel
from alerts.web.i18n import N_
from alerts.web.public.article import blocks, linkify, share_links
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
    async with app.reads() as session:
        alerts = await public_alerts(session, app.builder, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_page(
        request, "archive.html", alerts=alerts[:PAGE_SIZE], more=len(alerts) > PAGE_SIZE, page=page
    )


def _alert_id(request: web.Request) -> int | None:
    return parse_id(request.match_info["id"])


async def alert_page(request: web.Request) -> web.Response:
    """One public alert, in the language asked for (``?lang=``)."""
    from alerts.web.base import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    async with app.reads() as session:
        found = await public_alert(session, app.builder, alert_id) if alert_id is not None else None
    if found is None:
        return message_page(request, N_("Not found"), N_("There is no public alert here."), status=404)
    text = found.text(request.query.get("lang"))
    url = urls.public_alert(app.settings.server.public_url, found.id)
    return render_page(
        request,
        "alert.html",
        alert=found,
        text=text,
        blocks=blocks(text.text),
        share=share_links(url, text.subject or found.title),
        linkify=linkify,
    )


async def feed(request: web.Request) -> web.Response:
    """Atom 1.0 feed of the public alerts."""
    from alerts.web.base import APP

    app = request.app[APP]
    async with app.reads() as session:
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
    """Atom index of the public alerts' CAP documents, and of the ``Cancel`` of those withdrawn."""
    from alerts.web.base import APP

    app = request.app[APP]
    async with app.reads() as session:
        alerts = await public_alerts(session, app.builder, limit=PAGE_SIZE)
        cancelled = await withdrawn_alerts(session, limit=PAGE_SIZE)
    body = atom_feed(
        alerts,
        base_url=urls.base(app.settings.server.public_url),
        self_path="/alerts/cap.atom",
        title="Urgent Alerts (CAP 1.2)",
        now=utcnow(),
        canonical=urls.cap_document,
        canonical_type=CAP_TYPE,
        cancelled=cancelled,
    )
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8", headers=SECURITY_HEADERS
    )


async def cap_document(request: web.Request) -> web.Response:
    """One public alert as CAP 1.2 XML; a CAP ``Cancel`` of it once its consent is withdrawn."""
    from alerts.web.base import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    public_url = urls.base(app.settings.server.public_url)
    async with app.reads() as session:
        found = await public_alert(session, app.builder, alert_id) if alert_id is not None else None
        original = withdrawn = None
        if found is not None and found.parent_id is not None:
            original = await public_alert(session, app.builder, found.parent_id)
        if found is None and alert_id is not None:
            withdrawn = await withdrawn_public(session, alert_id)
    if found is not None:
        body = cap_alert(found, public_url=public_url, original=original)
    elif withdrawn is not None:
        body = cap_cancel(withdrawn, public_url=public_url)
    else:
        return message_page(request, N_("Not found"), N_("There is no public alert here."), status=404)
    return web.Response(body=body, content_type=CAP_TYPE, charset="utf-8", headers=SECURITY_HEADERS)
