"""Accounts: add a user, set a password or a language, disable, enable, issue a token, revoke tokens, list.

Every face (CLI, JSON API, officers' pages) calls these and only these. The actor is the
signed-in ``User``, or None for the operator at the console (``alerts users …``), who holds
the database itself and may do anything an admin may; the audit log records None as "the
service itself". Managing accounts needs ``users.manage`` (admins); a user may change their
own password (giving the current one).

Disabling a user (which also revokes their token) or changing their password bumps their
session epoch, and revoking tokens clears the stored token hash: the web app reads the user
row on every request, so the old session or token is refused on the next request in every
process. Passwords and tokens are never logged nor audited; a new token is returned once, in the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts.accounts import signin_limits, users
from alerts.accounts.users import UNSET, Unset
from alerts.app import App
from alerts.core.clock import utcnow
from alerts.core.errors import PermissionDenied
from alerts.core.msgids import N_
from alerts.store import audit
from alerts.store.models import User

MANAGE = "users.manage"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A user as every face shows it: never a password or token, only whether one is set."""

    id: int
    name: str
    role: str
    email: str | None
    telegram: str | None
    active: bool
    has_password: bool
    has_token: bool
    token_read_only: bool
    two_factor: bool
    created_at: datetime
    language: str | None = None

    @classmethod
    def of(cls, user: User) -> Account:
        """The account view of a user row."""
        return cls(
            id=user.id,
            name=user.name,
            role=user.role,
            email=user.email,
            telegram=user.telegram,
            active=user.active,
            has_password=user.password_hash is not None,
            has_token=user.token_hash is not None,
            token_read_only=user.token_hash is not None and user.token_read_only,
            two_factor=user.totp_secret is not None,
            created_at=user.created_at,
            language=user.language,
        )

    def to_json(self) -> dict[str, Any]:
        """The account as the API and ``users list --json`` give it."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "email": self.email,
            "telegram": self.telegram,
            "active": self.active,
            "has_password": self.has_password,
            "has_token": self.has_token,
            "token_read_only": self.token_read_only,
            "two_factor": self.two_factor,
            "created_at": self.created_at.isoformat(),
            "language": self.language,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Added:
    """A new user; its API token (shown this once) when one was asked for."""

    account: Account
    token: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed:
    """A user after an action; ``changed`` False when it was already so (nothing written)."""

    account: Account
    changed: bool
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenIssued:
    """A new API token (shown this once); the user's previous token no longer works."""

    account: Account
    token: str
    replaced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensRevoked:
    """How many of the user's API tokens were revoked (0: it had none)."""

    account: Account
    revoked: int


def _require(actor: User | None, action: str = MANAGE) -> None:
    if actor is not None:
        users.check(actor, action)


async def list_accounts(app: App, actor: User | None) -> list[Account]:
    """Every user, by name."""
    _require(actor)
    async with app.reads() as session:
        return [Account.of(user) for user in await users.list_users(session)]


async def get(app: App, actor: User | None, name: str) -> Account:
    """One user (admins, or the user themselves)."""
    if actor is None or actor.name != name:
        _require(actor)
    async with app.reads() as session:
        return Account.of(await users.get_user(session, name))


async def add(
    app: App,
    actor: User | None,
    *,
    name: str,
    role: str,
    email: str | None = None,
    telegram: str | None = None,
    password: str | None = None,
    with_token: bool = False,
    read_only: bool = False,
) -> Added:
    """Add a user; without a password they cannot sign in until one is set (``read_only``:
    their API token may only read)."""
    _require(actor)
    async with app.sessions.begin() as session:
        user, token = await users.create_user(
            session,
            name=name,
            role=role,
            email=email or None,
            telegram=telegram or None,
            password=password,
            with_token=with_token,
            read_only=read_only,
            by=actor,
            now=utcnow(),
        )
        account = Account.of(user)
    return Added(account=account, token=token)


async def set_password(
    app: App, actor: User | None, name: str, password: str, *, current: str | None = None
) -> Changed:
    """Set a user's password; every session of theirs ends. Changing one's own password needs
    the current one (a stolen session or token cannot take the account over)."""
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        if actor is not None and actor.id == user.id:
            users.check(actor, "view")
            if current is None or not await users.password_matches(user, current):
                raise PermissionDenied.said(
                    N_("current password: not right; give your current password to change it")
                )
        else:
            _require(actor)
        await users.set_password(session, user, password, by=actor, now=utcnow())
        account = Account.of(user)
    return Changed(account=account, changed=True, fields=("password",))


