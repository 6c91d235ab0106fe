"""``GET /api/docs``: the API's reference, rendered by Swagger UI from ``openapi.json``.

Swagger UI comes from a registry package (PyPI's ``swagger-ui-bundle-v2``, Apache-2.0): its
script and stylesheet are served from this host, the page's one script of ours is a file too,
and the page's Content-Security-Policy lets nothing else load, so reading the docs makes no
request off the host (no CDN, no validator badge: ``validatorUrl`` is off).
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from alerts import __version__ as VERSION
from alerts.web.api.routes import PREFIX

DOCS = "/api/docs"
_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
#: The files of the package the page uses, by the name it asks for them.
_FILES = {
    "swagger-ui.css": ("swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Urgent Alerts API {VERSION}</title>
<link rel="stylesheet" href="{DOCS}/swagger-ui.css?v={VERSION}">
</head>
<body>
<noscript>The reference needs JavaScript; the document itself is
<a href="{PREFIX}/openapi.json">{PREFIX}/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{DOCS}/swagger-ui-bundle.js?v={VERSION}"></script>
<script src="{DOCS}/init.js?v={VERSION}"></script>
</body>
</html>
"""
# The document's address, relative to the page, so that a proxy's path prefix is kept.
_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("v1/openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


async def page(request: web.Request) -> web.Response:
    """The reference page."""
    return web.Response(text=_PAGE, content_type="text/html", headers=_HEADERS)


async def init(request: web.Request) -> web.Response:
    """The page's script: start Swagger UI on the document."""
    return web.Response(text=_INIT, content_type="text/javascript", headers=_HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    """Swagger UI's script or stylesheet, from the installed package."""
    name, content_type = _FILES[request.path.rsplit("/", 1)[-1]]
    return web.FileResponse(_ASSETS / name, headers={**_HEADERS, "Content-Type": content_type})


def setup(webapp: web.Application) -> None:
    """Add the reference page and its files (no token: they describe, they reveal no data)."""
    webapp.router.add_get(DOCS, page)
    webapp.router.add_get(f"{DOCS}/init.js", init)
    for name in _FILES:
        webapp.router.add_get(f"{DOCS}/{name}", asset)
