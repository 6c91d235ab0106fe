"""The public pages' route table: subscribe, confirm, unsubscribe, preferences, the archive and
its feeds, and the opt-in tracking links.

The handler modules import only the shared helpers (``alerts.web.public.pages``) and never
this module, so nothing under ``alerts.web.public`` imports in a circle. The paths are the ones
``alerts.core.urls`` builds for messages and pages.
"""

from __future__ import annotations

from aiohttp import web

from alerts.core.ids import ID_PATTERN
from alerts.web.public import archive, engagement, pages, subscribe


def setup(webapp: web.Application) -> None:
    """Add the public routes and their state."""
    pages.add_state(webapp)
    webapp.on_shutdown.append(subscribe.drain_confirmations)
    r = webapp.router
    r.add_get("/subscribe", subscribe.subscribe_form)
    r.add_post("/subscribe", subscribe.subscribe)
    r.add_get("/subscribe/confirm/{token}", subscribe.confirm_page)
    r.add_post("/subscribe/confirm/{token}", subscribe.confirm)
    r.add_get("/unsubscribe/{token}", subscribe.unsubscribe_page)
    r.add_post("/unsubscribe/{token}", subscribe.unsubscribe)
    r.add_get("/preferences/{token}", subscribe.preferences_page)
    r.add_post("/preferences/{token}", subscribe.save_preferences)
    r.add_get("/alerts", archive.archive)
    r.add_get("/alerts/cap.atom", archive.cap_feed)
    r.add_get("/alerts/{id:" + ID_PATTERN + "}.cap.xml", archive.cap_document)
    r.add_get("/alerts/{id:" + ID_PATTERN + "}", archive.alert_page)
    r.add_get("/feed.atom", archive.feed)
    engagement.setup(webapp)
