"""Users: creation and validation, password and token sign-in, the role table."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from alerts.core.errors import Conflict, NotFound, PermissionDenied, Unauthorized, ValidationError
from alerts.core.states import Role
from alerts.core.telegram import HINT as TELEGRAM_HINT
from alerts.store import audit
from alerts.store.models import AuditEntry, User

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
