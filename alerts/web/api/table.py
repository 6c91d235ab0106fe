"""The API's one route table: every handler module's ``ROUTES`` and the OpenAPI document.

``setup`` registers each route with aiohttp (through ``routes.endpoint``: token, role, body and
query checks); ``GET /api/v1/openapi.json`` describes the very same list, so the document and
the router cannot drift (a test compares them both ways). The handler modules import only
``routes``; this module imports them, so nothing under ``alerts.web.api`` imports in a circle.
"""

from __future__ import annotations

from aiohttp import web

from alerts.web.api import alerts as api_alerts
from alerts.web.api import contacts as api_contacts
from alerts.web.api import docs
from alerts.web.api import followups as api_followups
from alerts.web.api import users as api_users
from alerts.web.api import workflow as api_workflow
from alerts.web.api.openapi import document
from alerts.web.api.routes import PREFIX, Ctx, Route, endpoint, json_response


async def openapi_json(ctx: Ctx) -> web.Response:
    """The document (no token needed: it describes, it reveals no data)."""
    return json_response(document(all_routes(), ctx.app))


OPENAPI = Route(
    method="GET",
    path=f"{PREFIX}/openapi.json",
    handler=openapi_json,
    summary="This OpenAPI document",
    action=None,
    tag="meta",
    response={"type": "object"},
)


def all_routes() -> list[Route]:
    """Every API route: alerts, contacts, follow-ups (registered by their module), users, the document."""
    return [
        *api_contacts.ROUTES,
        *api_alerts.ROUTES,
        *api_workflow.ROUTES,
        *api_followups.ROUTES,
        *api_users.ROUTES,
        OPENAPI,
    ]


def setup(webapp: web.Application) -> None:
    """Register every API route of the table that has a handler here (a GET answers HEAD too,
    as RFC 9110 §9.3.2 asks, so a 405's ``Allow`` lists both), and the reference page."""
    for route in all_routes():
        if route.handler is None:
            continue
        if route.method == "GET":
            webapp.router.add_get(route.path, endpoint(route))
        else:
            webapp.router.add_route(route.method, route.path, endpoint(route))
    docs.setup(webapp)
