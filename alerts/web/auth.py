"""Officers' sign-in: signed session cookies, CSRF tokens, login rate limits, role checks.

There is no session table: a session is a cookie holding ``[user id, issued, nonce,
fingerprint]`` signed by ``alerts.core.signing`` (its own salt; the current key signs, old keys
in ``[server] old_secret_keys`` still verify, so a key rotation signs nobody out). It expires
``SESSION_MAX_AGE`` after sign-in and stops working when the user's password changes, the user
is disabled or signs out everywhere (the fingerprint is a signature of the stored hash and of the
user's session epoch, which those bump: enabling the user again does not revive an old
session). ``/logout`` writes the nonce to ``revoked_sessions`` until the cookie would have
expired anyway. The user row and the revocation are read on every request, so all this holds on
the next request in every process, and after a restart.

CSRF tokens are a signature of the session nonce (or, before sign-in, of a random ``ua_pre`` cookie):
every form carries one and every state-changing request of the officers' pages checks it.
Sign-in limits (per account at a client network, per network, per account from anywhere, and
the account lock) are kept in the database: ``alerts.accounts.signin_limits``. A refused
attempt gets 429 and ``Retry-After`` (or 423 when locked) before any password is checked. The
message for an unknown user and a wrong password is the same. A user with two-factor sign-in
gets no session from the password alone: ``alerts.web.second_factor`` asks for the code.

The client address is ``alerts.web.clients.client_address``: the peer's, unless the peer is
one of ``[server] trusted_proxies``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, Signer, URLSafeSerializer
from multidict import MultiDictProxy
from sqlalchemy import delete, exists, select

from alerts.accounts import signin_limits, two_factor, users
from alerts.core.clock import utcnow
from alerts.core.errors import PermissionDenied
from alerts.core.signing import CSRF, SESSION, USER, Signing
from alerts.store.models import RevokedSession, User
from alerts.web.clients import client_address

logger = logging.getLogger(__name__)

SESSION_COOKIE = "ua_session"
PRE_COOKIE = "ua_pre"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE = 8 * 3600
LOGIN_LIMIT = signin_limits.ACCOUNT_NETWORK_LIMIT
ADDRESS_LIMIT = signin_limits.NETWORK_LIMIT
LOGIN_WINDOW = signin_limits.WINDOW
DEFAULT_SECRET = "change-me-in-production"
BAD_CSRF = "the form's security token is missing or invalid; reload the page and try again"
TooManyAttempts = signin_limits.TooManyAttempts
AccountLocked = signin_limits.AccountLocked


class CsrfRefused(PermissionDenied):
    """A state-changing request without a valid CSRF token."""

    code = "csrf_failed"


@dataclass
class AuthState:
    """Per-process sign-in state: the session signers and whether cookies are Secure."""

    signing: Signing
    secure: bool
    sessions: URLSafeSerializer = field(init=False)
    users: Signer = field(init=False)
    csrf: Signer = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = self.signing.serializer(SESSION)
        self.users = self.signing.signer(USER)
        self.csrf = self.signing.signer(CSRF)


AUTH = web.AppKey("auth", AuthState)


@dataclass
class Visitor:
    """What this request knows about its visitor (cached on the request)."""

    signed: tuple[User, Session] | None = None
    pre: str | None = None  # a pre-sign-in cookie minted on this request


VISITOR = web.RequestKey("ua_visitor", Visitor)


def visitor(request: web.Request) -> Visitor:
    """The request's visitor record (created empty on first use)."""
    found = request.get(VISITOR)
    if found is None:
        found = request[VISITOR] = Visitor()
    return found


@dataclass(frozen=True, slots=True)
class Session:
    """A verified session cookie."""

    user_id: int
    issued: int
    nonce: str


def make_state(secret_key: str, public_url: str, *, old_keys: Sequence[str] = ()) -> AuthState:
    """The sign-in state for a web app; a random key when the secret is the shipped default."""
    if not secret_key or secret_key == DEFAULT_SECRET:
        # Anyone can read the default in the source: never sign sessions with it.
        logger.warning(
            "[server] secret_key is not set: sessions are signed with a random key and "
            "end when the service restarts"
        )
        secret_key, old_keys = secrets.token_urlsafe(32), ()
    return AuthState(signing=Signing(secret_key, old_keys), secure=public_url.lower().startswith("https://"))


def user_value(user: User) -> str:
    """What a session is bound to: the user, its password hash and session epoch."""
    # A new password or a new epoch (disabled, or signed out everywhere) ends the sessions;
    # the user row is read on every request, so every process sees it on the next request.
    return f"{user.id}|{user.password_hash or ''}|{user.session_epoch or 0}"


def issue(state: AuthState, user: User, *, now: float | None = None) -> str:
    """A signed session cookie value for ``user``."""
    issued = int(time.time() if now is None else now)
    fingerprint = state.users.get_signature(user_value(user)).decode("ascii")
    return state.sessions.dumps([user.id, issued, secrets.token_urlsafe(16), fingerprint])


