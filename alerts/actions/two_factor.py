"""Two-factor sign-in, as every face does it: enrol, confirm, new recovery codes, disable, and an
admin's reset of a lost second factor (``alerts users 2fa-reset NAME``, the users page).

Enrolling, new recovery codes and disabling concern the actor's own account. New codes and
disabling need proof that the person at the keyboard holds the account — their password or a
current code (``proof``) — so a session left open cannot be used to strip the second factor; a
wrong proof counts into the sign-in limits, like a wrong password.
With ``[server] require_2fa`` a reviewer or admin cannot disable theirs (an admin resets it,
and they enrol again at their next sign-in). A reset ends every session of the user.
The code check at sign-in is ``check_code``: the web's second step counts its failures into the
sign-in limits. Every change is audited, never a secret or code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts import signin_limits, two_factor, users
from alerts.app import App
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, PermissionDenied, Unauthorized
from alerts.core.msgids import N_
from alerts.store.models import User

T = TypeVar("T")
BAD_PROOF = N_("give your password or a current code from your app to change two-factor sign-in")


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """Where the actor's two-factor sign-in stands."""

    enrolled: bool
    required: bool  # [server] require_2fa holds for their role
    codes_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """A secret being enrolled: shown as text and as the ``otpauth://`` URI (the QR code)."""

    secret: str
    uri: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryCodes:
    """Recovery codes, shown this once."""

    codes: tuple[str, ...]


def required(app: App, user: User) -> bool:
    """Whether [server] require_2fa makes ``user``'s role enrol."""
    return app.settings.server.require_2fa and user.role in two_factor.MUST_ENROL


def must_enrol(app: App, user: User) -> bool:
    """Whether ``user`` must enrol before anything else (``[server] require_2fa``)."""
    return two_factor.must_enrol(user, required=app.settings.server.require_2fa)


async def status(app: App, actor: User) -> Status:
    """The actor's two-factor state."""
    users.check(actor, "view")
    async with app.reads() as session:
        user = await users.get_user(session, actor.id)
        left = await two_factor.codes_left(session, user)
        return Status(enrolled=two_factor.enrolled(user), required=required(app, user), codes_left=left)


async def begin(app: App, actor: User) -> Enrolment:
    """Start (or go on with) the actor's enrolment: the secret to put in an authenticator app."""
    users.check(actor, "view")
    async with app.sessions.begin() as session:
        user = await users.get_user(session, actor.id)
        secret = await two_factor.begin(session, user)
        return Enrolment(secret=secret, uri=two_factor.provisioning_uri(secret, user.name))


async def confirm(app: App, actor: User, code: str) -> RecoveryCodes:
    """Finish the actor's enrolment with a code from the secret shown; the recovery codes."""
    users.check(actor, "view")
    async with app.sessions.begin() as session:
        user = await users.get_user(session, actor.id)
        codes = await two_factor.confirm(session, user, code, now=utcnow())
    return RecoveryCodes(codes=tuple(codes))


async def _prove(user: User, proof: str, session: AsyncSession) -> None:
    if await users.password_matches(user, proof):
        return
    try:
        await two_factor.check_code(session, user, proof, now=utcnow())
    except Unauthorized:
        raise PermissionDenied.said(BAD_PROOF) from None


async def _limited(app: App, actor: User, address: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` (which checks a proof) within the sign-in limits of the actor's account at
    ``address``: a wrong proof counts as a failed sign-in, so a session left open cannot be used
    to guess the password or a code."""
    held = await signin_limits.reserve(app.sessions, actor.name, address, now=utcnow())
    try:
        done = await work()
    except PermissionDenied:
        await signin_limits.failed(app.sessions, held, now=utcnow())
        raise
    except BaseException:
        await signin_limits.passed(app.sessions, held)
        raise
    await signin_limits.passed(app.sessions, held)
    return done


async def regenerate(app: App, actor: User, proof: str, *, address: str) -> RecoveryCodes:
    """New recovery codes for the actor (the old ones stop working); needs ``proof``, tried
    from ``address`` (the sign-in limits count a wrong one)."""
    users.check(actor, "view")

    async def work() -> RecoveryCodes:
        async with app.sessions.begin() as session:
            user = await users.get_user(session, actor.id)
            if not two_factor.enrolled(user):
                raise Conflict.said(N_("two-factor sign-in is not on: enrol first"))
            await _prove(user, proof, session)
            codes = await two_factor.regenerate(session, user, now=utcnow())
        return RecoveryCodes(codes=tuple(codes))

    return await _limited(app, actor, address, work)


async def disable(app: App, actor: User, proof: str, *, address: str) -> bool:
    """Turn off the actor's second factor; needs ``proof``, tried from ``address`` (the sign-in
    limits count a wrong one). Whether it was on."""
    users.check(actor, "view")

    async def work() -> bool:
        async with app.sessions.begin() as session:
            user = await users.get_user(session, actor.id)
            if not two_factor.enrolled(user):
                return False
            if required(app, user):
                raise Conflict.said(
                    N_(
                        "two-factor sign-in is required for the %(role)s role ([server] require_2fa); "
                        "it cannot be turned off, an admin can reset it if you lost your device"
                    ),
                    role=user.role,
                )
            await _prove(user, proof, session)
            return await two_factor.remove(session, user, by=actor, now=utcnow(), action="user.2fa_disable")

    return await _limited(app, actor, address, work)


async def reset(app: App, actor: User | None, name: str) -> bool:
    """An admin (or the console, ``actor`` None) removes a user's lost second factor and ends
    their sessions; they sign in with their password and enrol again. Whether one was set."""
    if actor is not None:
        users.check(actor, "users.manage")
    async with app.sessions.begin() as session:
        user = await users.get_user(session, name)
        had = await two_factor.remove(session, user, by=actor, now=utcnow(), action="user.2fa_reset")
        if had:
            users.end_sessions(user)
            await session.flush()
    return had


async def check_code(app: App, user_id: int, code: str) -> User:
    """The second step of sign-in: the active user, once ``code`` is accepted (Unauthorized
    otherwise; the caller counts the failure into the sign-in limits)."""
    async with app.sessions.begin() as session:
        user = await users.get_user(session, user_id)
        if not user.active:
            raise Unauthorized.said(two_factor.BAD_CODE)
        await two_factor.check_code(session, user, code, now=utcnow())
    return user