async def set_language(app: App, actor: User | None, name: str, language: str | None) -> Changed:
    """Set the language of a user's pages (en, fr, es; None or "": the browser's). A user sets
    their own; setting another's needs ``users.manage``."""
    if actor is None or actor.name != name:
        _require(actor)
    else:
        users.check(actor, "view")
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        changed = await users.set_language(session, user, language, by=actor, now=utcnow())
        account = Account.of(user)
    return Changed(account=account, changed=changed, fields=("language",) if changed else ())


async def set_active(app: App, actor: User | None, name: str, *, active: bool) -> Changed:
    """Disable or enable a user. A disabled user's sessions end and their token is revoked, from
    the next request on; enabling brings neither back. The last active admin stays."""
    _require(actor)
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        changed = await users.set_active(session, user, active, by=actor, now=utcnow())
        account = Account.of(user)
    return Changed(account=account, changed=changed, fields=("active",) if changed else ())


async def disable(app: App, actor: User | None, name: str) -> Changed:
    """Disable a user (see ``set_active``)."""
    return await set_active(app, actor, name, active=False)


async def enable(app: App, actor: User | None, name: str) -> Changed:
    """Enable a user (see ``set_active``)."""
    return await set_active(app, actor, name, active=True)


async def update(
    app: App,
    actor: User | None,
    name: str,
    *,
    role: str | None = None,
    email: str | Unset | None = UNSET,
    telegram: str | Unset | None = UNSET,
    active: bool | None = None,
) -> Changed:
    """Change a user's role, email, Telegram chat and whether they are active, in one go."""
    _require(actor)
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        fields = await users.update_user(
            session, user, role=role, email=email, telegram=telegram, by=actor, now=utcnow()
        )
        if active is not None and await users.set_active(session, user, active, by=actor, now=utcnow()):
            fields.append("active")
        account = Account.of(user)
    return Changed(account=account, changed=bool(fields), fields=tuple(fields))


async def issue_token(app: App, actor: User | None, name: str, *, read_only: bool = False) -> TokenIssued:
    """A new API token for the user, shown this once; their previous token stops working.
    A ``read_only`` token may only read (GET): the API refuses it anything else (403)."""
    _require(actor)
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        replaced = user.token_hash is not None
        token = await users.new_token(session, user, read_only=read_only, by=actor, now=utcnow())
        account = Account.of(user)
    return TokenIssued(account=account, token=token, replaced=replaced)


async def revoke_tokens(app: App, actor: User | None, name: str) -> TokensRevoked:
    """Revoke all of the user's API tokens: refused from the next request on."""
    _require(actor)
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        revoked = await users.revoke_tokens(session, user, by=actor, now=utcnow())
        account = Account.of(user)
    return TokensRevoked(account=account, revoked=revoked)


async def locked_names(app: App, actor: User | None) -> set[str]:
    """The users whose sign-in is locked after too many failed attempts."""
    _require(actor)
    async with app.reads() as session:
        return await signin_limits.locked(session, [user.name for user in await users.list_users(session)])


async def unlock(app: App, actor: User | None, name: str) -> Changed:
    """Lift the sign-in lock of a user (and forget their failed attempts)."""
    _require(actor)
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        changed = await signin_limits.unlock(session, user.name)
        if changed:
            await audit.record(
                session, user_id=actor.id if actor else None, action="user.unlock", object_type="user",
                object_id=user.id, details=None, now=utcnow(),
            )  # fmt: skip
        account = Account.of(user)
    return Changed(account=account, changed=changed, fields=("locked",) if changed else ())


async def sign_out_everywhere(app: App, actor: User) -> Changed:
    """End every session of the actor, in every browser and process (this one too)."""
    users.check(actor, "view")
    async with app.sessions.begin() as session:
        user = await users.get_user(session, actor.id)
        users.end_sessions(user)
        await audit.record(
            session, user_id=user.id, action="user.sign_out_everywhere", object_type="user",
            object_id=user.id, details=None, now=utcnow(),
        )  # fmt: skip
        account = Account.of(user)
    return Changed(account=account, changed=True, fields=("sessions",))
