"""The OpenAPI document matches the router both ways, and schemathesis (every check, positive
and negative data, stateful through the document's links) finds nothing against a real
in-process server."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web

from alerts.accounts import users
from alerts.core.channels import ALL
from alerts.core.clock import utcnow
from alerts.web import make_web_app
from alerts.web.api.openapi import document
from alerts.web.api.routes import PREFIX
from alerts.web.api.table import all_routes
from tests.factories import add_contacts
from tests.web.conftest import Site


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


#: The schemathesis command line tool, beside this interpreter.
ST = Path(sys.executable).with_name("st")
CONFIG = Path(__file__).with_name("schemathesis.toml")
#: The run's own account: a name schemathesis will not make up, so that it never rotates the
#: token it uses (see schemathesis.toml).
RUNNER = "conformance-run"


def st_command(base: str, token: str, *, examples: int, phases: str, seed: int) -> list[str]:
    """A schemathesis run over every operation with every check, positive and negative data."""
    return [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}{PREFIX}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "too_slow",
        "--no-color",
    ]


async def test_schemathesis_finds_no_server_errors(site: Site) -> None:
    """The default run: fuzzing and stateful (through the links), a few examples an operation.
    The README's command runs every phase with many more."""
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 3)
        _, token = await users.create_user(session, name=RUNNER, role="admin", with_token=True, now=utcnow())
    assert token is not None
    process = await asyncio.create_subprocess_exec(
        *st_command(site.base, token, examples=3, phases="fuzzing,stateful", seed=1),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    report = out.decode()
    assert process.returncode == 0, report[-6000:]
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", report)
    # every operation but the document's own URL, which schemathesis leaves out of its run
    assert operations is not None and operations.group(1) == operations.group(2) == str(len(all_routes()) - 1)
    assert re.search(r"Stateful .*\n\s+Scenarios:\s+[1-9]", report), report[-3000:]
    links = re.search(r"API Links:\s+(\d+) covered", report)
    assert links is not None and int(links.group(1)) > 0, report[-3000:]  # the links were followed
    assert "Authentication failed" not in report  # the run kept its token throughout


async def test_the_document_offers_only_the_channels_this_server_sends_on(site: Site) -> None:
    """schemathesis ST202: the document let an alert name telegram and webhook on a server with
    no config for them, which the server refused. Each channel, on create and on edit: the
    document (read by jsonschema-rs, not our own check) and the server agree."""
    async with site.http.get(f"{site.base}{PREFIX}/openapi.json") as r:
        doc = await r.json()

    def body_schema(path: str, method: str) -> Any:
        return jsonschema_rs.Draft202012Validator(
            doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        )

    create, edit = body_schema(f"{PREFIX}/alerts", "post"), body_schema(f"{PREFIX}/alerts/{{id}}", "patch")
    example = json.loads(json.dumps(site.app.renderer.example("urgent-appeal"), default=str))
    new = {"family": "urgent-appeal", "data": example, "lists": ["x"], "channels": ["email"]}
    status, draft = await site.call("POST", f"{PREFIX}/alerts", user="olga", json=new)
    assert status == 201, draft
    verdicts = {}
    for channel in ALL:
        body = {**new, "channels": [channel.value]}
        status, answer = await site.call("POST", f"{PREFIX}/alerts", user="olga", json=body)
        assert (status == 201) == create.is_valid(body), (channel, status, answer)
        change = {"audience": {"lists": ["x"], "channels": [channel.value]}}
        status, answer = await site.call("PATCH", f"{PREFIX}/alerts/{draft['id']}", user="olga", json=change)
        assert (status == 200) == edit.is_valid(change), (channel, status, answer)
        verdicts[channel.value] = status == 200
        if status == 422:  # in the action's words, naming the section to configure
            assert answer["error"]["details"]["field"] == "channels", answer
            assert answer["error"]["message"].startswith(f"channels: {channel.value} is not configured"), (
                answer
            )
    assert verdicts == {"email": True, "press": True, "telegram": False, "webhook": False}


#: The share of the document's links the full run's stateful phase must follow (it followed
#: 2-4 of 27 as one token; see bench/conformance.py).
FULL_RUN_LINKS = 20


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_full_conformance_run_finds_nothing() -> None:
    """The README's command (``bench/conformance.py``): every phase, check and mode against a
    real ``alerts serve``, two tokens. Minutes: ``pytest -m slow tests/web/test_openapi.py``."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.conformance", "--examples", "50", "--seed", "1"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    links = re.search(r"API Links:\s+(\d+) covered / \d+ selected / (\d+) total", done.stdout)
    assert links is not None, done.stdout[-3000:]
    assert int(links.group(1)) >= FULL_RUN_LINKS, links.group(0)


async def test_links_walk_the_workflow_from_create_to_resume(site: Site) -> None:
    """Every link names an operation and fills exactly its path variables; the workflow routes
    link to what their success opens, so a stateful client goes create, submit, approve (as a
    second person), send, pause, resume on one alert."""
    async with site.http.get(f"{site.base}{PREFIX}/openapi.json") as r:
        doc = await r.json()
    paths = {op["operationId"]: path for path, methods in doc["paths"].items() for op in methods.values()}
    follows: dict[str, set[str]] = {}
    for methods in doc["paths"].values():
        for op in methods.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    target = paths[link["operationId"]]
                    assert set(link["parameters"]) == set(re.findall(r"\{(\w+)\}", target)), link
                    follows.setdefault(op["operationId"], set()).add(link["operationId"])
    chain = ["post_alerts", "post_alerts_id_submit", "post_alerts_id_approve", "post_alerts_id_send"]
    chain += ["post_alerts_id_pause", "post_alerts_id_resume"]
    for here, there in itertools.pairwise(chain):
        assert there in follows.get(here, set()), (here, there)
    submit = doc["paths"][f"{PREFIX}/alerts/{{id}}/submit"]["post"]["responses"]["200"]["links"]
    assert submit["post_alerts_id_approve"]["parameters"] == {"id": "$request.path.id"}
    assert follows["post_alerts_id_consent"] == {"post_alerts_id_send"}
