"""No 500 from input (issue 14 item 5): each input an attacker sent that made a server error,
on SQLite and on PostgreSQL (``ALERTS_TEST_DATABASE_URL``), now refused with a 4xx that names
the field, and nothing written. The property-based fuzz of every page's fields is in
``test_fuzz_pages.py``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from alerts.accounts import users
from alerts.app import App
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.nesting import MAX_DEPTH, check_depth, load_toml, toml_depth
from tests.factories import RENDERER
from tests.web import Client, P, make_staff, running, signed_in
from tests.web.conftest import row_counts
from tests.web.test_ui import draft_form

DEEP_ARRAY = "a = " + "[" * 500 + "]" * 500 + "\n"
DEEP_TABLE = "a = " + "{b = " * 500 + "1" + " }" * 500 + "\n"
DEEP_DOTTED = "a" + ".b" * 500 + " = 1\n"
HUGE = "99999999999999999999999"


@dataclass
class Office:
    app: App
    base: str
    officer: Client
    admin: Client
    token: str
    alert_id: int

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        async with aiohttp.ClientSession() as http:
            async with http.request(method, self.base + path, headers=headers, **kw) as r:
                body = await r.json() if r.content_type == "application/json" else await r.text()
                return r.status, body


@pytest.fixture
async def office(db_url: str) -> AsyncIterator[Office]:
    async with running(db_url) as (app, base):
        await make_staff(app)
        async with app.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="api-admin", role="admin", with_token=True, now=utcnow()
            )
        assert token is not None
        officer, admin = await signed_in(base, "officer"), await signed_in(base, "admin")
        await officer.get(f"{P}/alerts/new")
        r = await officer.post(f"{P}/alerts/new", draft_form())
        alert_id = int(r.headers["Location"].split("/")[-1].split("?")[0])
        yield Office(app, base, officer, admin, token, alert_id)
        await officer.close()
        await admin.close()


def _error(body: str) -> dict[str, Any]:
    return dict(json.loads(body)["error"])


async def test_unicode_digits_and_huge_numbers_are_refused_naming_the_parameter(office: Office) -> None:
    o = office
    for path, field in [
        (f"{P}/contacts?page=²", "page"),
        (f"{P}/alerts/{o.alert_id}/deliveries?page=²", "page"),
        (f"{P}/contacts?page=١", "page"),
        (f"{P}/audit?id=²", "id"),
        (f"{P}/audit?id={HUGE}", "id"),
    ]:
        status, body = await o.officer.get(path, html=False)
        assert status == 422, (path, status, body)
        assert _error(body)["details"]["field"] == field, (path, body)
    for path, field in [
        ("/api/v1/contacts?limit=²", "limit"),
        (f"/api/v1/alerts/{o.alert_id}/deliveries?limit=²", "limit"),
        (f"/api/v1/alerts/{o.alert_id}/deliveries?offset=١٢", "offset"),
        (f"/api/v1/contacts?limit={HUGE}", "limit"),
    ]:
        status, body = await o.api("GET", path)
        assert status == 422 and body["error"]["details"]["field"] == field, (path, body)
    # the public archive reads the page the same way, and shows page 1 for a mistyped one
    async with aiohttp.ClientSession() as http:
        for page in ("²", HUGE, "0", "-1"):
            async with http.get(f"{o.base}/alerts?page={page}") as r:
                assert r.status == 200, page
    # a follow-up's alert number in the form
    before = await row_counts(o.app)
    for raw in ("²", HUGE, "0"):
        r = await o.officer.post(
            f"{P}/followups", [("alert", raw), ("kind", "reminder"), ("due", "2099-01-01T09:00")]
        )
        assert r.status == 422 and "alert: " in await r.text(), raw
    assert await row_counts(o.app) == before


async def test_huge_ids_are_404_on_every_face(office: Office) -> None:
    o = office
    for path in (f"{P}/alerts/{HUGE}", f"{P}/alerts/9999999999999999", f"{P}/contacts/{HUGE}"):
        status, _ = await o.officer.get(path, html=False)
        assert status == 404, path
    r = await o.officer.post(f"{P}/alerts/{HUGE}/submit", [])
    assert r.status == 404
    for path in (f"/api/v1/alerts/{HUGE}", "/api/v1/alerts/9999999999999999", f"/api/v1/contacts/{HUGE}"):
        status, _ = await o.api("GET", path)
        assert status == 404, path
    async with aiohttp.ClientSession() as http:
        for path in (f"/alerts/{HUGE}", f"/alerts/{HUGE}.cap.xml", "/alerts/9999999999999999"):
            async with http.get(o.base + path) as r:
                assert r.status == 404, path


@pytest.mark.parametrize("toml", [DEEP_ARRAY, DEEP_TABLE, DEEP_DOTTED], ids=["array", "table", "dotted"])
async def test_deeply_nested_toml_is_refused_before_parsing(office: Office, toml: str) -> None:
    o = office
    before = await row_counts(o.app)
    r = await o.officer.post(f"{P}/alerts/new", [("family", "urgent-appeal"), ("case_toml", toml)])
    assert r.status == 422 and f"case data: nested deeper than {MAX_DEPTH} levels" in await r.text()
    r = await o.officer.post(
        f"{P}/preview",
        [("family", "urgent-appeal"), ("case_toml", toml), ("audience", "media"), ("channel", "email")],
        html=False,
    )
    assert r.status == 422, r.status
    r = await o.officer.post(f"{P}/alerts/{o.alert_id}/edit", [("case_toml", toml)], html=False)
    assert r.status == 422, r.status
    r = await o.officer.post(
        f"{P}/followups",
        [("alert", str(o.alert_id)), ("kind", "update"), ("due", "2099-01-01T09:00"), ("data", toml)],
    )
    assert r.status == 422, r.status
    assert await row_counts(o.app) == before


async def test_deep_json_bodies_are_refused(office: Office) -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = {"k": deep}
    data = {"defender": deep}
    status, body = await office.api("POST", "/api/v1/alerts", json={"family": "urgent-appeal", "data": data})
    assert status == 422 and body["error"]["message"] == f"body: nested deeper than {MAX_DEPTH} levels"
    status, body = await office.api(
        "POST",
        "/api/v1/alerts",
        data=b'{"data": ' + b"[" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert status == 400, body


async def test_nul_and_controls_are_refused_at_the_edge_with_400_naming_the_field(office: Office) -> None:
    o = office
    before = await row_counts(o.app)
    # sign-in name (PostgreSQL cannot compare text holding NUL)
    visitor = Client(o.base)
    await visitor.get("/login")
    r = await visitor.post("/login", {"name": "ad\x00min", "password": "x"}, html=False)
    body = await r.json()
    assert r.status == 400 and body["error"]["details"]["field"] == "name", body
    assert body["error"]["message"] == "name: control character U+0000 at position 3 is not allowed"
    # a password is hashed, never stored as text: any character may be in one, so it is not refused
    r = await visitor.post("/login", {"name": "admin", "password": "pass\x00word\u202e"}, html=False)
    assert r.status == 401, r.status
    await visitor.close()
    # the contacts API's search, a path segment, a query parameter of a page
    status, body = await o.api("GET", "/api/v1/contacts?q=a%00b")
    assert status == 400 and body["error"]["details"]["field"] == "q", body
    status, body = await o.admin.get(f"{P}/contacts?q=%E2%80%AEx", html=False)  # RIGHT-TO-LEFT OVERRIDE
    assert status == 400 and "q: control character U+202E" in body
    await o.admin.get(f"{P}/users")
    r = await o.admin.post(f"{P}/users/ad%00min/disable", [], html=False)
    assert r.status == 400 and (await r.json())["error"]["details"]["field"] == "name"
    # a consent note and a response summary, through the pages and the API
    r = await o.officer.post(f"{P}/alerts/{o.alert_id}/consent", [("scope", "public"), ("note", "a\x00b")])
    assert r.status == 400 and "note: control character U+0000" in await r.text()
    r = await o.officer.post(f"{P}/alerts/{o.alert_id}/responses", [("summary", "ok\x00"), ("contact", "x")])
    assert r.status == 400 and "summary: control character U+0000" in await r.text()
    status, body = await o.api(
        "POST", f"/api/v1/alerts/{o.alert_id}/consent", json={"scope": "public", "note": "a\x00b"}
    )
    assert status == 400 and body["error"]["details"]["field"] == "note", body
    status, body = await o.api(
        "POST", f"/api/v1/alerts/{o.alert_id}/responses", json={"from": "x", "summary": "a\x00b"}
    )
    assert status == 400 and body["error"]["details"]["field"] == "summary", body
    # a key of a JSON body, and case data (stored as JSON: PostgreSQL refuses \u0000 there too),
    # which its own validator refuses naming the variable, as in every face (tests/parity)
    status, body = await o.api("POST", "/api/v1/followups", json={"kind": "reminder", "in\x00": "7d"})
    assert status == 400 and "field name 'in\\x00'" in body["error"]["message"], body
    case = {**json.loads(json.dumps(RENDERER.example("urgent-appeal"), default=str)), "defender": "Ana\x00"}
    draft = {"family": "urgent-appeal", "data": case, "lists": ["urgent-appeals"]}
    status, body = await o.api("POST", "/api/v1/alerts", json=draft)
    assert status == 422 and "defender: control character U+0000" in body["error"]["message"], body
    status, body = await o.api(
        "POST", "/api/v1/alerts", json={"family": "urgent-appeal", "data": {"x\x00": "1"}}
    )
    assert status == 422, body
    # a multipart text part that is not UTF-8 (found by the long fuzz run)
    body = (
        b'--B\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + o.officer.token.encode()
        + b'\r\n--B\r\nContent-Disposition: form-data; name="file"\r\n\r\n\xff\xfe\r\n--B--\r\n'
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    async with o.officer.http.post(o.base + f"{P}/contacts/import", data=body, headers=headers) as resp:
        assert resp.status == 400, resp.status
        assert "a field is not UTF-8 text" in await resp.text()
    # public forms
    async with aiohttp.ClientSession() as http:
        async with http.post(o.base + "/subscribe", data={"email": "a\x00@example.org"}) as resp:
            assert resp.status == 400 and "email: control character U+0000" in await resp.text()
    assert await row_counts(o.app) == before
    # line breaks and TAB stay allowed in multi-line text
    r = await o.officer.post(
        f"{P}/alerts/{o.alert_id}/responses", [("summary", "line one\r\nline\ttwo"), ("contact", "x")]
    )
    assert r.status == 303, r.status


def test_toml_depth_skips_strings_and_comments() -> None:
    assert toml_depth('a = "[[[[[[" # {{{{{{\nb = [1, [2]]\n') == 2
    assert toml_depth("a = '''\n[[[[\n'''\nb = '[[[['\n") == 0
    assert toml_depth('a = "x\\"[[[["\n') == 0
    assert toml_depth("[t]\nx = {a = {b = 1}}\n") == 2
    assert toml_depth(DEEP_ARRAY) == 500
    with pytest.raises(ValidationError, match="longer than"):
        load_toml("a = 1\n" * 40_000, "case data")
    check_depth({"a": [[1]], "b": {"c": [2]}}, "x", limit=3)  # three levels, the document's own included
    with pytest.raises(ValidationError, match="x: nested deeper than 3 levels"):
        check_depth({"a": [[[1]]]}, "x", limit=3)
