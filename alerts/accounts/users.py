"""Users, roles, password hashes and API tokens.

Passwords are hashed with Argon2id (argon2-cffi). API tokens are 32 random bytes
(urlsafe base64): they carry enough entropy that a fast hash is right, so only their SHA-256
is stored, the plaintext is shown once; a token may be read-only (``token_read_only``: the API
lets it GET only). Functions add to the session and flush; the caller commits (so a change
and its audit entry land in one transaction).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
from datetime import datetime
from enum import Enum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import Conflict, NotFound, PermissionDenied, Unauthorized, ValidationError
from alerts.core.states import Role
from alerts.core.telegram import check_address
from alerts.core.text import check_line
from alerts.store import audit
from alerts.store.models import User

logger = logging.getLogger(__name__)


class Unset(Enum):
    """A field not given (as opposed to None: cleared)."""

    UNSET = "unset"


UNSET = Unset.UNSET

_HASHER = PasswordHasher()  # Argon2id with the library's current recommended parameters
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # hashing cost grows with length; refuse absurd inputs
MAX_NAME = 100
BAD_CREDENTIALS = "invalid user name or password"
BAD_TOKEN = "invalid API token"

_ALL = frozenset(Role)
_WRITERS = frozenset({Role.ADMIN, Role.OFFICER})
_REVIEWERS = frozenset({Role.ADMIN, Role.REVIEWER})
_ADMINS = frozenset({Role.ADMIN})

#: Which roles may do what. The one place roles are decided.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "alert.create": _WRITERS,
    "alert.edit": _WRITERS,
    "alert.submit": _WRITERS,
    "alert.consent": _WRITERS | _REVIEWERS,
    "alert.approve": _REVIEWERS,
    "alert.send": _WRITERS,
    "alert.close": _WRITERS,
    "alert.respond": _WRITERS,
    "followup.manage": _WRITERS,
    "contacts.import": _WRITERS,
    "contacts.edit": _WRITERS,
    "contacts.erase": _ADMINS,
    "users.manage": _ADMINS,
    "view": _ALL,
}


def check(user: User, action: str) -> None:
    """Raise PermissionDenied unless ``user`` is active and its role may do ``action``."""
    allowed = PERMISSIONS.get(action)
    if allowed is None:
        raise ValueError(f"unknown action {action!r}")  # a programming error
    if not user.active:
        raise PermissionDenied(f"user {user.name!r} is deactivated and may not {action}")
    if user.role not in allowed:
        roles = ", ".join(sorted(allowed))
        raise PermissionDenied(
            f"user {user.name!r} ({user.role}) may not {action}; allowed roles: {roles}",
            details={"action": action, "role": user.role},
        )


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (CPU-bound: call through asyncio.to_thread in a server)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises for a bad hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    """The stored form of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    # Verified against for unknown users, so that a wrong name costs as much as a wrong password.
    return hash_password(secrets.token_urlsafe(16))


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationError("user name: must not be empty")
    if len(name) > MAX_NAME:
        raise ValidationError(f"user name: longer than {MAX_NAME} characters")
    return check_line(name, "user name")


def _validate_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValidationError(f"role: {role!r} is not a role; roles are {roles}") from None


def _validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password: shorter than {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"password: longer than {MAX_PASSWORD} characters")
    return password


def _validate_email(email: str) -> str:
    local, _, domain = email.strip().rpartition("@")
    # A mailbox on the local capture server (the demo, embedded defaults) is a fine staff address.
    local_only = domain.lower() == "localhost"
    try:
        checked = validate_email(f"{local}@example.org" if local_only else email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"email: {exc}") from None
    return f"{checked.local_part}@localhost" if local_only else checked.normalized


def _validate_telegram(telegram: str) -> str:
    return check_address(telegram)


