"""Officers' pages: the page framework (sign-in required, roles, CSRF, errors as HTML or JSON),
sign-in and sign-out; the pages themselves live in the other modules of
``alerts.web.ui``, and ``alerts.web.ui.table`` registers them all.

Every page handler is wrapped by ``page(action)``: it needs a signed-in user allowed to do
``action`` (``users.check``), and every request that changes something needs the form's
CSRF token. A refusal is an HTML page for a browser (``Accept: text/html``) and the JSON error
format otherwise (the editor's small ``fetch`` calls).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from alerts.accounts import users
from alerts.accounts.two_factor import enrolled
from alerts.actions import two_factor
from alerts.app import App
from alerts.core import urls
from alerts.core.errors import AlertsError, BadRequest, NotFound, PermissionDenied, Unauthorized
from alerts.core.ids import ID_PATTERN, parse_id
from alerts.core.text import unsafe_in_link
from alerts.store.models import User
from alerts.web import auth, i18n, second_factor
from alerts.web.base import check_fields

logger = logging.getLogger(__name__)

PAGES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
PAGES = jinja2.Environment(
    auto_reload=False,  # the pages ship with the package: no stat of each template per render
    loader=jinja2.FileSystemLoader(PAGES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
i18n.install(PAGES)
SIGN_IN_FIRST = "sign in first"
ENROL_FIRST = "set up two-factor sign-in first ([server] require_2fa): open /office/account/2fa"
#: Officers' pages live under this prefix (``/alerts/...`` is the public archive's).
PREFIX = urls.OFFICE
#: Where a user sets up two-factor sign-in (``alerts.web.ui.two_factor``).
ENROL_PAGE = f"{PREFIX}/account/2fa"
#: The id segment of the pages' routes (ASCII digits; see ``alerts.core.ids``).
ID = "{id:" + ID_PATTERN + "}"
SECURITY_HEADERS = {
    # Scripts only from /static; inline styles for the rendered e-mail in the preview frame.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def can(user: User, action: str) -> bool:
    """Whether ``user`` may do ``action`` (for showing buttons; the server checks again)."""
    try:
        users.check(user, action)
    except AlertsError:
        return False
    return True


@dataclass
class Ctx:
    """One request to an officers' page: who asks, and their form (POST only)."""

    request: web.Request
    user: User
    form: MultiDictProxy[Any] | None

    @property
    def app(self) -> App:
        """The open service."""
        from alerts.web.base import APP

        return self.request.app[APP]

    @property
    def language(self) -> str:
        """The language of the officer's pages (``alerts.web.i18n.choose``)."""
        return i18n.choose(self.request, self.user.language)

    def translate(self, message: str, **values: object) -> str:
        """A msgid (marked with ``N_``) in the officer's language."""
        return i18n.translate(self.language, message, **values)

    def said(self, error: AlertsError) -> str:
        """A refusal's message in the officer's language (``alerts.web.i18n.said``)."""
        return i18n.said(error, self.language)

    @property
    def tz(self) -> ZoneInfo:
        """The [scheduler] timezone, in which times are shown and entered."""
        return ZoneInfo(self.app.settings.scheduler.timezone)

    def field(self, name: str, default: str = "") -> str:
        """A text field of the form, stripped of surrounding space."""
        value = self.form.get(name, default) if self.form is not None else default
        return value.strip() if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes)."""
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getall(name, []) if isinstance(v, str) and v.strip()]

    def render(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        """A page, with the user, the CSRF token and the navigation."""
        return render(self.request, template, status=status, user=self.user, **context)


def render(
    request: web.Request, template: str, *, status: int = 200, user: User | None = None, **context: Any
) -> web.Response:
    """Render a page template to a response in the officer's language (``alerts.web.i18n``;
    security headers, CSRF cookie when minted)."""
    from alerts.web.base import APP

    app = request.app[APP]
    tz = ZoneInfo(app.settings.scheduler.timezone)
    language = i18n.choose(request, user.language if user is not None else None)
    with i18n.use(language):
        text = _render(request, template, user, tz, language, **context)
    response = web.Response(text=text, content_type="text/html", status=status, headers=SECURITY_HEADERS)
    auth.set_cookies(request, response)
    i18n.remember(request, response)
    return response


def _render(
    request: web.Request, template: str, user: User | None, tz: ZoneInfo, language: str, **context: Any
) -> str:
    from alerts.web.base import APP

    app = request.app[APP]
    return PAGES.get_template(template).render(
        user=user,
        csrf=auth.csrf_token(request),
        can=(lambda a: can(user, a)) if user else (lambda a: False),
        mailbox="capture" in app.extras,
        tzname=app.settings.scheduler.timezone,
        path=request.path,
        local=lambda when: local_time(when, tz),
        P=PREFIX,
        hl=language,
        switch=i18n.switch(request, language),
        **context,
    )


def local_time(when: datetime | None, tz: ZoneInfo) -> str:
    """A time as shown on the pages: in the scheduler's timezone, to the minute."""
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M") if when is not None else ""


