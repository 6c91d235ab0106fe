"""Every route of the web app answers a method it does not take with 405 and an ``Allow`` header
naming exactly the methods it does take (RFC 9110 §15.5.6): the JSON API, the officers' and the
public pages, ops and static files alike."""

from __future__ import annotations

import re

from aiohttp import web

from alerts.web import make_web_app
from tests.web.conftest import Site

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def _url(resource: web.AbstractResource) -> str:
    """A path the resource matches: every variable "1", a static resource's file "app.css"."""
    if isinstance(resource, web.StaticResource):
        return str(resource.url_for(filename="app.css"))
    names = re.findall(r"\{(\w+)\}", resource.canonical)
    return str(resource.url_for(**dict.fromkeys(names, "1"))) if names else resource.canonical


async def test_every_route_answers_an_unknown_method_with_405_and_allow(site: Site) -> None:
    webapp = make_web_app(site.app)
    checked: set[str] = set()
    for resource in webapp.router.resources():
        allowed = {route.method for route in resource}
        assert "*" not in allowed, resource.canonical
        assert "HEAD" in allowed or "GET" not in allowed, f"{resource.canonical}: GET without HEAD"
        path = _url(resource)
        for method in sorted(set(METHODS) - allowed):
            async with site.http.request(method, site.base + path, allow_redirects=False) as r:
                assert r.status == 405, (method, path, r.status)
                assert set(r.headers.get("Allow", "").replace(" ", "").split(",")) == allowed, (method, path)
                if path.startswith("/api/") and method != "HEAD":
                    body = await r.json()
                    assert body["error"]["code"] == "method_not_allowed"
        checked.add(resource.canonical)
    # the walk reached every face: API, officers' pages, public pages, ops, static files
    for path in ("/api/v1/alerts/{id}", "/office/alerts/{id}", "/unsubscribe/{token}", "/healthz", "/static"):
        assert path in checked
