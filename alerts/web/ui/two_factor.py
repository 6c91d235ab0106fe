"""Two-factor sign-in pages: the second step of sign-in (``/login/2fa``) and the officer's own
two-factor page (``/office/account/2fa``).

The enrolment page shows the secret twice — as a QR code drawn here (segno, inline SVG: no
outside service, no script) and as text for typing in — and turns it on only when a code from
it comes back; the recovery codes are shown on that answer only. New recovery codes and turning
it off take the password or a current code. With ``[server] require_2fa``, reviewers and admins
are sent here after signing in and reach nothing else until they have enrolled
(``pages.page(enrolment=True)`` marks the pages they may reach).
"""

from __future__ import annotations

import logging

import segno
from aiohttp import web
from markupsafe import Markup

from alerts.actions import two_factor
from alerts.core.errors import AlertsError, ValidationError
from alerts.web import auth, i18n, second_factor
from alerts.web.base import check_fields
from alerts.web.clients import client_address
from alerts.web.i18n import N_
from alerts.web.ui.pages import (
    ENROL_PAGE,
    SECOND_STEP,
    Ctx,
    error_page,
    page,
    read_form,
    redirect,
    render,
    safe_next,
    wants_html,
)
from alerts.web.ui.pages import PREFIX as P

logger = logging.getLogger(__name__)

NOTICES = {
    "disabled": N_("Two-factor sign-in is off."),
}


def qr_svg(uri: str, title: str) -> Markup:
    """The QR code of ``uri`` as an inline SVG element (dark on white, quiet zone included)."""
    code = segno.make(uri, error="m")
    # segno's own markup: the title and the URI inside are XML-escaped by segno
    return Markup(code.svg_inline(scale=5, dark="#000", light="#fff", title=title, svgclass="qr"))


def _text(c: Ctx, name: str) -> str:
    value = c.form.get(name, "") if c.form is not None else ""
    if not isinstance(value, str):
        raise ValidationError(f"{name}: must be text")
    return value


async def _page(c: Ctx, *, status: int = 200, error: str = "", codes: tuple[str, ...] = ()) -> web.Response:
    state = await two_factor.status(c.app, c.user)
    enrolment = None if state.enrolled else await two_factor.begin(c.app, c.user)
    notice = c.request.query.get("notice", "")
    return c.render(
        "two_factor.html",
        status=status,
        state=state,
        secret=enrolment.secret if enrolment else "",
        qr=qr_svg(enrolment.uri, c.translate(N_("QR code for your authenticator app"))) if enrolment else "",
        codes=codes,
        error=error,
        notice=c.translate(NOTICES[notice]) if notice in NOTICES else "",
    )


@page("view", enrolment=True)
async def account_page(c: Ctx) -> web.Response:
    """GET /office/account/2fa: enrol (QR code, secret, code), or manage what is enrolled."""
    return await _page(c)


@page("view", enrolment=True)
async def confirm(c: Ctx) -> web.Response:
    """POST /office/account/2fa: a code from the new secret turns two-factor sign-in on."""
    try:
        done = await two_factor.confirm(c.app, c.user, _text(c, "code"))
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return await _page(c, codes=done.codes)


@page("view", enrolment=True)
async def new_codes(c: Ctx) -> web.Response:
    """POST /office/account/2fa/codes: new recovery codes (password or a current code)."""
    try:
        done = await two_factor.regenerate(
            c.app, c.user, _text(c, "proof"), address=client_address(c.request)
        )
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return await _page(c, codes=done.codes)


@page("view", enrolment=True)
async def disable(c: Ctx) -> web.Response:
    """POST /office/account/2fa/disable: turn it off (password or a current code)."""
    try:
        await two_factor.disable(c.app, c.user, _text(c, "proof"), address=client_address(c.request))
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return redirect(f"{ENROL_PAGE}?notice=disabled")


async def code_form(request: web.Request) -> web.StreamResponse:
    """GET /login/2fa: the code after the password (back to /login without a pending sign-in)."""
    if second_factor.pending(request) is None:
        return redirect("/login")
    return render(request, "login_code.html", error=None)


async def check_code(request: web.Request) -> web.StreamResponse:
    """POST /login/2fa: the code → session cookie; a wrong one is counted like a wrong password."""
    try:
        form = await read_form(request)
    except AlertsError as exc:
        return error_page(request, exc)
    code = form.get("code", "")
    try:
        auth.check_csrf(request, form)
        check_fields(form.items())
        user = await second_factor.attempt(request, code if isinstance(code, str) else "")
    except AlertsError as exc:
        if not wants_html(request) or isinstance(exc, auth.CsrfRefused):
            return error_page(request, exc)
        response = render(
            request, "login_code.html", status=exc.http_status, error=i18n.said(exc, i18n.choose(request))
        )
        if isinstance(exc, auth.TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    found = second_factor.pending(request)
    logger.info("user %s signed in with a second factor", user.id)
    response = redirect(safe_next(found[2]) if found else "/")
    second_factor.forget(response)
    auth.sign_in(request, response, user)
    return response


def setup(webapp: web.Application) -> None:
    """Add the second sign-in step and the two-factor page."""
    webapp.router.add_get(SECOND_STEP, code_form)
    webapp.router.add_post(SECOND_STEP, check_code)
    webapp.router.add_get(ENROL_PAGE, account_page)
    webapp.router.add_post(ENROL_PAGE, confirm)
    webapp.router.add_post(f"{P}/account/2fa/codes", new_codes)
    webapp.router.add_post(f"{P}/account/2fa/disable", disable)
