"""Sign-in, sessions, CSRF and login rate limits of the officers' pages, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from yarl import URL

from alerts.accounts import users
from alerts.core.clock import utcnow
from alerts.store.models import AuditEntry
from alerts.web import auth
from tests.web import PASSWORD, Client, P, csrf_in, make_staff, running, signed_in


@pytest.fixture
async def web(db_url: str):  # type: ignore[no-untyped-def]
    async with running(db_url) as (app, base):
        await make_staff(app)
        yield app, base


async def test_pages_need_sign_in(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = Client(base)
    try:
        status, _ = await client.get("/")
        assert status == 303
        async with client.http.get(
            base + f"{P}/alerts/1", headers={"Accept": "text/html"}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/login?next=%2Foffice%2Falerts%2F1"
        async with client.http.get(base + "/") as r:  # a script, not a browser: the JSON error
            assert r.status == 401
            assert await r.json() == {
                "error": {"code": "unauthorized", "message": "sign in first", "details": {}}
            }
    finally:
        await client.close()


async def test_sign_in_sets_a_safe_cookie_and_sign_out_revokes_it(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = Client(base)
    try:
        await client.get("/login?next=/office/audit")
        r = await client.post("/login", {"name": "officer", "password": PASSWORD, "next": "/office/audit"})
        assert r.status == 303 and r.headers["Location"] == "/office/audit"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        assert "Max-Age=28800" in cookie
        value = client.http.cookie_jar.filter_cookies(URL(base))[auth.SESSION_COOKIE].value
        status, page = await client.get("/")
        assert status == 200 and "officer (officer)" in page
        r = await client.post("/logout", {})
        assert r.status == 303 and r.headers["Location"] == "/login"
        # the old cookie, replayed after sign-out, no longer works
        replay = Client(base)
        replay.http.cookie_jar.update_cookies({auth.SESSION_COOKIE: value})
        status, _ = await replay.get("/")
        assert status == 303
        await replay.close()
    finally:
        await client.close()


EVIL_NEXTS = (
    "//evil.example/x",
    "/\t/evil.example",
    "/%09/evil.example",
    "\r\n",
    "/office\rx",
    "/office\r\nSet-Cookie: x=1",
    "https://evil.example",
    "/\\evil.example",
    "/%5Cevil.example",
    "javascript:alert(1)",
    "/login",  # local, but not an officers' page
    "/ /evil.example",
)


@pytest.mark.parametrize("target", EVIL_NEXTS)
async def test_next_never_leaves_the_site(web, target: str) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = Client(base)
    try:
        status, page = await client.get("/login?" + urlencode({"next": target}))
        assert status == 200
        assert 'name="next" value="/"' in page
        r = await client.post("/login", {"name": "viewer", "password": PASSWORD, "next": target})
        assert r.status == 303 and r.headers["Location"] == "/"
    finally:
        await client.close()


async def test_next_goes_to_officers_pages(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = Client(base)
    try:
        await client.get("/login")
        target = f"{P}/contacts?q=Ana%20Maria"
        r = await client.post("/login", {"name": "viewer", "password": PASSWORD, "next": target})
        assert r.status == 303 and r.headers["Location"] == target
    finally:
        await client.close()


async def test_secure_cookie_when_public_url_is_https(db_url: str) -> None:
    async with running(db_url, public_url="https://alerts.example.org") as (app, base):
        await make_staff(app)
        client = Client(base)
        try:
            async with client.http.get(base + "/login") as r:
                assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
                page = await r.text()
            # a browser would send the Secure cookie back over https only: hand it over as it would
            client.http.cookie_jar.update_cookies({auth.PRE_COOKIE: r.cookies[auth.PRE_COOKIE].value})
            client.token = csrf_in(page)
            r2 = await client.post("/login", {"name": "officer", "password": PASSWORD})
            assert r2.status == 303 and "Secure" in r2.headers["Set-Cookie"]
        finally:
            await client.close()


async def test_wrong_password_and_unknown_user_get_the_same_answer(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = Client(base)
    try:
        await client.get("/login")
        wrong = await client.post("/login", {"name": "officer", "password": "wrong password"})
        unknown = await client.post("/login", {"name": "nobody", "password": "wrong password"})
        assert wrong.status == unknown.status == 401
        _, _page = await client.get("/login")
        r = await client.post("/login", {"name": "nobody", "password": "x"}, html=False)
        assert (await r.json())["error"]["message"] == users.BAD_CREDENTIALS
    finally:
        await client.close()


async def test_login_rate_limited_per_account_and_per_address(web) -> None:  # type: ignore[no-untyped-def]
    _app, base = web
    client = Client(base)
    try:
        await client.get("/login")
        for _ in range(auth.LOGIN_LIMIT):
            r = await client.post("/login", {"name": "officer", "password": "wrong password"})
            assert r.status == 401
        # even the right password is refused now, before it is checked
        r = await client.post("/login", {"name": "officer", "password": PASSWORD}, html=False)
        assert r.status == 429
        assert 0 < int(r.headers["Retry-After"]) <= auth.LOGIN_WINDOW + 1
        body = await r.json()
        assert body["error"]["code"] == "rate_limited"
        assert body["error"]["message"] == "too many failed sign-in attempts; try again in 15 minutes"
        # another account from the same address is not locked by those failures…
        r = await client.post("/login", {"name": "reviewer", "password": "wrong password"})
        assert r.status == 401
        # …but the address as a whole has its own limit, whatever the account
        for i in range(auth.ADDRESS_LIMIT - auth.LOGIN_LIMIT - 1):
            r = await client.post("/login", {"name": f"nobody{i}", "password": "wrong password"})
            assert r.status == 401
        r = await client.post("/login", {"name": "reviewer", "password": PASSWORD})
        assert r.status == 429 and "Retry-After" in r.headers
    finally:
        await client.close()


async def test_parallel_wrong_passwords_cannot_pass_the_limit(web, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    real = users.authenticate_password

    async def slow_check(*args: Any, **kw: Any) -> Any:
        nonlocal checked
        checked += 1
        await asyncio.sleep(0.2)  # a slow hash: every request is in flight at once
        return await real(*args, **kw)

    monkeypatch.setattr(users, "authenticate_password", slow_check)
    _app, base = web
    client = Client(base)
    try:
        await client.get("/login")
        answers = await asyncio.gather(
            *(client.post("/login", {"name": "officer", "password": f"guess {i}"}) for i in range(20))
        )
        statuses = sorted(r.status for r in answers)
        assert checked <= auth.LOGIN_LIMIT
        assert statuses == [401] * checked + [429] * (20 - checked)
        assert all(int(r.headers["Retry-After"]) > 0 for r in answers if r.status == 429)
        # when they are over, the failures count as usual
        r = await client.post("/login", {"name": "officer", "password": PASSWORD})
        assert r.status == 429
    finally:
        await client.close()


async def test_a_success_releases_its_reservation(web) -> None:  # type: ignore[no-untyped-def]
    _app, base = web
    for _ in range(auth.LOGIN_LIMIT + 2):
        client = await signed_in(base, "officer")
        await client.close()


async def test_others_cannot_lock_an_officer_out_behind_a_trusted_proxy(db_url: str) -> None:
    async with running(db_url, trusted_proxies="10.9.8.7, 127.0.0.1") as (app, base):
        await make_staff(app)
        attacker = Client(base, headers={"X-Forwarded-For": "203.0.113.5"})
        # forged left-most entries are ignored: the right-most untrusted one is the client
        officer = Client(base, headers={"X-Forwarded-For": "203.0.113.5, 198.51.100.7, 10.9.8.7"})
        try:
            await attacker.get("/login")
            for _ in range(auth.LOGIN_LIMIT):
                r = await attacker.post("/login", {"name": "officer", "password": "wrong password"})
                assert r.status == 401
            r = await attacker.post("/login", {"name": "officer", "password": PASSWORD})
            assert r.status == 429
            # the real officer, at another address behind the same proxy, still signs in
            r = await officer.sign_in("officer")
            assert r.status == 303 and r.headers["Location"] == "/"
        finally:
            await attacker.close()
            await officer.close()


async def test_forwarded_for_is_ignored_from_untrusted_peers(web) -> None:  # type: ignore[no-untyped-def]
    _app, base = web
    attacker = Client(base, headers={"X-Forwarded-For": "203.0.113.5"})
    other = Client(base, headers={"X-Forwarded-For": "198.51.100.7"})
    try:
        await attacker.get("/login")
        for _ in range(auth.LOGIN_LIMIT):
            r = await attacker.post("/login", {"name": "officer", "password": "wrong password"})
            assert r.status == 401
        # both are the same peer (no trusted proxy): a header cannot buy a fresh allowance
        r = await other.sign_in("officer")
        assert r.status == 429
    finally:
        await attacker.close()
        await other.close()


async def test_a_bad_trusted_proxy_entry_stops_the_start(db_url: str) -> None:
    from alerts.core.errors import ConfigError

    with pytest.raises(ConfigError, match="trusted_proxies"):
        async with running(db_url, trusted_proxies="127.0.0.1, not-an-ip"):
            pass


async def test_forged_and_expired_session_cookies_are_refused(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    state = auth.make_state("test-secret-key-0123456789", "http://x")
    other = auth.make_state("another-secret", "http://x")
    async with app.sessions() as session:
        admin = await users.get_user(session, "admin")
    good = auth.issue(state, admin)
    assert auth.parse(state, good) is not None
    forged_mac = auth.issue(other, admin)  # signed with another key
    payload, mac = good.split(".")
    uid, issued, nonce, fp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other_user = json.dumps([uid + 1, issued, nonce, fp], separators=(",", ":")).encode()
    tampered = base64.urlsafe_b64encode(other_user).decode().rstrip("=") + "." + mac  # same MAC
    expired = auth.issue(state, admin, now=time.time() - auth.SESSION_MAX_AGE - 5)
    for value in (forged_mac, tampered, expired, "garbage", good + "x"):
        client = Client(base)
        client.http.cookie_jar.update_cookies({auth.SESSION_COOKIE: value})
        status, _ = await client.get("/")
        assert status == 303, value
        r = await client.post(f"{P}/alerts/new", {"family": "urgent-appeal"}, csrf=False, html=False)
        assert r.status in (401, 403)
        await client.close()
    # the genuine one works
    client = Client(base)
    client.http.cookie_jar.update_cookies({auth.SESSION_COOKIE: good})
    status, _ = await client.get("/")
    assert status == 200
    await client.close()


async def test_password_change_and_deactivation_end_sessions(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    client = await signed_in(base, "officer")
    other = await signed_in(base, "officer2")
    try:
        async with app.sessions.begin() as session:
            officer = await users.get_user(session, "officer")
            await users.set_password(session, officer, "a brand new password", now=utcnow())
            admin = await users.get_user(session, "admin")
            await users.set_active(
                session, await users.get_user(session, "officer2"), False, by=admin, now=utcnow()
            )
        assert (await client.get("/"))[0] == 303
        assert (await other.get("/"))[0] == 303
    finally:
        await client.close()
        await other.close()


async def test_posts_without_a_valid_csrf_token_are_refused(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    client = await signed_in(base, "officer")
    try:
        async with app.sessions() as session:
            before = await session.scalar(select(func.count()).select_from(AuditEntry))
        form = {
            "family": "urgent-appeal",
            "case_toml": 'defender = "X"',
            "kinds": "authority",
            "languages": "en",
        }
        r = await client.post(f"{P}/alerts/new", form, csrf=False, html=False)
        assert r.status == 403
        assert (await r.json())["error"] == {"code": "csrf_failed", "message": auth.BAD_CSRF, "details": {}}
        r = await client.post(f"{P}/alerts/new", form | {"csrf_token": "forged"}, csrf=False)
        assert r.status == 403 and auth.BAD_CSRF in html.unescape(await r.text())
        # a token from another user's session does not work either
        other = await signed_in(base, "officer2")
        r = await client.post(f"{P}/alerts/new", form | {"csrf_token": other.token}, csrf=False)
        assert r.status == 403
        await other.close()
        # sign-in and sign-out need it too
        r = await client.post("/logout", {}, csrf=False)
        assert r.status == 403
        anonymous = Client(base)
        r = await anonymous.post("/login", {"name": "officer", "password": PASSWORD}, csrf=False)
        assert r.status == 403
        await anonymous.close()
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(AuditEntry)) == before
    finally:
        await client.close()


async def test_pages_send_security_headers(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = await signed_in(base, "viewer")
    try:
        async with client.http.get(base + "/", headers={"Accept": "text/html"}) as r:
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
            assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'self': no inline
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Cache-Control"] == "no-store"
    finally:
        await client.close()


async def test_sessions_of_a_disabled_user_stay_dead_after_enabling_in_every_process(
    db_url: str,
) -> None:
    # Two `serve` processes on one database: a session signed in on the first is refused on
    # the second as soon as the user is disabled, and enabling the user again does not bring a
    # session issued before the disabling back (a stolen cookie stays dead).
    async with running(db_url) as (app, base), running(db_url) as (_other_app, other_base):
        await make_staff(app)
        client = await signed_in(base, "officer")
        cookie = client.http.cookie_jar.filter_cookies(URL(base))[auth.SESSION_COOKIE].value
        elsewhere = Client(other_base)
        elsewhere.http.cookie_jar.update_cookies({auth.SESSION_COOKIE: cookie}, URL(other_base))
        try:
            assert (await elsewhere.get("/"))[0] == 200
            async with app.sessions.begin() as session:
                admin = await users.get_user(session, "admin")
                officer = await users.get_user(session, "officer")
                await users.set_active(session, officer, False, by=admin, now=utcnow())
            assert (await client.get("/"))[0] == 303
            assert (await elsewhere.get("/"))[0] == 303
            async with app.sessions.begin() as session:
                admin = await users.get_user(session, "admin")
                officer = await users.get_user(session, "officer")
                await users.set_active(session, officer, True, by=admin, now=utcnow())
            assert (await client.get("/"))[0] == 303
            assert (await elsewhere.get("/"))[0] == 303
            fresh = await signed_in(other_base, "officer")  # signing in again works
            assert (await fresh.get("/"))[0] == 200
            await fresh.close()
        finally:
            await client.close()
            await elsewhere.close()
