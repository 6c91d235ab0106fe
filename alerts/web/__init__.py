"""The web face: ``make_web_app(app)`` builds the aiohttp application — error middleware, ops,
the JSON API (``api``), the officers' pages (``ui``) and the public pages (``public``).

Holds: ``base`` (the App key, the JSON error format), ``auth`` (sessions, CSRF, sign-in limits),
``clients`` (the client's address behind trusted proxies), ``bodies`` (size-limited request
bodies), ``request_ids`` (X-Request-Id and the log context), ``first`` (the dispatcher's senders
give way while an officer's read is answered), ``ops`` (probes, metrics) and the
three faces, each with a ``table`` that registers its routes. May import ``actions`` and
everything below it; the faces do not import one another (import-linter's ``web-faces`` contract).
"""

from __future__ import annotations

from aiohttp import web

from alerts.app import App

# Re-exported for callers outside the web package; inside it, import them from alerts.web.base
# (importing this package from a face would make it depend on every other face).
from alerts.web.base import APP as APP
from alerts.web.base import error_response as error_response
from alerts.web.base import errors_middleware, inputs_middleware, quiet_malformed_requests, security_headers


def make_web_app(app: App) -> web.Application:
    """Build the aiohttp application for an open App."""
    from alerts.web import first, ops, request_ids
    from alerts.web.api import table as api
    from alerts.web.public import table as public
    from alerts.web.ui import table as ui

    webapp = web.Application(
        middlewares=[errors_middleware, inputs_middleware], client_max_size=8 * 1024 * 1024
    )
    webapp[APP] = app
    quiet_malformed_requests()
    webapp.on_response_prepare.append(security_headers)
    request_ids.setup(webapp)
    first.setup(webapp)  # outermost: the senders give way for the whole read
    ops.setup(webapp)
    api.setup(webapp)
    ui.setup(webapp)
    public.setup(webapp)
    return webapp
