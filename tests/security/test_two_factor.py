"""Two-factor sign-in (issue 14, item 4), over real HTTP on a real database: enrolment with a code
computed from the secret the page shows, the second sign-in step, wrong and replayed codes,
recovery codes, ``[server] require_2fa``, the admin's reset from the CLI, read-only API tokens."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import aiohttp
import pyotp
import pytest
from sqlalchemy import select

from alerts.accounts import signin_limits, users
from alerts.actions import accounts, two_factor
from alerts.app import App
from alerts.core.errors import Conflict
from alerts.store.models import AuditEntry, RecoveryCode, SignInAttempt, User
from alerts.web.second_factor import PENDING_COOKIE
from tests.test_cli import CLI
from tests.web import Client, P, make_staff, running, signed_in

ENROL = f"{P}/account/2fa"
SECRET = re.compile(r'<code id="twofa-secret">([A-Z2-7 ]+)</code>')
CODE = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


@pytest.fixture
async def web(db_url: str):  # type: ignore[no-untyped-def]
    async with running(db_url) as (app, base):
        await make_staff(app)
        yield app, base


def at(secret: str, steps: int = 0) -> str:
    """The code of ``secret`` for the time step ``steps`` away from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


async def enrol(client: Client) -> tuple[str, list[str]]:
    """Enrol the client's user as a person does: read the secret off the page, answer a code."""
    status, page = await client.get(ENROL)
    assert status == 200, status
    found = SECRET.search(page)
    assert found, "no secret on the enrolment page"
    key = found.group(1).replace(" ", "")  # shown in groups of four
    r = await client.post(ENROL, {"code": at(key)})
    page = await r.text()
    assert r.status == 200, page
    return key, CODE.findall(page)


async def _audit(app: App, name: str) -> list[tuple[str, object]]:
    async with app.sessions() as session:
        user = await users.get_user(session, name)
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "user", AuditEntry.object_id == str(user.id))
        )
        return [(e.action, e.details) for e in rows if e.action.startswith("user.2fa")]


