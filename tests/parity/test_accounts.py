"""Parity of the account actions: add, set a password, disable, enable, issue and revoke a token,
list — through the CLI, the API and the officers' pages, with the same end state (the user row,
the audit entry, and the target's old session or token refused on the next request)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from sqlalchemy import select

from alerts.accounts import users
from alerts.core.errors import Unauthorized
from alerts.store.models import AuditEntry, User
from tests.parity.conftest import Faces
from tests.web import Client

P = "/office"
FACES = ("cli", "api", "page")


async def _row(faces: Faces, name: str) -> dict[str, Any]:
    """What every face must agree on about a user (no id, no time, no secret)."""
    async with faces.app.sessions() as session:
        user = await users.get_user(session, name)
        return {
            "role": user.role,
            "email": user.email,
            "active": user.active,
            "has_password": user.password_hash is not None,
            "has_token": user.token_hash is not None,
            "session_epoch": user.session_epoch,
        }


async def _last_audit(faces: Faces, name: str) -> tuple[str, dict[str, Any] | None, int | None]:
    async with faces.app.sessions() as session:
        user = await users.get_user(session, name)
        entry = await session.scalar(
            select(AuditEntry)
            .where(AuditEntry.object_type == "user", AuditEntry.object_id == str(user.id))
            .order_by(AuditEntry.id.desc())
            .limit(1)
        )
        assert entry is not None
        return entry.action, entry.details, entry.user_id


async def _signs_in(faces: Faces, name: str, password: str) -> bool:
    async with faces.app.sessions() as session:
        try:
            await users.authenticate_password(session, name, password)
        except Unauthorized:
            return False
        return True


async def _token_works(faces: Faces, token: str) -> bool:
    status, _ = await faces.api(None, "GET", "/templates", headers={"Authorization": f"Bearer {token}"})
    assert status in (200, 401)
    return status == 200


async def _admin_page(faces: Faces) -> Client:
    page = await faces.page("admin")
    status, _ = await page.get(f"{P}/users")  # a fresh CSRF token
    assert status == 200
    return page


def _shown_token(text: str) -> str:
    match = re.search(r'<code id="token-value">([^<]+)</code>', text)
    assert match, "no token on the page"
    return html.unescape(match.group(1))


async def _do(faces: Faces, face: str, action: str, name: str, **kw: Any) -> str | None:
    """Run one account action through one face; the token it shows, if any."""
    admin = faces.user_ids["admin"]
    assert admin
    if face == "cli":
        args: dict[str, tuple[str, ...]] = {
            "add": ("add", name, "--role", kw.get("role", "viewer"), "--email", f"{name}@localhost",
                    "--password", kw.get("password", "")),
            "passwd": ("passwd", name, "--password-stdin"),
            "disable": ("disable", name),
            "enable": ("enable", name),
            "token": ("token", name),
            "revoke": ("token", name, "--revoke"),
        }  # fmt: skip
        stdin = (kw.get("password", "") + "\n").encode()
        run = await faces.cli("users", *args[action], stdin=stdin)
        assert run.code == 0, run
        return run.out.strip() or None
    if face == "api":
        calls: dict[str, tuple[str, str, Any]] = {
            "add": ("POST", "/users", {"name": name, "role": kw.get("role", "viewer"),
                                       "email": f"{name}@localhost", "password": kw.get("password")}),
            "passwd": ("POST", f"/users/{name}/password", {"password": kw.get("password")}),
            "disable": ("PATCH", f"/users/{name}", {"active": False}),
            "enable": ("PATCH", f"/users/{name}", {"active": True}),
            "token": ("POST", f"/users/{name}/token", None),
            "revoke": ("DELETE", f"/users/{name}/token", None),
        }  # fmt: skip
        method, path, body = calls[action]
        status, answer = await faces.api("admin", method, path, json=body)
        assert status in (200, 201), answer
        return answer.get("token") if isinstance(answer, dict) else None
    page = await _admin_page(faces)
    forms: dict[str, tuple[str, dict[str, str]]] = {
        "add": (f"{P}/users", {"name": name, "role": kw.get("role", "viewer"), "email": f"{name}@localhost",
                               "password": kw.get("password", "")}),
        "passwd": (f"{P}/users/{name}/password", {"password": kw.get("password", "")}),
        "disable": (f"{P}/users/{name}/disable", {}),
        "enable": (f"{P}/users/{name}/enable", {}),
        "token": (f"{P}/users/{name}/token", {}),
        "revoke": (f"{P}/users/{name}/token/revoke", {}),
    }  # fmt: skip
    path, form = forms[action]
    r = await page.post(path, form)
    assert r.status in (200, 303), (r.status, await r.text())
    return _shown_token(await r.text()) if action == "token" else None


async def test_add_and_set_a_password_through_every_face(faces: Faces) -> None:
    for face in FACES:
        name = f"new-{face}"
        await _do(faces, face, "add", name, role="reviewer", password=f"{face} first password")
        assert await _row(faces, name) == {
            "role": "reviewer", "email": f"{name}@localhost", "active": True, "has_password": True,
            "has_token": False, "session_epoch": 0,
        }  # fmt: skip
        action, details, _ = await _last_audit(faces, name)
        assert (action, details) == ("user.create", {"name": name, "role": "reviewer", "with_token": False})
        assert await _signs_in(faces, name, f"{face} first password")

    targets = {"cli": "officer", "api": "officer2", "page": "reviewer2"}
    for face, name in targets.items():
        session = await faces.page(name)
        assert (await session.get("/"))[0] == 200
        await _do(faces, face, "passwd", name, password=f"{face} second password")
        assert (await session.get("/"))[0] == 303  # that session ended on the next request
        assert await _signs_in(faces, name, f"{face} second password")
        assert not await _signs_in(faces, name, "correct horse battery")
        action, details, by = await _last_audit(faces, name)
        assert (action, details) == ("user.set_password", {"by_self": False})
        assert by == (None if face == "cli" else faces.user_ids["admin"])  # None: the console
    rows = [await _row(faces, name) | {"role": "-", "email": "-"} for name in targets.values()]
    assert rows[0] == rows[1] == rows[2]
    assert rows[0] == {
        "role": "-", "email": "-", "active": True, "has_password": True, "has_token": True,
        "session_epoch": 1,
    }  # fmt: skip


async def test_disable_enable_and_tokens_through_every_face(faces: Faces) -> None:
    targets = {"cli": "officer", "api": "officer2", "page": "reviewer2"}
    for face, name in targets.items():
        session, token = await faces.page(name), faces.tokens[name]
        assert (await session.get("/"))[0] == 200 and await _token_works(faces, token)
        await _do(faces, face, "disable", name)
        assert (await session.get("/"))[0] == 303  # refused on the next request
        assert not await _token_works(faces, token)
        assert await _last_audit(faces, name) == (
            "user.deactivate",
            {"token_revoked": True},
            None if face == "cli" else faces.user_ids["admin"],
        )
        await _do(faces, face, "enable", name)
        assert (await session.get("/"))[0] == 303  # enabling brings neither back
        assert not await _token_works(faces, token)
        assert (await _last_audit(faces, name))[:2] == ("user.activate", None)

        issued = await _do(faces, face, "token", name)
        assert issued and await _token_works(faces, issued)
        assert (await _last_audit(faces, name))[:2] == (
            "user.new_token",
            {"replaced": False, "read_only": False},
        )
        await _do(faces, face, "revoke", name)
        assert not await _token_works(faces, issued)
        assert (await _last_audit(faces, name))[:2] == ("user.revoke_tokens", {"revoked": 1})
        assert await _row(faces, name) | {"role": "-", "email": "-"} == {
            "role": "-", "email": "-", "active": True, "has_password": True, "has_token": False,
            "session_epoch": 1,
        }  # fmt: skip
    assert faces.smtp.messages() == [] and faces.bot_api.sent() == []  # accounts notify no one


async def test_the_list_is_the_same_through_cli_and_api(faces: Faces) -> None:
    run = await faces.cli("users", "list", "--json")
    assert run.code == 0, run
    status, body = await faces.api("admin", "GET", "/users")
    assert status == 200
    assert json.loads(run.out) == body["users"]
    async with faces.app.sessions() as session:
        names = sorted((await session.scalars(select(User.name))).all())
    assert [u["name"] for u in body["users"]] == names
    page = await _admin_page(faces)
    _, text = await page.get(f"{P}/users")
    assert all(f'<strong class="account-name">{name}</strong>' in text for name in names)
