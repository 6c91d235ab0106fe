"""Hostile CSV, JSON and HTTP: refused cleanly with bounded memory; every API route needs a
token; sign-in brute force is throttled; addresses and secrets stay out of INFO logs."""

from __future__ import annotations

import io
import logging
import os
import re
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.cli.capture import CaptureServer
from alerts.contacts.csv_import import export_contacts_csv, import_csv
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.errors import AlertsError
from alerts.service import make_dispatcher
from alerts.store.models import Contact
from tests.factories import published_alert

MB = 1024 * 1024
HEADER = b"name,email,telegram,kind,language,organisation,country,lists\n"


async def _import_bounded(sessions: async_sessionmaker[AsyncSession], data: bytes) -> tuple[str, int]:
    """Import ``data``; (outcome, peak traced memory in bytes beyond the input itself)."""
    tracemalloc.start()
    try:
        try:
            report = await import_csv(sessions, io.BytesIO(data))
            outcome = f"report: {report.summary()}"
        except AlertsError as exc:
            outcome = f"refused: {exc.message}"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return outcome, peak


@pytest.mark.parametrize(
    "name,data",
    [
        ("binary junk", os.urandom(2 * MB)),
        ("NUL bytes", HEADER + b"a\x00b,a@example.org,,authority,en,,,x\n" * 1000),
        ("10 MB line", HEADER + b"A" * (10 * MB) + b",x@example.org,,authority,en,,,l\n"),
        ("10 MB quoted cell", HEADER + b'"' + b"A" * (10 * MB) + b'",x@example.org,,authority,en,,,l\n'),
        ("unterminated quote", HEADER + b'"never closed,' + b"x" * MB),
        ("1M columns", HEADER + b",".join([b"x"] * 1_000_000) + b"\n"),
        ("1M columns header", b",".join([b"name"] * 1_000_000) + b"\n"),
    ],
)
async def test_hostile_csv_is_refused_with_bounded_memory(
    sessions: async_sessionmaker[AsyncSession], name: str, data: bytes
) -> None:
    outcome, peak = await _import_bounded(sessions, data)
    async with sessions() as session:
        written = (await session.execute(select(func.count()).select_from(Contact))).scalar_one()
    print(f"{name}: {outcome[:120]} (peak {peak / MB:.1f} MB for {len(data) / MB:.1f} MB input)")
    assert written == 0, f"{name}: {written} contacts written from hostile input"
    assert outcome.startswith("refused") or "refused" in outcome or "0 created" in outcome, outcome
    assert peak < 5 * len(data) + 32 * MB, f"{name}: {peak / MB:.0f} MB peak"


async def test_exported_csv_cannot_run_formulas(sessions: async_sessionmaker[AsyncSession]) -> None:
    rows = [
        '"=HYPERLINK(""http://evil.example"",""x"")",a@example.org,,authority,en,+ORG,-1+1,l',
        '@SUM(1+1),b@example.org,,authority,en,\tTAB,"\rCR",l',
        "=cmd|' /C calc'!A0,c@example.org,,authority,en,,,l",
    ]
    report = await import_csv(sessions, io.BytesIO(HEADER + "\n".join(rows).encode() + b"\n"))
    assert not report.refused, report.refused
    out = io.StringIO()
    async with sessions() as session:
        await export_contacts_csv(session, out)
    import csv

    cells = [c for row in list(csv.reader(io.StringIO(out.getvalue())))[1:] for c in row]
    dangerous = [c for c in cells if c and c[0] in "=+-@\t\r"]
    assert dangerous == [], dangerous


# -- the HTTP surface ---------------------------------------------------------------------------

PUBLIC_PREFIXES = (
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/subscribe",
    "/unsubscribe",
    "/preferences",
    "/alerts",
    "/feed",
    "/login",
    "/logout",
    "/static",
    "/api/v1/openapi.json",
    "/api/docs",  # the API's documentation page (Swagger UI), public like the document it reads
    "/favicon",
    "/mailbox",
)


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[tuple[TestClient, App]]:
    from alerts.web import make_web_app

    settings = Settings().replace("database", url=db_url).replace("server", secret_key="s3cret-for-tests-xyz")
    async with open_app(settings, channels={}) as app:
        async with TestClient(TestServer(make_web_app(app))) as c:
            yield c, app