async def create_user(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    email: str | None = None,
    telegram: str | None = None,
    password: str | None = None,
    with_token: bool = False,
    read_only: bool = False,
    by: User | None = None,
    now: datetime,
) -> tuple[User, str | None]:
    """Add a user; returns it and, with ``with_token``, its API token (shown only this once;
    ``read_only``: it may only read)."""
    name = _validate_name(name)
    checked_role = _validate_role(role)
    email = _validate_email(email) if email else None
    telegram = _validate_telegram(telegram) if telegram else None
    password_hash = None
    if password is not None:
        password_hash = await asyncio.to_thread(hash_password, _validate_password(password))
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    token = secrets.token_urlsafe(32) if with_token else None
    user = User(
        name=name,
        role=checked_role.value,
        email=email,
        telegram=telegram,
        password_hash=password_hash,
        token_hash=hash_token(token) if token else None,
        token_read_only=bool(token) and read_only,
        active=True,
        created_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # created concurrently since the check above; the caller rolls back
        raise Conflict(f"user {name!r} already exists") from None
    details = {"name": name, "role": checked_role.value, "with_token": with_token}
    if token and read_only:
        details["read_only"] = True
    await _audit(session, user, "user.create", by=by, now=now, details=details)
    logger.info("created user %d with role %s", user.id, checked_role.value)
    return user, token


async def get_user(session: AsyncSession, name_or_id: str | int) -> User:
    """The user with this id (int) or name (str); NotFound otherwise."""
    if isinstance(name_or_id, int):
        user = await session.get(User, name_or_id)
        if user is None:
            raise NotFound(f"user {name_or_id} does not exist")
        return user
    user = await session.scalar(select(User).where(User.name == name_or_id.strip()))
    if user is None:
        raise NotFound(f"user {name_or_id!r} does not exist")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by name."""
    return list((await session.scalars(select(User).order_by(User.name))).all())


async def authenticate_password(session: AsyncSession, name: str, password: str) -> User:
    """The active user with this name and password; Unauthorized (one message for every failure)."""
    user = await session.scalar(select(User).where(User.name == name.strip()))
    stored = user.password_hash if user is not None and user.password_hash else None
    ok = await asyncio.to_thread(verify_password, stored or _dummy_hash(), password)
    if user is None or stored is None or not ok or not user.active:
        raise Unauthorized(BAD_CREDENTIALS)
    if _HASHER.check_needs_rehash(stored):
        user.password_hash = await asyncio.to_thread(hash_password, password)
        await session.flush()
    return user


async def _audit(
    session: AsyncSession, user: User, action: str, *, by: User | None, now: datetime, details: Any = None
) -> None:
    """The audit entry of an account change (``by`` None: the console, or the service)."""
    await audit.record(
        session, user_id=by.id if by else None, action=action, object_type="user", object_id=user.id,
        details=details, now=now,
    )  # fmt: skip


async def password_matches(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s current password (False when they have none)."""
    if not user.password_hash:
        return False
    return await asyncio.to_thread(verify_password, user.password_hash, password)


async def authenticate_token(session: AsyncSession, token: str) -> User:
    """The active user holding this API token; Unauthorized otherwise."""
    if not token:
        raise Unauthorized(BAD_TOKEN)
    user = await session.scalar(select(User).where(User.token_hash == hash_token(token)))
    if user is None or not user.active:
        raise Unauthorized(BAD_TOKEN)
    return user


async def new_token(
    session: AsyncSession, user: User, *, read_only: bool = False, by: User | None = None, now: datetime
) -> str:
    """Give ``user`` a new API token (the old one stops working; ``read_only``: it may only
    read, GET); returns it, shown only once."""
    token = secrets.token_urlsafe(32)
    replaced = user.token_hash is not None
    user.token_hash = hash_token(token)
    user.token_read_only = read_only
    await session.flush()
    details = {"replaced": replaced, "read_only": read_only}
    await _audit(session, user, "user.new_token", by=by, now=now, details=details)
    logger.info("issued a new API token to user %d", user.id)
    return token


async def revoke_tokens(session: AsyncSession, user: User, *, by: User | None = None, now: datetime) -> int:
    """Revoke every API token of ``user`` (a user holds at most one); how many were revoked."""
    revoked = 1 if user.token_hash is not None else 0
    user.token_hash = None
    await session.flush()
    await _audit(session, user, "user.revoke_tokens", by=by, now=now, details={"revoked": revoked})
    logger.info("revoked %d API token(s) of user %d", revoked, user.id)
    return revoked


async def set_password(
    session: AsyncSession, user: User, password: str, *, by: User | None = None, now: datetime
) -> None:
    """Replace ``user``'s password; every session of the user ends (``end_sessions``)."""
    user.password_hash = await asyncio.to_thread(hash_password, _validate_password(password))
    end_sessions(user)
    await session.flush()
    by_self = by is not None and by.id == user.id
    await _audit(session, user, "user.set_password", by=by, now=now, details={"by_self": by_self})
    logger.info("password of user %d changed", user.id)


def end_sessions(user: User) -> None:
    """End every session of ``user`` in every process: session cookies carry the epoch."""
    user.session_epoch = (user.session_epoch or 0) + 1


async def _require_other_admin(session: AsyncSession, user: User) -> None:
    """Conflict if ``user`` is the last active admin (no one could manage accounts any more)."""
    if user.role != Role.ADMIN or not user.active:
        return
    # locked so that two admins disabling each other at once cannot both succeed (PostgreSQL)
    admins = (
        await session.scalars(
            select(User.id).where(User.role == Role.ADMIN.value, User.active.is_(True)).with_for_update()
        )
    ).all()
    if not set(admins) - {user.id}:
        raise Conflict(f"user {user.name!r} is the last active admin", details={"user": user.name})


async def set_active(
    session: AsyncSession, user: User, active: bool, *, by: User | None, now: datetime
) -> bool:
    """Disable (or enable) a user: a disabled user can neither sign in nor act; their sessions
    end and their API token is revoked for good (enabling brings neither back: a cookie or token
    that leaked stays dead). ``by`` None: the operator at the console. Whether anything changed."""
    if by is not None:
        check(by, "users.manage")
        if by.id == user.id and not active:
            raise Conflict(f"user {user.name!r} cannot deactivate themselves")
    if user.active == active:
        return False
    details = None
    if not active:
        await _require_other_admin(session, user)
        end_sessions(user)
        details = {"token_revoked": user.token_hash is not None}
        user.token_hash = None
    user.active = active
    await session.flush()
    action = "user.activate" if active else "user.deactivate"
    await _audit(session, user, action, by=by, now=now, details=details)
    logger.info("user %d %s", user.id, "enabled" if active else "disabled")
    return True


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    role: str | None = None,
    email: str | Unset | None = UNSET,
    telegram: str | Unset | None = UNSET,
    by: User | None,
    now: datetime,
) -> list[str]:
    """Change a user's role, email or Telegram chat (None or "" clears them); the fields changed."""
    changed: dict[str, object] = {}
    if role is not None:
        new_role = _validate_role(role).value
        if new_role != user.role:
            if by is not None and by.id == user.id:
                raise Conflict(f"user {user.name!r} cannot change their own role")
            await _require_other_admin(session, user)
            changed["role"] = {"from": user.role, "to": new_role}
            user.role = new_role
    if not isinstance(email, Unset):
        value = _validate_email(email) if email else None
        if value != user.email:
            changed["email_changed"] = True
            user.email = value
    if not isinstance(telegram, Unset):
        value = _validate_telegram(telegram) if telegram else None
        if value != user.telegram:
            changed["telegram_changed"] = True
            user.telegram = value
    if changed:
        await session.flush()
        await _audit(session, user, "user.update", by=by, now=now, details=changed)
    return sorted(key.removesuffix("_changed") for key in changed)
