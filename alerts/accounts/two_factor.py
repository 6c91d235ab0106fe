"""Two-factor sign-in: TOTP codes (RFC 6238, pyotp) and single-use recovery codes.

Enrolling stores a new secret in ``totp_pending`` and shows it (text and QR code); it becomes the
account's ``totp_secret`` only when a code computed from it is given back, so nobody is left
with a second factor they cannot produce. Enrolment also gives ``RECOVERY_CODES`` recovery codes,
shown once; only their SHA-256 is kept (they carry ~50 random bits, like API tokens need no slow
hash) and each is marked used when it is spent.

A TOTP code is accepted for its own 30-second step and one step either side (clock drift), and
only for a step later than the last one accepted: ``UPDATE … WHERE totp_last_step < :step``
changes a row only once, so the same code seen twice — a replay, or two requests at once —
is refused the second time, in every process. A recovery code is spent the same way
(``UPDATE … WHERE used_at IS NULL``). Functions add to the session and flush; the caller commits.
Secrets and codes are never logged nor audited.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import Conflict, Unauthorized
from alerts.core.msgids import N_
from alerts.core.states import Role
from alerts.store import audit
from alerts.store.models import RecoveryCode, User

logger = logging.getLogger(__name__)

ISSUER = "Urgent Alerts"
RECOVERY_CODES = 10
DRIFT_STEPS = 1  # steps accepted either side of the current one
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_CODE_LENGTH = 10  # 31**10: about 50 bits
BAD_CODE = N_("the code is not right, or was already used; enter a new code from your app or a recovery code")
#: The roles that must enrol when ``[server] require_2fa`` is on: those who can approve or administer.
MUST_ENROL = frozenset({Role.ADMIN, Role.REVIEWER})


def enrolled(user: User) -> bool:
    """Whether ``user`` signs in with a second factor."""
    return user.totp_secret is not None


def must_enrol(user: User, *, required: bool) -> bool:
    """Whether ``user`` has to enrol before doing anything (``required``: ``[server] require_2fa``)."""
    return required and user.role in MUST_ENROL and not enrolled(user)


def provisioning_uri(secret: str, name: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER)


def _normal(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _hash(user: User, code: str) -> str:
    return hashlib.sha256(f"{user.id}|{_normal(code)}".encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is (within the drift), or None."""
    totp = pyotp.TOTP(secret)
    if len(code) != totp.digits or not code.isascii() or not code.isdigit():
        return None
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def begin(session: AsyncSession, user: User) -> str:
    """The secret to show while enrolling (a new one unless one is already waiting)."""
    if enrolled(user):
        raise Conflict(f"user {user.name!r} already has two-factor sign-in; disable it first to enrol again")
    if user.totp_pending is None:
        user.totp_pending = pyotp.random_base32()
        await session.flush()
    return user.totp_pending


async def _audit(session: AsyncSession, user: User, action: str, *, by: User | None, now: datetime) -> None:
    await audit.record(
        session, user_id=by.id if by else None, action=action, object_type="user", object_id=user.id, now=now
    )


async def new_recovery_codes(session: AsyncSession, user: User) -> list[str]:
    """Replace ``user``'s recovery codes with ``RECOVERY_CODES`` new ones, returned this once."""
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(user, code)) for code in codes)
    await session.flush()
    return codes


async def confirm(session: AsyncSession, user: User, code: str, *, now: datetime) -> list[str]:
    """Finish enrolling with a code from the shown secret; the recovery codes (shown once).

    Unauthorized if the code does not match the secret being enrolled.
    """
    if enrolled(user):
        raise Conflict(f"user {user.name!r} already has two-factor sign-in")
    if user.totp_pending is None:
        raise Conflict.said(N_("no enrolment is under way: open the two-factor page to start one"))
    step = _matching_step(user.totp_pending, _normal(code), now)
    if step is None:
        raise Unauthorized.said(
            N_("the code does not match the secret shown; check the clock of your device and try again")
        )
    user.totp_secret, user.totp_pending, user.totp_last_step = user.totp_pending, None, step
    codes = await new_recovery_codes(session, user)
    await _audit(session, user, "user.2fa_enrol", by=user, now=now)
    logger.info("user %d enrolled a second factor", user.id)
    return codes


async def check_code(session: AsyncSession, user: User, code: str, *, now: datetime) -> str:
    """Accept a TOTP code (once) or a recovery code (spent); which kind it was: "totp" or "recovery".

    Unauthorized (``BAD_CODE``) for a wrong, reused or replayed code, or a user not enrolled.
    """
    code = _normal(code)
    secret = user.totp_secret
    if secret is None or not code or len(code) > 64:
        raise Unauthorized.said(BAD_CODE)
    step = _matching_step(secret, code, now)
    if step is not None:
        taken: CursorResult[tuple[()]] = await session.execute(  # type: ignore[assignment]
            update(User)
            .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
            .values(totp_last_step=step)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            logger.info("a replayed second-factor code was refused for user %d", user.id)
            raise Unauthorized.said(BAD_CODE)
        user.totp_last_step = step
        return "totp"
    spent: CursorResult[tuple[()]] = await session.execute(  # type: ignore[assignment]
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _hash(user, code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:
        raise Unauthorized.said(BAD_CODE)
    await _audit(session, user, "user.2fa_recovery_code_used", by=user, now=now)
    logger.info("user %d signed in with a recovery code", user.id)
    return "recovery"


async def codes_left(session: AsyncSession, user: User) -> int:
    """How many of ``user``'s recovery codes are still unused."""
    count = await session.scalar(
        select(func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


async def remove(session: AsyncSession, user: User, *, by: User | None, now: datetime, action: str) -> bool:
    """Take away ``user``'s second factor and recovery codes (``action``: the audit's word for
    why: disabled by themselves, or reset by an admin); whether there was one."""
    had = enrolled(user) or user.totp_pending is not None
    user.totp_secret = user.totp_pending = user.totp_last_step = None
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await session.flush()
    if had:
        await _audit(session, user, action, by=by, now=now)
        logger.info("second factor of user %d removed (%s)", user.id, action)
    return had


async def regenerate(session: AsyncSession, user: User, *, now: datetime) -> list[str]:
    """New recovery codes for an enrolled user (the old ones stop working)."""
    if not enrolled(user):
        raise Conflict(f"user {user.name!r} has no two-factor sign-in to make recovery codes for")
    codes = await new_recovery_codes(session, user)
    await _audit(session, user, "user.2fa_recovery_codes", by=user, now=now)
    return codes