def parse(state: AuthState, value: str, *, now: float | None = None) -> tuple[Session, str] | None:
    """The session and user fingerprint in a cookie value, or None if forged or expired."""
    if len(value) > 4096:
        return None
    try:
        payload = state.sessions.loads(value)
    except BadSignature:
        return None
    if (
        not isinstance(payload, list)
        or len(payload) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload[:2])
        or not all(isinstance(v, str) for v in payload[2:])
    ):
        return None
    uid, issued, nonce, fingerprint = payload
    age = (time.time() if now is None else now) - issued
    if not 0 <= age <= SESSION_MAX_AGE:
        return None
    return Session(user_id=uid, issued=issued, nonce=nonce), fingerprint


async def session_user(request: web.Request) -> tuple[User, Session] | None:
    """The signed-in, active user of this request (cached on the request)."""
    if VISITOR in request:
        return request[VISITOR].signed
    found = await _verify(request)
    visitor(request).signed = found
    return found


async def still_signed_in(request: web.Request) -> bool:
    """Whether the request's session still holds, read again now: for a response that lasts
    (the live event stream), so that disabling the user, a new password or signing out ends it."""
    return await _verify(request) is not None


async def _verify(request: web.Request) -> tuple[User, Session] | None:
    from alerts.web.base import APP

    found: tuple[User, Session] | None = None
    state = request.app[AUTH]
    raw = request.cookies.get(SESSION_COOKIE)
    parsed = parse(state, raw) if raw else None
    if parsed is not None:
        session, fingerprint = parsed
        revoked = exists().where(RevokedSession.nonce == session.nonce)
        async with request.app[APP].reads() as db:  # one round trip: it starts every page and call
            user = await db.scalar(select(User).where(User.id == session.user_id, ~revoked))
        if user is not None and user.active and state.users.verify_signature(user_value(user), fingerprint):
            found = (user, session)
    return found


def csrf_token(request: web.Request) -> str:
    """The CSRF token for forms on this request's page."""
    state = request.app[AUTH]
    seen = visitor(request)
    if seen.signed:
        return state.csrf.get_signature(f"session|{seen.signed[1].nonce}").decode("ascii")
    pre = seen.pre or request.cookies.get(PRE_COOKIE)
    if not pre:
        pre = seen.pre = secrets.token_urlsafe(16)
    return state.csrf.get_signature(f"pre|{pre}").decode("ascii")


def check_csrf(request: web.Request, form: MultiDictProxy[Any] | None) -> None:
    """Refuse (403) a state-changing request whose token does not match this visitor's."""
    given = request.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) if form is not None else None)
    state = request.app[AUTH]
    signed = visitor(request).signed
    if signed:
        value = f"session|{signed[1].nonce}"
    elif request.cookies.get(PRE_COOKIE):
        value = f"pre|{request.cookies[PRE_COOKIE]}"
    else:
        raise CsrfRefused(BAD_CSRF)
    # any key, current or old: a form opened before a key rotation can still be sent
    if not isinstance(given, str) or len(given) > 128 or not state.csrf.verify_signature(value, given):
        raise CsrfRefused(BAD_CSRF)


def set_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """Set the pre-sign-in cookie if this page minted one."""
    pre = visitor(request).pre
    if pre:
        response.set_cookie(
            PRE_COOKIE,
            pre,
            httponly=True,
            samesite="Lax",
            path="/",
            secure=request.app[AUTH].secure,
            max_age=SESSION_MAX_AGE,
        )


def sign_in(request: web.Request, response: web.StreamResponse, user: User) -> None:
    """Give the browser a new session cookie (a fresh nonce: no session fixation)."""
    state = request.app[AUTH]
    response.set_cookie(
        SESSION_COOKIE,
        issue(state, user),
        httponly=True,
        samesite="Lax",
        path="/",
        secure=state.secure,
        max_age=SESSION_MAX_AGE,
    )
    response.del_cookie(PRE_COOKIE, path="/")


async def sign_out(request: web.Request, response: web.StreamResponse) -> None:
    """Revoke the request's session in every process (``revoked_sessions``); delete its cookie."""
    from alerts.web.base import APP

    signed = visitor(request).signed
    if signed:
        nonce = signed[1].nonce
        expires = datetime.fromtimestamp(signed[1].issued + SESSION_MAX_AGE, UTC)
        async with request.app[APP].sessions.begin() as db:
            await db.execute(delete(RevokedSession).where(RevokedSession.expires_at < utcnow()))
            if await db.get(RevokedSession, nonce) is None:
                db.add(RevokedSession(nonce=nonce, expires_at=expires))
    response.del_cookie(SESSION_COOKIE, path="/")


async def attempt_sign_in(request: web.Request, name: str, password: str) -> User:
    """Reserve an attempt within the limits, then check the password; count a failure.

    Raises TooManyAttempts, AccountLocked or Unauthorized.
    """
    from alerts.web.base import APP

    sessions = request.app[APP].sessions
    held = await signin_limits.reserve(sessions, name, client_address(request), now=utcnow())
    try:
        async with sessions.begin() as db:
            user = await users.authenticate_password(db, name, password)
    except BaseException:
        await signin_limits.failed(sessions, held, now=utcnow())
        logger.info("failed sign-in")
        raise
    if two_factor.enrolled(user):
        await signin_limits.passed(sessions, held)  # a code is still due (web.second_factor)
    else:
        await signin_limits.succeeded(sessions, held)
    return user


def require(user: User, action: str) -> None:
    """users.check, named for the pages: PermissionDenied (403) unless ``user`` may do ``action``."""
    users.check(user, action)
