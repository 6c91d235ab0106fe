"""The accounts API (/api/v1/users, admins only) over real HTTP on a real database."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from alerts.app import open_app
from alerts.core.errors import ValidationError
from alerts.store.models import AuditEntry
from alerts.web import make_web_app
from alerts.web.api.schema import check
from alerts.web.api.users import USER_EMAIL
from tests.web.conftest import Site, row_counts, site_settings

U = "/api/v1/users"


async def _audit(site: Site) -> list[tuple[int | None, str, str | None]]:
    async with site.app.sessions() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.user_id, e.action, e.object_id) for e in rows]


async def test_an_admin_manages_an_account_through_the_api(site: Site) -> None:
    before = len(await _audit(site))
    status, body = await site.call(
        "POST",
        U,
        user="ada",
        json={"name": "nina", "role": "viewer", "email": "nina@example.org", "token": True},
    )
    assert status == 201, body
    token, nid = body.pop("token"), body["id"]
    assert {k: body[k] for k in ("name", "role", "active", "has_password", "has_token")} == {
        "name": "nina", "role": "viewer", "active": True, "has_password": False, "has_token": True,
    }  # fmt: skip
    nina = {"Authorization": f"Bearer {token}"}
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 200

    status, listed = await site.call("GET", U, user="ada")
    assert status == 200 and [u["name"] for u in listed["users"]] == sorted([*site.tokens, "nina"])
    assert all("token" not in u and "password_hash" not in u for u in listed["users"])
    status, one = await site.call("GET", f"{U}/nina", user="ada")
    assert (status, one) == (200, body)

    status, patched = await site.call(
        "PATCH", f"{U}/nina", user="ada", json={"role": "officer", "email": None, "telegram": "12345"}
    )
    assert status == 200, patched
    assert (patched["role"], patched["email"], patched["telegram"]) == ("officer", None, "12345")
    status, done = await site.call(
        "POST", f"{U}/nina/password", user="ada", json={"password": "nina password"}
    )
    assert (status, done["has_password"]) == (200, True)

    status, issued = await site.call("POST", f"{U}/nina/token", user="ada")
    assert status == 201 and issued["replaced"] is True and issued["name"] == "nina"
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 401  # the old one
    nina = {"Authorization": f"Bearer {issued['token']}"}
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 200
    status, patched = await site.call("PATCH", f"{U}/nina", user="ada", json={"active": False})
    assert (status, patched["active"]) == (200, False)
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 401  # disabled
    status, patched = await site.call("PATCH", f"{U}/nina", user="ada", json={"active": True})
    assert (status, patched["active"], patched["has_token"]) == (200, True, False)
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 401  # revoked for good
    status, issued = await site.call("POST", f"{U}/nina/token", user="ada")
    assert (status, issued["replaced"]) == (201, False)
    nina = {"Authorization": f"Bearer {issued['token']}"}
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 200
    status, revoked = await site.call("DELETE", f"{U}/nina/token", user="ada")
    assert (status, revoked) == (200, {"name": "nina", "revoked": 1})
    assert (await site.call("GET", "/api/v1/templates", headers=nina))[0] == 401  # revoked

    ada = (await site.call("GET", f"{U}/ada", user="ada"))[1]["id"]
    assert (await _audit(site))[before:] == [
        (ada, "user.create", str(nid)),
        (ada, "user.update", str(nid)),
        (ada, "user.set_password", str(nid)),
        (ada, "user.new_token", str(nid)),
        (ada, "user.deactivate", str(nid)),
        (ada, "user.activate", str(nid)),
        (ada, "user.new_token", str(nid)),
        (ada, "user.revoke_tokens", str(nid)),
    ]


async def test_only_admins_and_refusals_write_nothing(site: Site) -> None:
    before = await row_counts(site.app)
    calls: list[tuple[str, str, Any]] = [
        ("GET", U, None),
        ("POST", U, {"name": "x", "role": "admin"}),
        ("GET", f"{U}/olga", None),
        ("PATCH", f"{U}/olga", {"role": "admin"}),
        ("POST", f"{U}/olga/password", {"password": "a new password"}),
        ("POST", f"{U}/ada/token", None),
        ("DELETE", f"{U}/ada/token", None),
    ]
    for method, path, body in calls:
        status, error = await site.call(method, path, user="olga", json=body)
        assert (status, error["error"]["code"]) == (403, "forbidden"), (method, path)
        assert (await site.call(method, path, json=body))[0] == 401
    refusals: list[tuple[str, str, Any, int, str]] = [
        ("GET", f"{U}/nobody", None, 404, "user 'nobody' does not exist"),
        ("POST", U, {"name": "olga", "role": "viewer"}, 409, "user 'olga' already exists"),
        ("POST", U, {"name": "x", "role": "boss"}, 422, "role: 'boss' is not one of admin, officer, reviewer, viewer."),
        ("POST", U, {"name": "x", "role": "viewer", "password": "short"}, 422, "password: shorter than 8 characters."),
        ("PATCH", f"{U}/ada", {"active": False}, 409, "user 'ada' cannot deactivate themselves"),
        ("PATCH", f"{U}/ada", {"role": "viewer"}, 409, "user 'ada' cannot change their own role"),
        ("PATCH", f"{U}/olga", {"telegram": "olga"}, 422, "telegram: not a numeric chat id or an @channel "
         "name (@, then 4-32 letters, digits or single underscores, starting with a letter and not ending with _)."),
        ("POST", f"{U}/ada/password", {"password": "a new password"}, 403, "current password: not right; "
         "give your current password to change it"),
    ]  # fmt: skip
    for method, path, body, code, message in refusals:
        status, error = await site.call(method, path, user="ada", json=body)
        assert (status, error["error"]["message"]) == (code, message), (method, path, body)
    assert await row_counts(site.app) == before


async def test_a_revoked_token_and_a_disabled_user_are_refused_by_another_process(
    site: Site, db_url: str
) -> None:
    async with open_app(site_settings(db_url), channels={}) as other_app:
        other = TestServer(make_web_app(other_app))
        await other.start_server()
        try:
            async with aiohttp.ClientSession() as http:

                async def elsewhere(user: str) -> int:
                    url = str(other.make_url("/api/v1/templates"))
                    async with http.get(url, headers=site.auth(user)) as r:
                        return r.status

                assert (await elsewhere("olga"), await elsewhere("vera")) == (200, 200)
                assert (await site.call("DELETE", f"{U}/olga/token", user="ada"))[0] == 200
                assert (await site.call("PATCH", f"{U}/vera", user="ada", json={"active": False}))[0] == 200
                assert (await elsewhere("olga"), await elsewhere("vera")) == (401, 401)
        finally:
            await other.close()


async def test_a_local_mailbox_the_document_offers_is_one_the_accounts_take(site: Site) -> None:
    """schemathesis ST202: the document offered ``.x@localhost`` as a user's email, which the
    accounts layer refused. Every form the pattern offers is taken; the others are refused by
    the document itself, naming the field."""
    taken = ("a.b@localhost", "x_%+-@LOCALHOST", "a" * 64 + "@localhost", "a.b.c@localhost")
    for i, email in enumerate(taken):
        body = {"name": f"local{i}", "role": "viewer", "email": email}
        status, doc = await site.call("POST", U, user="ada", json=body)
        assert status == 201, (email, doc)
    for i, email in enumerate((".x@localhost", "x.@localhost", "a..b@localhost", "a" * 65 + "@localhost")):
        body = {"name": f"refused{i}", "role": "viewer", "email": email}
        status, doc = await site.call("POST", U, user="ada", json=body)
        assert status == 422 and "email" in doc["error"]["message"], (email, doc)
        with pytest.raises(ValidationError):  # refused by the document, not only by the accounts
            check(email, USER_EMAIL, "email")
    for email in taken:
        check(email, USER_EMAIL, "email")
