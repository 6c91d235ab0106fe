"""The OpenAPI document matches the router both ways, and a property-based run (schemathesis)
against a real in-process server finds no 5xx."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from alerts.web import make_web_app
from alerts.web.api.openapi import document
from alerts.web.api.routes import PREFIX
from alerts.web.api.table import all_routes
from tests.factories import add_contacts
from tests.web.conftest import Site

MAX_EXAMPLES = 20


def _router_api_routes(webapp: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in webapp.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        if canonical.startswith(PREFIX) and route.method not in ("HEAD", "*"):
            out.add((route.method.lower(), canonical))
    return out


async def test_document_and_router_agree_both_ways(site: Site) -> None:
    async with site.http.get(f"{site.base}{PREFIX}/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    registered = _router_api_routes(make_web_app(site.app))
    assert documented - registered == set(), "documented but not routed"
    assert registered - documented == set(), "routed but not documented"
    assert len(documented) == len(all_routes())
    op = doc["paths"]["/api/v1/alerts/{id}/approve"]["post"]
    assert op["x-permission"] == "alert.approve" and op["security"] == [{"bearer": []}]
    assert op["description"] == "Permission `alert.approve`: roles admin, reviewer."
    assert {"401", "403", "404", "409", "422", "200"} <= set(op["responses"])
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    assert document(all_routes(), site.app) == doc


def _fuzz(doc: dict[str, Any], base: str, token: str) -> list[str]:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )
            raw = response.headers.get("content-type") or [""]  # schemathesis: lower-case names, lists
            ctype = raw[0] if isinstance(raw, list) else raw
            if response.status_code >= 400 and not ctype.startswith("application/json"):
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} {ctype!r}")

        run()
    assert operations == len(all_routes())
    return failures


async def test_schemathesis_finds_no_server_errors(site: Site) -> None:
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 3)
    async with aiohttp.ClientSession() as http, http.get(f"{site.base}{PREFIX}/openapi.json") as r:
        doc = await r.json()
    failures = await asyncio.wait_for(asyncio.to_thread(_fuzz, doc, site.base, site.tokens["ada"]), 120)
    assert failures == []
