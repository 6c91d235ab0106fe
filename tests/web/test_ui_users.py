"""The officers' users page (admins) and "change my password", over real HTTP."""

from __future__ import annotations

import html
import re

import aiohttp
import pytest
from sqlalchemy import select

from alerts.accounts import users
from alerts.store.models import AuditEntry
from tests.web import PASSWORD, Client, P, make_staff, running, signed_in


@pytest.fixture
async def web(db_url: str):  # type: ignore[no-untyped-def]
    async with running(db_url) as (app, base):
        await make_staff(app)
        yield app, base


async def _api_status(base: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/api/v1/templates", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status


def _token(page: str) -> str:
    match = re.search(r'<code id="token-value">([^<]+)</code>', page)
    assert match, "no token on the page"
    return html.unescape(match.group(1))


async def test_an_admin_manages_accounts_on_the_users_page(web) -> None:  # type: ignore[no-untyped-def]
    app, base = web
    admin = await signed_in(base, "admin")
    officer = await signed_in(base, "officer")
    officer2 = await signed_in(base, "officer2")
    try:
        status, page = await admin.get("/")
        assert f'href="{P}/users"' in page
        assert f'href="{P}/users"' not in (await officer.get("/"))[1]  # admins only
        assert (await officer.get(f"{P}/users"))[0] == 403
        status, page = await admin.get(f"{P}/users")
        assert status == 200 and "officer2" in page

        r = await admin.post(f"{P}/users", {"name": "nina", "role": "viewer", "token": "1"})
        first = _token(await r.text())
        assert r.status == 200 and await _api_status(base, first) == 200
        status, page = await admin.get(f"{P}/users")  # where the token is no longer shown
        assert "token-value" not in page and "nina" in page and "none: cannot sign in" in page

        r = await admin.post(f"{P}/users/nina/token", {})
        page = await r.text()
        assert r.status == 200 and "shown only this once" in page and "previous token no longer works" in page
        token = _token(page)
        assert await _api_status(base, token) == 200
        await admin.get(f"{P}/users")
        r = await admin.post(f"{P}/users/nina/token/revoke", {})
        assert r.status == 303 and r.headers["Location"] == f"{P}/users?notice=revoked&name=nina"
        assert await _api_status(base, token) == 401

        r = await admin.post(f"{P}/users/officer2/disable", {})
        assert r.status == 303
        assert (await officer2.get("/"))[0] == 303  # its session: back to the sign-in page
        status, page = await admin.get(r.headers["Location"])
        assert "User officer2 disabled" in page
        r = await admin.post(f"{P}/users/officer2/enable", {})
        assert r.status == 303
        assert (await officer2.get("/"))[0] == 303  # the old session stays dead
        fresh = await signed_in(base, "officer2")
        await fresh.close()

        await admin.get(f"{P}/users")
        r = await admin.post(f"{P}/users/officer/password", {"password": "officer's new one"})
        assert r.status == 303
        assert (await officer.get("/"))[0] == 303
        again = Client(base)
        assert (await again.sign_in("officer", "officer's new one")).status == 303
        await again.close()

        await admin.get(f"{P}/users")
        r = await admin.post(f"{P}/users/admin/disable", {})
        assert r.status == 409 and "cannot deactivate themselves" in await r.text()
        r = await admin.post(f"{P}/users", {"name": "nina", "role": "viewer"})
        assert r.status == 409 and "user &#39;nina&#39; already exists" in await r.text()
        r = await admin.post(f"{P}/users/nina/disable", {}, csrf=False)
        assert r.status == 403  # no CSRF token

        async with app.sessions() as session:
            ada = await users.get_user(session, "admin")
            actions = [
                e.action
                for e in await session.scalars(
                    select(AuditEntry).where(AuditEntry.user_id == ada.id).order_by(AuditEntry.id)
                )
            ]
            nina = await users.get_user(session, "nina")
        assert actions == [
            "user.create", "user.new_token", "user.revoke_tokens", "user.deactivate", "user.activate",
            "user.set_password",
        ]  # fmt: skip
        assert nina.active and nina.token_hash is None
    finally:
        for client in (admin, officer, officer2):
            await client.close()


async def test_anyone_changes_their_own_password_and_their_other_sessions_end(web) -> None:  # type: ignore[no-untyped-def]
    _, base = web
    here = await signed_in(base, "viewer")
    there = await signed_in(base, "viewer")
    try:
        status, page = await here.get(f"{P}/password")
        assert status == 200 and "Current password" in page
        form = {"current": "not my password", "password": "a new password", "repeat": "a new password"}
        r = await here.post(f"{P}/password", form)
        assert r.status == 403 and "current password: not right" in await r.text()
        await here.get(f"{P}/password")
        r = await here.post(f"{P}/password", form | {"current": PASSWORD, "repeat": "another one"})
        assert r.status == 422 and "do not match" in await r.text()
        await here.get(f"{P}/password")
        r = await here.post(f"{P}/password", form | {"current": PASSWORD})
        assert r.status == 303
        status, page = await here.get(r.headers["Location"])
        assert status == 200 and "Password changed" in page  # this browser is still signed in
        assert (await there.get("/"))[0] == 303  # the other session ended
        again = Client(base)
        assert (await again.sign_in("viewer", "a new password")).status == 303
        await again.close()
    finally:
        await here.close()
        await there.close()
