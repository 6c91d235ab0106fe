"""Users: creation and validation, password and token sign-in, the role table, and the account
actions every face calls (``alerts.actions.accounts``)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import signin_limits
from alerts.accounts.users import (
    PERMISSIONS,
    authenticate_password,
    authenticate_token,
    check,
    create_user,
    get_user,
    new_token,
    set_active,
)
from alerts.actions import accounts
from alerts.app import App, open_app
from alerts.core.config import Settings
from alerts.core.errors import Conflict, NotFound, PermissionDenied, Unauthorized, ValidationError
from alerts.core.states import Role
from alerts.core.telegram import HINT as TELEGRAM_HINT
from alerts.store import audit
from alerts.store.models import AuditEntry, SignInLock, User

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _counts(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as s:
        users = await s.scalar(select(func.count()).select_from(User)) or 0
        entries = await s.scalar(select(func.count()).select_from(AuditEntry)) or 0
        return users, entries


async def test_create_user_with_token_stores_only_its_hash(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    user, token = await create_user(
        session, name=" olga ", role="officer", email="Olga@Example.org", with_token=True, now=NOW
    )
    await session.commit()
    assert token is not None and len(token) >= 43
    assert (user.name, user.role, user.active, user.created_at) == ("olga", "officer", True, NOW)
    async with sessions() as s:
        row = (await s.execute(select(User.__table__).where(User.id == user.id))).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row)  # the plaintext is nowhere in the row
    assert (await authenticate_token(session, token)).id == user.id

    [entry] = await audit.list_entries(session, object_type="user")
    assert (entry.action, entry.object_id, entry.at) == ("user.create", str(user.id), NOW)
    assert entry.details == {"name": "olga", "role": "officer", "with_token": True}
    assert "example" not in str(entry.details).lower()


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
async def test_wrong_token_is_refused(session: AsyncSession, token: str) -> None:
    await create_user(session, name="olga", role="officer", with_token=True, now=NOW)
    with pytest.raises(Unauthorized) as err:
        await authenticate_token(session, token)
    assert err.value.message == "invalid API token"


async def test_new_token_replaces_the_old_one_and_deactivated_users_are_refused(
    session: AsyncSession,
) -> None:
    admin, _ = await create_user(session, name="root", role="admin", now=NOW)
    user, old = await create_user(session, name="olga", role="officer", with_token=True, now=NOW)
    assert old is not None
    new = await new_token(session, user, now=NOW)
    assert new != old
    with pytest.raises(Unauthorized):
        await authenticate_token(session, old)
    assert (await authenticate_token(session, new)).id == user.id
    await set_active(session, user, False, by=admin, now=NOW)
    with pytest.raises(Unauthorized) as err:
        await authenticate_token(session, new)
    assert err.value.message == "invalid API token"


async def test_password_sign_in_gives_one_message_for_every_failure(session: AsyncSession) -> None:
    user, token = await create_user(session, name="olga", role="officer", password="correct horse", now=NOW)
    await create_user(session, name="nopass", role="viewer", now=NOW)
    assert token is None
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert (await authenticate_password(session, "olga", "correct horse")).id == user.id
    for name, password in [("olga", "wrong horse"), ("nobody", "correct horse"), ("nopass", "")]:
        with pytest.raises(Unauthorized) as err:
            await authenticate_password(session, name, password)
        assert err.value.message == "invalid user name or password"


async def test_password_with_old_parameters_is_rehashed_on_sign_in(session: AsyncSession) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("correct horse")
    user, _ = await create_user(session, name="olga", role="officer", now=NOW)
    user.password_hash = weak
    await session.flush()
    await authenticate_password(session, "olga", "correct horse")
    assert user.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(user.password_hash)
    assert (await authenticate_password(session, "olga", "correct horse")).id == user.id


async def test_duplicate_name_is_refused_and_nothing_written(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await create_user(session, name="olga", role="officer", now=NOW)
    await session.commit()
    with pytest.raises(Conflict) as err:
        await create_user(session, name="olga", role="admin", now=NOW)
    assert err.value.message == "user 'olga' already exists"
    await session.rollback()
    assert await _counts(sessions) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  "}, "user name: must not be empty"),
        ({"name": "x" * 101}, "user name: longer than 100 characters"),
        ({"name": "ol\nga"}, "user name: control character U+000A at position 3 is not allowed"),
        ({"name": "ol\u2066ga"}, "user name: control character U+2066 at position 3 is not allowed"),
        ({"role": "boss"}, "role: 'boss' is not a role; roles are admin, officer, reviewer, viewer"),
        ({"password": "short"}, "password: shorter than 8 characters"),
        ({"telegram": "olga"}, f"telegram: {TELEGRAM_HINT}."),
        ({"telegram": "@olga_"}, f"telegram: {TELEGRAM_HINT}."),
        ({"email": "olga-at-example.org"}, "email: An email address must have an @-sign."),
        (
            {"email": "ol ga@localhost"},
            "email: The email address contains invalid characters before the @-sign: SPACE.",
        ),
    ],
)
async def test_bad_user_fields_are_refused_and_nothing_written(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], fields: dict[str, str], message: str
) -> None:
    values = {"name": "olga", "role": "officer"} | fields
    with pytest.raises(ValidationError) as err:
        await create_user(session, now=NOW, **values)  # type: ignore[arg-type]
    assert err.value.message == message
    await session.rollback()
    assert await _counts(sessions) == (0, 0)


async def test_get_user_by_name_or_id(session: AsyncSession) -> None:
    user, _ = await create_user(session, name="olga", role="officer", telegram="@olga_hrd", now=NOW)
    assert (await get_user(session, "olga")).id == user.id
    assert (await get_user(session, user.id)).name == "olga"
    local, _ = await create_user(session, name="demo", role="viewer", email="demo@LocalHost", now=NOW)
    assert local.email == "demo@localhost"  # the local capture server's mailbox (demo)
    with pytest.raises(NotFound) as err:
        await get_user(session, "x")
    assert err.value.message == "user 'x' does not exist"
    with pytest.raises(NotFound) as err:
        await get_user(session, 999)
    assert err.value.message == "user 999 does not exist"


def test_permission_table_covers_every_action_and_role() -> None:
    assert set(PERMISSIONS) >= {
        "alert.create", "alert.edit", "alert.submit", "alert.approve", "alert.send", "alert.close",
        "alert.respond", "followup.manage", "contacts.import", "contacts.edit", "contacts.erase",
        "users.manage", "view",
    }  # fmt: skip
    assert PERMISSIONS["view"] == frozenset(Role)
    assert PERMISSIONS["alert.approve"] == {Role.ADMIN, Role.REVIEWER}
    assert PERMISSIONS["users.manage"] == {Role.ADMIN}
    assert all(Role.VIEWER not in roles for action, roles in PERMISSIONS.items() if action != "view")


@pytest.mark.parametrize(
    ("role", "action", "message"),
    [
        (
            "officer",
            "alert.approve",
            "user 'u' (officer) may not alert.approve; allowed roles: admin, reviewer",
        ),
        ("viewer", "alert.create", "user 'u' (viewer) may not alert.create; allowed roles: admin, officer"),
        ("reviewer", "alert.send", "user 'u' (reviewer) may not alert.send; allowed roles: admin, officer"),
        ("officer", "users.manage", "user 'u' (officer) may not users.manage; allowed roles: admin"),
    ],
)
def test_check_names_the_action_and_the_role(role: str, action: str, message: str) -> None:
    user = User(name="u", role=role, active=True)
    with pytest.raises(PermissionDenied) as err:
        check(user, action)
    assert err.value.message == message
    assert err.value.details == {"action": action, "role": role}


def test_check_refuses_deactivated_users_and_unknown_actions() -> None:
    check(User(name="root", role="admin", active=True), "users.manage")
    with pytest.raises(PermissionDenied) as err:
        check(User(name="root", role="admin", active=False), "view")
    assert err.value.message == "user 'root' is deactivated and may not view"
    with pytest.raises(ValueError, match="unknown action 'alert.fly'"):
        check(User(name="root", role="admin", active=True), "alert.fly")


async def test_set_active_needs_an_admin_other_than_oneself(session: AsyncSession) -> None:
    admin, _ = await create_user(session, name="root", role="admin", now=NOW)
    officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
    with pytest.raises(Conflict) as conflict:
        await set_active(session, admin, False, by=admin, now=NOW)
    assert conflict.value.message == "user 'root' cannot deactivate themselves"
    with pytest.raises(PermissionDenied):
        await set_active(session, admin, False, by=officer, now=NOW)
    assert admin.active


# --------------------------------------------------------------------------- the account actions


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async with open_app(Settings().replace("database", url=db_url), channels={}) as opened:
        yield opened


async def _staff(app: App) -> dict[str, User]:
    async with app.sessions.begin() as s:
        admin, _ = await create_user(s, name="root", role="admin", password="root password", now=NOW)
        officer, _ = await create_user(
            s, name="olga", role="officer", password="olga password", with_token=True, now=NOW
        )
    return {"root": admin, "olga": officer}


async def _audit(app: App) -> list[tuple[int | None, str, str | None, dict[str, Any] | None]]:
    async with app.sessions() as s:
        rows = await s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.user_id, e.action, e.object_id, e.details) for e in rows]


async def test_account_actions_do_the_work_audit_it_and_never_hold_a_secret(app: App) -> None:
    staff = await _staff(app)
    root = staff["root"]
    before = len(await _audit(app))
    added = await accounts.add(
        app, root, name="vera", role="viewer", email="Vera@Example.org", with_token=True
    )
    assert added.token is not None
    assert (added.account.name, added.account.role, added.account.has_password) == ("vera", "viewer", False)
    assert added.account.has_token and added.account.email == "Vera@example.org"
    vid = added.account.id
    done = await accounts.set_password(app, root, "vera", "vera password")
    assert done.account.has_password
    disabled = await accounts.disable(app, root, "vera")
    assert disabled.changed and not disabled.account.has_token  # disabling revokes the token
    assert not (await accounts.disable(app, root, "vera")).changed  # already: nothing written
    assert (await accounts.enable(app, root, "vera")).account.active
    issued = await accounts.issue_token(app, root, "vera")
    assert not issued.replaced and issued.token != added.token
    async with app.sessions() as s:
        with pytest.raises(Unauthorized):
            await authenticate_token(s, added.token)
        assert (await authenticate_token(s, issued.token)).name == "vera"
    assert (await accounts.issue_token(app, root, "vera")).replaced
    issued = await accounts.issue_token(app, root, "vera")
    revoked = await accounts.revoke_tokens(app, root, "vera")
    assert (revoked.revoked, revoked.account.has_token) == (1, False)
    assert (await accounts.revoke_tokens(app, root, "vera")).revoked == 0
    async with app.sessions() as s:
        with pytest.raises(Unauthorized):
            await authenticate_token(s, issued.token)
    changed = await accounts.update(app, root, "vera", role="officer", email=None, telegram="@vera_hrd")
    assert changed.fields == ("email", "role", "telegram")
    assert (changed.account.role, changed.account.email, changed.account.telegram) == (
        "officer", None, "@vera_hrd",
    )  # fmt: skip
    names = [a.name for a in await accounts.list_accounts(app, root)]
    assert names == ["olga", "root", "vera"]

    entries = (await _audit(app))[before:]
    assert [(user_id, action, object_id) for user_id, action, object_id, _ in entries] == [
        (root.id, "user.create", str(vid)),
        (root.id, "user.set_password", str(vid)),
        (root.id, "user.deactivate", str(vid)),
        (root.id, "user.activate", str(vid)),
        (root.id, "user.new_token", str(vid)),
        (root.id, "user.new_token", str(vid)),
        (root.id, "user.new_token", str(vid)),
        (root.id, "user.revoke_tokens", str(vid)),
        (root.id, "user.revoke_tokens", str(vid)),
        (root.id, "user.update", str(vid)),
    ]
    assert entries[-1][3] == {
        "role": {"from": "viewer", "to": "officer"}, "email_changed": True, "telegram_changed": True,
    }  # fmt: skip
    text = str(entries)
    for secret in (added.token, issued.token, "vera password", "example.org", "vera_hrd"):
        assert secret not in text


async def test_only_admins_manage_accounts_and_nothing_is_written_on_a_refusal(app: App) -> None:
    staff = await _staff(app)
    olga = staff["olga"]
    before = await _audit(app)
    for call in (
        accounts.list_accounts(app, olga),
        accounts.add(app, olga, name="x", role="admin"),
        accounts.disable(app, olga, "root"),
        accounts.enable(app, olga, "nobody"),  # refused before the name is looked up: no NotFound
        accounts.issue_token(app, olga, "olga"),
        accounts.revoke_tokens(app, olga, "root"),
        accounts.set_password(app, olga, "root", "a new password"),
        accounts.update(app, olga, "olga", role="admin"),
        accounts.get(app, olga, "root"),  # another user's account
    ):
        with pytest.raises(PermissionDenied):
            await call
    assert await _audit(app) == before
    assert (await accounts.get(app, olga, "olga")).name == "olga"  # but one's own, yes


async def test_changing_ones_own_password_needs_the_current_one(app: App) -> None:
    staff = await _staff(app)
    olga = staff["olga"]
    with pytest.raises(PermissionDenied) as err:
        await accounts.set_password(app, olga, "olga", "a new password", current="wrong password")
    assert "current password" in err.value.message
    with pytest.raises(PermissionDenied):
        await accounts.set_password(app, olga, "olga", "a new password")
    done = await accounts.set_password(app, olga, "olga", "a new password", current="olga password")
    assert done.changed
    async with app.sessions() as s:
        assert (await authenticate_password(s, "olga", "a new password")).id == olga.id
        [entry] = await audit.list_entries(s, object_type="user", limit=1)
    assert (entry.user_id, entry.action, entry.details) == (olga.id, "user.set_password", {"by_self": True})


async def test_the_last_active_admin_cannot_be_disabled_or_demoted_nor_disable_themselves(app: App) -> None:
    staff = await _staff(app)
    root = staff["root"]
    for call in (
        accounts.disable(app, None, "root"),
        accounts.update(app, None, "root", role="officer"),
        accounts.update(app, None, "root", active=False),
    ):
        with pytest.raises(Conflict) as err:
            await call
        assert err.value.message == "user 'root' is the last active admin"
    await accounts.add(app, None, name="ada", role="admin", password="ada password")
    with pytest.raises(Conflict) as err:
        await accounts.disable(app, root, "root")
    assert err.value.message == "user 'root' cannot deactivate themselves"
    assert (await accounts.disable(app, None, "root")).changed  # the console may; ada is left
    async with app.sessions() as s:
        assert (await get_user(s, "root")).active is False
        [entry] = await audit.list_entries(s, object_type="user", limit=1)
    assert (entry.user_id, entry.action) == (None, "user.deactivate")  # None: the console


async def test_disabling_and_a_new_password_bump_the_session_epoch(app: App) -> None:
    await _staff(app)
    epoch = {}
    for step in ("start", "disable", "enable", "password"):
        if step == "disable":
            await accounts.disable(app, None, "olga")
        elif step == "enable":
            await accounts.enable(app, None, "olga")
        elif step == "password":
            await accounts.set_password(app, None, "olga", "another password")
        async with app.sessions() as s:
            epoch[step] = (await get_user(s, "olga")).session_epoch
    assert epoch == {"start": 0, "disable": 1, "enable": 1, "password": 2}


async def test_unlock_and_signing_out_everywhere_say_what_changed_and_audit_who_did_it(app: App) -> None:
    staff = await _staff(app)
    root, olga = staff["root"], staff["olga"]
    async with app.sessions.begin() as s:
        s.add(SignInLock(key=signin_limits.account_key("olga"), locked_at=NOW))
    before = len(await _audit(app))
    unlocked = await accounts.unlock(app, root, "olga")
    assert (unlocked.changed, unlocked.fields) == (True, ("locked",))
    again = await accounts.unlock(app, root, "olga")  # not locked any more: nothing written
    assert (again.changed, again.fields) == (False, ())
    ended = await accounts.sign_out_everywhere(app, olga)
    assert (ended.account.name, ended.changed, ended.fields) == ("olga", True, ("sessions",))
    entries = (await _audit(app))[before:]
    assert [(user_id, action, object_id) for user_id, action, object_id, _ in entries] == [
        (root.id, "user.unlock", str(olga.id)),
        (olga.id, "user.sign_out_everywhere", str(olga.id)),
    ]


async def test_a_language_or_activity_change_names_its_field_and_a_repeated_one_none(app: App) -> None:
    staff = await _staff(app)
    root = staff["root"]
    assert [
        (done.changed, done.fields, done.account.language, done.account.active)
        for done in [
            await accounts.set_language(app, root, "olga", "fr"),
            await accounts.set_language(app, root, "olga", "fr"),  # already: nothing written
            await accounts.disable(app, root, "olga"),
            await accounts.disable(app, root, "olga"),
            await accounts.enable(app, root, "olga"),
        ]
    ] == [
        (True, ("language",), "fr", True),
        (False, (), "fr", True),
        (True, ("active",), "fr", False),
        (False, (), "fr", False),
        (True, ("active",), "fr", True),
    ]


async def test_adding_an_account_with_a_telegram_handle_keeps_it(app: App) -> None:
    root = (await _staff(app))["root"]
    added = await accounts.add(app, root, name="vera", role="viewer", telegram="@vera_hrd")
    assert added.account.telegram == "@vera_hrd"
    listed = {a.name: a.telegram for a in await accounts.list_accounts(app, root)}
    assert listed["vera"] == "@vera_hrd"
