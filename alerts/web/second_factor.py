"""The second step of sign-in: a correct password of a user with two-factor sign-in gives only a
short-lived ``ua_2fa`` cookie, never a session; a code on ``/login/2fa`` turns it into one.

The cookie holds ``[user id, user fingerprint, where to go next]``, signed with its own salt and
timed (``PENDING_MAX_AGE``): it grants nothing on any page (``auth.session_user`` reads only
the session cookie), and a new password or "sign out everywhere" voids it (the fingerprint,
as for sessions). Each code tried is counted into the sign-in limits of the account and the
client network (``alerts.accounts.signin_limits``) like a password, and a correct password does
not forget the account's earlier failures when a code is still due, so an attacker holding the
password cannot try codes beyond the limits by signing in again.
"""

from __future__ import annotations

import logging

from aiohttp import web
from itsdangerous import BadSignature

from alerts.accounts import signin_limits, users
from alerts.actions import two_factor
from alerts.core.clock import utcnow
from alerts.core.errors import AlertsError, Unauthorized
from alerts.core.signing import SECOND_STEP
from alerts.store.models import User
from alerts.web.auth import AUTH, user_value
from alerts.web.clients import client_address

logger = logging.getLogger(__name__)

PENDING_COOKIE = "ua_2fa"
PENDING_MAX_AGE = 5 * 60
PASSWORD_FIRST = "sign in with your name and password first (the code page is open for 5 minutes)"


def start(request: web.Request, response: web.StreamResponse, user: User, target: str) -> None:
    """Give the browser the half-signed-in cookie of ``user`` (going to ``target`` afterwards)."""
    state = request.app[AUTH]
    fingerprint = state.users.get_signature(user_value(user)).decode("ascii")
    value = state.signing.timed(SECOND_STEP).dumps([user.id, fingerprint, target])
    response.set_cookie(
        PENDING_COOKIE,
        value,
        httponly=True,
        samesite="Lax",
        path="/login",
        secure=state.secure,
        max_age=PENDING_MAX_AGE,
    )


def forget(response: web.StreamResponse) -> None:
    """Delete the half-signed-in cookie."""
    response.del_cookie(PENDING_COOKIE, path="/login")


def pending(request: web.Request) -> tuple[int, str, str] | None:
    """(user id, fingerprint, next) of the request's half-signed-in cookie, or None."""
    raw = request.cookies.get(PENDING_COOKIE)
    if not raw or len(raw) > 4096:
        return None
    try:
        payload = request.app[AUTH].signing.timed(SECOND_STEP).loads(raw, max_age=PENDING_MAX_AGE)
    except BadSignature:
        return None
    if (
        not isinstance(payload, list)
        or len(payload) != 3
        or not isinstance(payload[0], int)
        or isinstance(payload[0], bool)
        or not all(isinstance(v, str) for v in payload[1:])
    ):
        return None
    return payload[0], payload[1], payload[2]


async def attempt(request: web.Request, code: str) -> User:
    """Check the code of the half-signed-in user within the sign-in limits; the user.

    Raises Unauthorized (no or stale cookie, wrong or replayed code), TooManyAttempts or
    AccountLocked; a wrong code is counted as a failed sign-in.
    """
    from alerts.web.base import APP

    app = request.app[APP]
    found = pending(request)
    if found is None:
        raise Unauthorized(PASSWORD_FIRST)
    user_id, fingerprint, _ = found
    async with app.reads() as session:
        try:
            user = await users.get_user(session, user_id)
        except AlertsError:
            raise Unauthorized(PASSWORD_FIRST) from None
    if not user.active or not request.app[AUTH].users.verify_signature(user_value(user), fingerprint):
        raise Unauthorized(PASSWORD_FIRST)  # a new password, or signed out everywhere, since
    held = await signin_limits.reserve(app.sessions, user.name, client_address(request), now=utcnow())
    try:
        user = await two_factor.check_code(app, user.id, code)
    except BaseException:
        await signin_limits.failed(app.sessions, held, now=utcnow())
        logger.info("failed second sign-in step for user %d", user_id)
        raise
    await signin_limits.succeeded(app.sessions, held)
    return user
