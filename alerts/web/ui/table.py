"""The officers' pages' route table: sign-in, the demo mailbox, static files and each page module.

The page modules import only the framework (``alerts.web.ui.pages``) and never this module,
so nothing under ``alerts.web.ui`` imports in a circle.
"""

from __future__ import annotations

from aiohttp import web

from alerts.web import auth
from alerts.web.base import STATIC_PREFIX
from alerts.web.clients import trusted_networks
from alerts.web.ui import alerts as ui_alerts
from alerts.web.ui import contacts as ui_contacts
from alerts.web.ui import deliveries as ui_deliveries
from alerts.web.ui import editor as ui_editor
from alerts.web.ui import followups as ui_followups
from alerts.web.ui import live, mailbox
from alerts.web.ui import two_factor as ui_two_factor
from alerts.web.ui import users as ui_users
from alerts.web.ui import workflow as ui_workflow
from alerts.web.ui.pages import STATIC_DIR, login, login_form, logout


def setup(webapp: web.Application) -> None:
    """Add the officers' pages, sign-in and static files."""
    from alerts.web.base import APP

    settings = webapp[APP].settings
    webapp[auth.AUTH] = auth.make_state(
        settings.server.secret_key, settings.server.public_url, old_keys=settings.server.old_secret_keys
    )
    trusted_networks(settings.server.trusted_proxies)  # a bad entry stops the start-up here
    webapp.router.add_get("/login", login_form)
    webapp.router.add_post("/login", login)
    webapp.router.add_post("/logout", logout)
    mailbox.setup(webapp)
    webapp.router.add_static(STATIC_PREFIX, STATIC_DIR, append_version=True)
    ui_alerts.setup(webapp)
    ui_editor.setup(webapp)
    ui_workflow.setup(webapp)
    ui_deliveries.setup(webapp)
    ui_contacts.setup(webapp)
    ui_followups.setup(webapp)
    live.setup(webapp)
    ui_users.setup(webapp)
    ui_two_factor.setup(webapp)