async def test_enrolment_shows_a_local_qr_code_and_needs_a_code_from_the_secret(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    client = await signed_in(base, "officer")
    try:
        status, page = await client.get(ENROL)
        assert status == 200
        shown = SECRET.search(page)
        assert shown
        key = shown.group(1).replace(" ", "")  # shown in groups of four
        qr = page[page.index('<div class="qr"') : page.index("</svg>")]
        assert "<svg" in qr and "<path" in qr  # drawn here: no image from elsewhere, no script
        assert "http" not in qr.replace('xmlns="http://www.w3.org/2000/svg"', "")
        # only the pages' own script, and its words as data (not run)
        page_scripts = re.sub(r'<script type="application/json" id="ui-text">[^<]*</script>', "", page)
        assert "<script" not in page_scripts.replace('<script src="/static/ui.js" defer></script>', "")
        assert (await client.get(ENROL))[1].count(shown.group(1)) == 1  # the same secret on reload

        r = await client.post(ENROL, {"code": "000000" if at(key) != "000000" else "111111"})
        assert r.status == 401
        async with app.sessions() as session:
            assert (await users.get_user(session, "officer")).totp_secret is None  # not on yet

        r = await client.post(ENROL, {"code": at(key)})
        page = await r.text()
        codes = CODE.findall(page)
        assert r.status == 200 and len(codes) == 10 == len(set(codes))
        assert "shown only this once" in page
        status, page = await client.get(ENROL)
        assert "Recovery codes left: 10." in page and not CODE.findall(page)  # shown once only
        async with app.sessions() as session:
            officer = await users.get_user(session, "officer")
            assert officer.totp_secret == key and officer.totp_pending is None
            stored = list(await session.scalars(select(RecoveryCode.code_hash)))
        assert len(stored) == 10 and not set(stored) & set(codes)  # hashed
        audit = await _audit(app, "officer")
        assert [action for action, _ in audit] == ["user.2fa_enrol"]
        assert key not in repr(audit)
    finally:
        await client.close()


async def test_sign_in_asks_for_the_code_and_a_half_signed_in_visitor_gets_nothing(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    owner = await signed_in(base, "reviewer")
    secret, _ = await enrol(owner)
    await owner.close()

    client = Client(base)
    thief = Client(base)
    try:
        r = await client.sign_in("reviewer")
        assert r.status == 303 and r.headers["Location"] == "/login/2fa"
        assert "ua_session" not in r.cookies and PENDING_COOKIE in r.cookies
        for path in ("/", f"{P}/users", f"{P}/alerts/new", ENROL):  # the half-signed-in state grants nothing
            status, _ = await client.get(path)
            assert status == 303
        assert (await client.post(f"{P}/sessions/end", {})).status in (401, 403)
        status, page = await client.get("/login/2fa")
        assert status == 200 and 'autocomplete="one-time-code"' in page

        # the code used to enrol is spent: the same code at sign-in is a replay
        async with app.sessions() as session:
            enrolled_step = (await users.get_user(session, "reviewer")).totp_last_step
        assert enrolled_step is not None
        r = await client.post("/login/2fa", {"code": pyotp.TOTP(secret).generate_otp(enrolled_step)})
        assert r.status == 401 and "already used" in await r.text()
        r = await client.post("/login/2fa", {"code": at(secret, 1)})
        assert r.status == 303 and r.headers["Location"] == "/"
        assert (await client.get("/"))[0] == 200

        # someone who saw that code and has the password cannot use it again
        assert (await thief.sign_in("reviewer")).status == 303
        await thief.get("/login/2fa")
        r = await thief.post("/login/2fa", {"code": at(secret, 1)})
        assert r.status == 401
        assert (await thief.get("/"))[0] == 303
        # no pending sign-in: the code page sends to the password page
        stranger = Client(base)
        assert (await stranger.get("/login/2fa"))[0] == 303
        await stranger.get("/login")
        assert (await stranger.post("/login/2fa", {"code": at(secret, 1)})).status == 401
        await stranger.close()
    finally:
        await client.close()
        await thief.close()


async def test_wrong_codes_count_into_the_sign_in_limits(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    owner = await signed_in(base, "officer")
    secret, _ = await enrol(owner)
    await owner.close()
    wrong = (
        "123456"
        if at(secret) != "123456" and at(secret, -1) != "123456" and at(secret, 1) != "123456"
        else "654321"
    )
    client = Client(base)
    try:
        tries = 0
        while tries < signin_limits.ACCOUNT_NETWORK_LIMIT:
            # signing in again with the right password does not forget the wrong codes
            assert (await client.sign_in("officer")).status == 303
            await client.get("/login/2fa")
            for _ in range(2):
                if tries == signin_limits.ACCOUNT_NETWORK_LIMIT:
                    break
                r = await client.post("/login/2fa", {"code": wrong})
                assert r.status == 401
                tries += 1
        r = await client.post("/login/2fa", {"code": at(secret, 1)})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0  # even the right code, now
        r = await client.sign_in("officer")
        assert r.status == 429  # and the password too, from this network
        async with app.sessions() as session:
            assert (await users.get_user(session, "officer")).totp_last_step is not None
    finally:
        await client.close()


async def test_a_recovery_code_works_once(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    owner = await signed_in(base, "admin")
    _, codes = await enrol(owner)
    await owner.close()
    first = Client(base)
    second = Client(base)
    try:
        assert (await first.sign_in("admin")).status == 303
        await first.get("/login/2fa")
        r = await first.post("/login/2fa", {"code": codes[3].upper().replace("-", " ")})  # as typed
        assert r.status == 303 and (await first.get(f"{P}/users"))[0] == 200
        assert (await second.sign_in("admin")).status == 303
        await second.get("/login/2fa")
        assert (await second.post("/login/2fa", {"code": codes[3]})).status == 401
        assert (await second.post("/login/2fa", {"code": codes[4]})).status == 303
        status, page = await second.get(ENROL)
        assert "Recovery codes left: 8." in page
        assert [a for a, _ in await _audit(app, "admin")] == [
            "user.2fa_enrol", "user.2fa_recovery_code_used", "user.2fa_recovery_code_used",
        ]  # fmt: skip
    finally:
        await first.close()
        await second.close()


async def test_new_codes_and_turning_off_need_the_password_or_a_code(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    async with app.sessions() as session:
        viewer = await users.get_user(session, "viewer")
    with pytest.raises(Conflict) as err:  # nothing to renew before enrolling
        await two_factor.regenerate(app, viewer, "correct horse battery", address="192.0.2.1")
    assert err.value.message == "two-factor sign-in is not on: enrol first"
    client = await signed_in(base, "viewer")
    try:
        secret, old = await enrol(client)
        await client.get(ENROL)
        r = await client.post(f"{ENROL}/codes", {"proof": "not my password"})
        assert r.status == 403
        async with app.sessions() as session:  # counted like a wrong password
            assert len(list(await session.scalars(select(SignInAttempt)))) == 3
        r = await client.post(f"{ENROL}/codes", {"proof": "correct horse battery"})
        new = CODE.findall(await r.text())
        assert r.status == 200 and len(new) == 10 and not set(new) & set(old)
        await client.get(ENROL)
        r = await client.post(f"{ENROL}/disable", {"proof": at(secret, 1)})
        assert r.status == 303
        async with app.sessions() as session:
            viewer = await users.get_user(session, "viewer")
            assert viewer.totp_secret is None
            assert not list(
                await session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == viewer.id))
            )
        assert [a for a, _ in await _audit(app, "viewer")] == [
            "user.2fa_enrol", "user.2fa_recovery_codes", "user.2fa_disable",
        ]  # fmt: skip
        again = Client(base)
        assert (await again.sign_in("viewer")).status == 303
        assert (await again.get("/"))[0] == 200  # no code asked any more
        await again.close()
    finally:
        await client.close()


async def test_wrong_proofs_on_a_session_left_open_count_into_the_limits(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    client = await signed_in(base, "officer")
    try:
        secret, _ = await enrol(client)
        for _ in range(signin_limits.ACCOUNT_NETWORK_LIMIT):
            await client.get(ENROL)
            assert (await client.post(f"{ENROL}/disable", {"proof": "a guess at it"})).status == 403
        await client.get(ENROL)
        r = await client.post(f"{ENROL}/disable", {"proof": at(secret, 1)})
        assert r.status == 429  # even the right code, until the window has passed
    finally:
        await client.close()


async def test_require_2fa_sends_reviewers_and_admins_to_enrol_before_anything_else(db_url: str) -> None:
    async with running(db_url, require_2fa=True) as (app, base):
        await make_staff(app)
        for name in ("officer", "viewer"):
            client = await signed_in(base, name)
            assert (await client.get("/"))[0] == 200
            await client.close()
        for name in ("reviewer", "admin"):
            client = Client(base)
            r = await client.sign_in(name)
            assert r.status == 303
            status, _ = await client.get("/")
            assert status == 303
            async with client.http.get(
                base + "/", headers={"Accept": "text/html"}, allow_redirects=False
            ) as r:
                assert r.headers["Location"] == ENROL
            status, page = await client.get(ENROL)
            assert status == 200 and 'id="twofa-required"' in page
            r = await client.post(f"{P}/sessions/end", {})
            assert r.status == 403 and "two-factor" in await r.text()
            assert (await client.get(f"{P}/followups"))[0] == 303
            assert (await client.get(f"{P}/users", html=False))[0] == 403
            secret, _ = await enrol(client)
            assert (await client.get("/"))[0] == 200
            await client.get(ENROL)
            r = await client.post(f"{ENROL}/disable", {"proof": at(secret, 1)})
            assert r.status == 409  # required for the role: an admin resets it instead
            await client.close()


async def test_without_require_2fa_a_reviewer_and_an_admin_may_turn_two_factor_off(web) -> None:  # type: ignore[no-untyped-def]
    """``[server] require_2fa`` off (the default): the roles it would bind are free to enrol and
    to turn it off again, like anyone else; the page does not say it is required."""
    app, base = web
    for name in ("reviewer", "admin"):
        client = await signed_in(base, name)
        try:
            secret, _ = await enrol(client)
            status, page = await client.get(ENROL)
            assert status == 200 and 'id="twofa-required"' not in page
            r = await client.post(f"{ENROL}/disable", {"proof": at(secret, 1)})
            assert r.status == 303, await r.text()
            async with app.sessions() as session:
                assert (await users.get_user(session, name)).totp_secret is None
            assert [a for a, _ in await _audit(app, name)] == ["user.2fa_enrol", "user.2fa_disable"]
        finally:
            await client.close()


async def test_with_require_2fa_turning_it_off_is_refused_naming_the_role(db_url: str) -> None:
    """The 409 says which role binds the user, and that an admin can reset a lost device."""
    async with running(db_url, require_2fa=True) as (app, base):
        await make_staff(app)
        client = Client(base)
        try:
            assert (await client.sign_in("reviewer")).status == 303
            secret, _ = await enrol(client)
            await client.get(ENROL)
            r = await client.post(f"{ENROL}/disable", {"proof": at(secret, 1)})
            page = html.unescape(await r.text())
            assert r.status == 409
            assert (
                "two-factor sign-in is required for the reviewer role ([server] require_2fa); it cannot "
                "be turned off, an admin can reset it if you lost your device" in page
            ), page
            async with app.sessions() as session:
                assert (await users.get_user(session, "reviewer")).totp_secret == secret
        finally:
            await client.close()


async def test_an_admin_resets_a_lost_second_factor_from_the_cli(web, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    officer = await signed_in(base, "officer")
    await enrol(officer)
    cli = CLI(str(app.settings.database.url), tmp_path)
    cli.env["ALERTS_SERVER_SECRET_KEY"] = app.settings.server.secret_key
    try:
        run = await cli("users", "2fa-reset", "officer")
        assert run.code == 0, run.err
        assert "removed" in run.err
        assert (await officer.get("/"))[0] == 303  # their sessions ended
        async with app.sessions() as session:
            user = await session.scalar(select(User).where(User.name == "officer"))
            assert user is not None and user.totp_secret is None
            assert not list(await session.scalars(select(RecoveryCode)))
            entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "user.2fa_reset"))
            assert entry is not None and entry.user_id is None  # the console
        fresh = await signed_in(base, "officer")  # the password alone, then they may enrol again
        await fresh.close()
        run = await cli("users", "2fa-reset", "officer")
        assert run.code == 0 and "had no second factor" in run.err
        run = await cli("users", "2fa-reset", "nobody")
        assert run.code == 2 and "does not exist" in run.err
    finally:
        await officer.close()


async def test_a_read_only_token_reads_and_nothing_else(web, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    cli = CLI(str(app.settings.database.url), tmp_path)
    run = await cli("users", "token", "officer", "--read-only")
    assert run.code == 0 and "read-only" in run.err, run.err
    read_only = run.out.strip()
    issued = await accounts.issue_token(app, None, "admin")
    async with aiohttp.ClientSession() as http:

        async def call(method: str, path: str, token: str, **kw: object) -> tuple[int, object]:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.request(method, base + path, headers=headers, **kw) as r:  # type: ignore[arg-type]
                return r.status, await r.json()

        assert (await call("GET", "/api/v1/templates", read_only))[0] == 200
        assert (await call("GET", "/api/v1/alerts", read_only))[0] == 200
        status, body = await call("POST", "/api/v1/alerts", read_only, json={"template": "x"})
        assert status == 403 and "read-only" in body["error"]["message"]  # type: ignore[index]
        status, body = await call("DELETE", "/api/v1/users/officer/token", read_only)
        assert status == 403
        # the admin's full token, and a read-only one issued through the API
        status, body = await call(
            "POST", "/api/v1/users/viewer/token", issued.token, json={"read_only": True}
        )
        assert status == 201
        viewer_token = body["token"]  # type: ignore[index]
        status, body = await call("GET", "/api/v1/users/viewer", issued.token)
        assert status == 200 and body["token_read_only"] is True  # type: ignore[index]
        assert (await call("GET", "/api/v1/alerts", viewer_token))[0] == 200
        assert (await call("POST", "/api/v1/users/viewer/token", viewer_token, json={}))[0] == 403
        # a full token again: it may write (the role decides)
        status, body = await call("POST", "/api/v1/users/viewer/token", issued.token, json={})
        assert status == 201
        status, body = await call("GET", "/api/v1/users/viewer", issued.token)
        assert body["token_read_only"] is False  # type: ignore[index]
    async with app.sessions() as session:
        officer = await users.get_user(session, "officer")
        assert officer.token_read_only
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "user.new_token", AuditEntry.object_id == str(officer.id)
            )
        )
        assert entry is not None and entry.details == {"replaced": False, "read_only": True}
