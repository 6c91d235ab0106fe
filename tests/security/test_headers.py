"""Headers on every route (issue 14 item 6): ``X-Content-Type-Options: nosniff`` on every
response, ``Cache-Control: no-store`` on every one but the static files — API JSON with
contact data, officers' pages, public pages with subscription links, refusals and aiohttp's
own 404/405 included. The routes are read from the router itself, so a new route is covered
the day it is added."""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from alerts.accounts import users
from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.web import make_web_app
from alerts.web.base import STATIC_PREFIX
from tests.factories import add_contacts
from tests.web import P, make_staff, signed_in
from tests.web.test_ui import draft_form

PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def concrete(canonical: str, values: dict[str, str]) -> str:
    """A route's canonical path with each ``{name}`` filled in."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], canonical)


def request_plan(webapp: web.Application, values: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) for every route of the router; the static route asks for a real file."""
    plan = []
    for route in webapp.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical.rstrip("/") == STATIC_PREFIX.rstrip("/"):
            plan.append((route.method, STATIC_PREFIX + "ui.css"))
            continue
        plan.append((route.method, concrete(canonical, values)))
    return sorted(set(plan))


async def test_every_route_sends_nosniff_and_no_store(db_url: str) -> None:
    settings = Settings().replace("database", url=db_url).replace("server", secret_key="s" * 32)
    async with open_app(settings, channels={}) as app:
        await make_staff(app)
        async with app.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="api-admin", role="admin", with_token=True, now=utcnow()
            )
            await add_contacts(session, 2)
        webapp = make_web_app(app)
        server = TestServer(webapp)
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        admin = await signed_in(base, "admin")
        try:
            await admin.get(f"{P}/alerts/new")
            r = await admin.post(f"{P}/alerts/new", draft_form())
            alert_id = r.headers["Location"].split("/")[-1].split("?")[0]
            plan = request_plan(webapp, {"id": alert_id, "name": "viewer", "token": "not-a-token"})
            plan += [("GET", "/no/such/page"), ("DELETE", "/login"), ("GET", "/api/v1/nothing")]
            assert len(plan) > 60, len(plan)
            bearer = {"Authorization": f"Bearer {token}"}
            seen: dict[str, int] = {}
            async with aiohttp.ClientSession() as anonymous:
                for method, path in plan:
                    for who, http, headers in (
                        ("anonymous", anonymous, {}),
                        ("signed in", admin.http, {"X-CSRF-Token": admin.token}),
                        ("token", anonymous, bearer),
                    ):
                        if method == "POST" and path.endswith("/logout"):
                            continue  # would end the signed-in client's session for the rest
                        async with http.request(
                            method, base + path, headers=headers, allow_redirects=False
                        ) as resp:
                            where = f"{method} {path} ({who}): {resp.status}"
                            assert resp.status < 500, where
                            assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
                            cache = resp.headers.get("Cache-Control", "")
                            if path.startswith(STATIC_PREFIX):
                                assert "no-store" not in cache, where
                            else:
                                assert "no-store" in cache, where
                            seen[who] = seen.get(who, 0) + 1
                            resp.close()  # never reuse a connection a stream (…/live) is still writing to
            print(f"{len(plan)} (method, path) pairs, {sum(seen.values())} responses checked")
        finally:
            await admin.close()
            await server.close()