def _concrete(resource: web.AbstractResource) -> str:
    info = resource.get_info()
    path = info.get("path") or info.get("formatter") or ""
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_api_route_refuses_anonymous_and_bad_tokens(client: tuple[TestClient, App]) -> None:
    c, _ = client
    checked, gaps = [], []
    for route in c.server.app.router.routes():
        path = _concrete(route.resource) if route.resource else ""
        if (
            not path.startswith("/api/")
            or path.startswith(PUBLIC_PREFIXES)
            or route.method in ("HEAD", "OPTIONS")
        ):
            continue
        method = "GET" if route.method == "*" else route.method
        for headers in (
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            resp = await c.request(method, path, headers=headers, json={} if method != "GET" else None)
            body = await resp.text()
            if resp.status != 401:
                gaps.append(f"{method} {path} {headers or 'anonymous'} -> {resp.status}")
            else:
                assert '"error"' in body
        checked.append(f"{method} {path}")
    print(f"checked {len(checked)} API routes: {checked}")
    assert len(checked) >= 2
    assert gaps == [], gaps


async def test_officer_pages_need_sign_in(client: tuple[TestClient, App]) -> None:
    c, _ = client
    open_pages = []
    for route in c.server.app.router.routes():
        path = _concrete(route.resource) if route.resource else ""
        if (
            route.method != "GET"
            or path.startswith("/api/")
            or path.startswith(PUBLIC_PREFIXES)
            or path == ""
        ):
            continue
        resp = await c.get(path, allow_redirects=False)
        if resp.status == 200:
            open_pages.append(path)
    assert open_pages == [], f"pages served without sign-in: {open_pages}"


async def test_malformed_and_oversized_json_are_refused_as_json(client: tuple[TestClient, App]) -> None:
    c, app = client
    async with app.sessions.begin() as session:
        _, token = await users.create_user(
            session, name="admin2", role="admin", with_token=True, now=utcnow()
        )
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    posts = [
        r
        for r in c.server.app.router.routes()
        if r.method == "POST" and r.resource is not None and _concrete(r.resource).startswith("/api/")
    ]
    assert posts, "no POST API routes to test"
    for route in posts:
        path = _concrete(route.resource)  # type: ignore[arg-type]
        for body in (
            b"{not json",
            b"\xff\xfe\x00",
            b"[1,2,3]",
            b"{" * 100_000 + b"}" * 100_000,
            b'{"a": "' + b"x" * (9 * MB) + b'"}',
        ):
            resp = await c.post(path, data=io.BytesIO(body), headers=auth)
            text = await resp.text()
            assert 400 <= resp.status < 500, f"POST {path} with {body[:20]!r}… -> {resp.status}: {text[:200]}"
            if resp.status != 404:
                assert '"error"' in text, f"POST {path}: {text[:200]}"


async def test_sign_in_brute_force_is_throttled(client: tuple[TestClient, App]) -> None:
    c, app = client
    if not any(
        _concrete(r.resource) == "/login" and r.method == "POST"
        for r in c.server.app.router.routes()
        if r.resource is not None
    ):
        pytest.skip("no POST /login route in this version")
    async with app.sessions.begin() as session:
        await users.create_user(
            session, name="olga", role="officer", password="a long enough passphrase", now=utcnow()
        )
    statuses = []
    for i in range(12):
        page = await (await c.get("/login")).text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match, page[:300]
        resp = await c.post(
            "/login",
            data={"name": "olga", "password": f"guess-{i}", "csrf_token": match.group(1)},
            allow_redirects=False,
        )
        statuses.append(resp.status)
    assert 429 in statuses, statuses
    assert statuses.index(429) <= 6, statuses
    # even the right password is refused while the account is throttled
    page = await (await c.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = await c.post(
        "/login",
        data={"name": "olga", "password": "a long enough passphrase", "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 429


# -- logs --------------------------------------------------------------------------------------


async def test_no_address_token_or_secret_in_info_logs_during_a_fan_out(
    db_url: str, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    n = 300
    alert_id = await published_alert(sessions, n)
    async with sessions() as session:
        contacts = (await session.execute(select(Contact.email, Contact.token))).all()
    password, secret = "smtp-Pa55word-xyz", "server-secret-key-abc"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(level=logging.INFO)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:

        class Flaky(CaptureServer):
            pass

        from alerts.cli.capture import RecordingHandler

        class Mixed(RecordingHandler):
            async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
                if address.startswith("person1"):  # person1, person10…: some bounce, some defer
                    return (
                        "550 5.1.1 no such user" if address.endswith("0@example.org") else "451 4.3.0 later"
                    )
                envelope.rcpt_tos.append(address)
                return "250 OK"

        async with CaptureServer(handler=Mixed(limit=10_000)) as smtp:
            settings = (
                Settings()
                .replace("database", url=db_url)
                .replace("email", port=smtp.port, password=password, username="")
                .replace("server", secret_key=secret)
                .replace("dispatcher", backoff_base=0.05, backoff_max=0.1, max_attempts=2)
            )
            async with open_app(settings) as app:
                await make_dispatcher(app).run_until_done(alert_id, timeout=120)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    # the SMTP server in this test logs at INFO itself (mail.log): only the service's loggers count
    text = "\n".join(r for r in records if not r.startswith("mail.log"))
    assert records, "nothing was logged at INFO: the check would be empty"
    leaks = [a for a, _ in contacts if a and a in text] + [t for _, t in contacts if t and t in text]
    leaks += [s for s in (password, secret) if s in text]
    assert leaks == [], f"{len(leaks)} secrets/addresses in INFO logs, e.g. {leaks[:3]}"