def wants_html(request: web.Request) -> bool:
    """Whether the client is a browser navigating (not a script or a fetch)."""
    return "text/html" in request.headers.get("Accept", "")


def error_page(request: web.Request, exc: AlertsError, user: User | None = None) -> web.Response:
    """A refusal: an HTML page for browsers, the JSON error format otherwise (the live preview
    shows its message beside the form), both in the page's language."""
    from alerts.web.base import error_response

    headers = {}
    if isinstance(exc, auth.TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    if wants_html(request):
        response = render(request, "error.html", status=exc.http_status, user=user, error=exc)
    else:
        language = i18n.choose(request, user.language if user is not None else None)
        response = error_response(exc.http_status, exc.code, i18n.said(exc, language), exc.details)
    response.headers.update(headers)
    return response


PageHandler = Callable[[Ctx], Awaitable[web.StreamResponse]]


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The request's form (url-encoded or multipart); BadRequest (400) when it cannot be read —
    a text part that is not UTF-8, a broken multipart body — instead of aiohttp's exception."""
    try:
        return await request.post()
    except UnicodeDecodeError:
        raise BadRequest("the form could not be read: a field is not UTF-8 text") from None
    except ValueError:
        raise BadRequest("the form could not be read") from None


def page(
    action: str = "view", *, enrolment: bool = False
) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a page: signed-in user allowed to do ``action``; CSRF checked on anything but GET.

    A user whom ``[server] require_2fa`` makes enrol reaches only the ``enrolment`` pages until
    they have: other pages send a browser there, and refuse anything else (403).
    """

    def wrap(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            from alerts.web.base import APP

            user: User | None = None
            try:
                signed = await auth.session_user(request)
                if signed is None:
                    if request.method in ("GET", "HEAD") and wants_html(request):
                        return redirect(f"/login?next={quote(request.path_qs, safe='')}")
                    raise Unauthorized(SIGN_IN_FIRST)
                user = signed[0]
                form = None
                if request.method not in ("GET", "HEAD"):
                    form = await read_form(request)
                    auth.check_csrf(request, form)
                    check_fields(form.items())
                users.check(user, action)
                if not enrolment and two_factor.must_enrol(request.app[APP], user):
                    if request.method in ("GET", "HEAD") and wants_html(request):
                        return redirect(ENROL_PAGE)
                    raise PermissionDenied(ENROL_FIRST)
                return await handler(Ctx(request, user, form))
            except AlertsError as exc:
                return error_page(request, exc, user)

        return wrapped

    return wrap


def path_id(request: web.Request) -> int:
    """The ``{id}`` of the path; NotFound (404) for a number no row can have."""
    value = parse_id(request.match_info["id"])
    if value is None:
        raise NotFound(f"{request.match_info['id']} does not exist")
    return value


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs ``location``."""
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


def safe_next(target: str) -> str:
    """A path of the officers' pages (``/`` or under ``/office``) to go to after sign-in; ``/``
    for anything else (another site, a scheme, control characters or whitespace, in the path
    even percent-encoded)."""
    if any(unsafe_in_link(ch) for ch in target):
        return "/"
    try:
        parts = urlsplit(target)
    except ValueError:
        return "/"
    if any(unsafe_in_link(ch) for ch in unquote(parts.path)):
        return "/"
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if parts.path != "/" and parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return "/"
    return target


#: The second step of sign-in (``alerts.web.ui.two_factor``).
SECOND_STEP = "/login/2fa"


async def login_form(request: web.Request) -> web.Response:
    """GET /login"""
    return render(request, "login.html", next=safe_next(request.query.get("next", "/")), error=None, name="")


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: name + password → session cookie, or the same refusal for every wrong pair."""
    try:
        form = await read_form(request)
    except AlertsError as exc:
        return error_page(request, exc)
    name = form.get("name", "")
    password = form.get("password", "")
    target = safe_next(str(form.get("next", "/")))
    try:
        auth.check_csrf(request, form)
        check_fields(form.items())
        if not isinstance(name, str) or not isinstance(password, str):
            raise Unauthorized(users.BAD_CREDENTIALS)
        user = await auth.attempt_sign_in(request, name, password)
    except AlertsError as exc:
        if not wants_html(request) or isinstance(exc, auth.CsrfRefused):
            return error_page(request, exc)
        response = render(
            request,
            "login.html",
            status=exc.http_status,
            next=target,
            error=i18n.said(exc, i18n.choose(request)),
            name=name if isinstance(name, str) else "",
        )
        if isinstance(exc, auth.TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if enrolled(user):
        response = redirect(SECOND_STEP)  # a code is still due: no session yet
        second_factor.start(request, response, user, target)
        return response
    logger.info("user %s signed in", user.id)
    response = redirect(target)
    auth.sign_in(request, response, user)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout (with the CSRF token): revoke the session."""
    await auth.session_user(request)
    try:
        auth.check_csrf(request, await read_form(request))
    except AlertsError as exc:
        return error_page(request, exc)
    response = redirect("/login")
    await auth.sign_out(request, response)
    return response
