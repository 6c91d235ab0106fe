"""Officers' pages for accounts: the users page (admins) and "change my password" (everyone).

``/office/users`` lists the users with, per user, disable/enable, reset password, issue or
revoke the API token (read-only if asked), reset a lost second factor, and a form to add a
user. Every form calls one action (``actions.accounts``, ``actions.two_factor``); a refusal
re-renders the page with the reason (and the action's HTTP status). A new
token is shown once, on the page answering the POST (never in a URL, never stored).
``/office/password`` lets any signed-in user change their own password (giving the current
one): their other sessions end, this browser gets a new session cookie; a button there signs
them out everywhere. A user locked after too many failed sign-ins is unlocked on the users page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from alerts.accounts import users
from alerts.actions import accounts, two_factor
from alerts.core.errors import AlertsError, ValidationError
from alerts.web import auth, i18n
from alerts.web.i18n import N_
from alerts.web.ui.pages import PREFIX as P
from alerts.web.ui.pages import Ctx, page, redirect

ROLES = ("admin", "officer", "reviewer", "viewer")
NOTICES = {
    "added": N_("User %(name)s added."),
    "disabled": N_("User %(name)s disabled: their sessions have ended and their API token is revoked."),
    "enabled": N_("User %(name)s enabled."),
    "unchanged": N_("Nothing to change for %(name)s."),
    "password": N_("Password of %(name)s set; their sessions have ended."),
    "revoked": N_("API token of %(name)s revoked."),
    "unlocked": N_("Sign-in of %(name)s unlocked."),
    "2fa-reset": N_("Two-factor sign-in of %(name)s reset: their sessions have ended; they set it up again."),
}


def _name(c: Ctx) -> str:
    return c.request.match_info["name"]


def _back(notice: str, name: str) -> web.Response:
    return redirect(f"{P}/users?notice={notice}&name={quote(name, safe='')}")


async def _page(
    c: Ctx,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
    token: accounts.TokenIssued | accounts.Added | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    found = await accounts.list_accounts(c.app, c.user)
    return c.render(
        "users.html",
        status=status,
        accounts=found,
        locked=await accounts.locked_names(c.app, c.user),
        roles=ROLES,
        error=error,
        notice=notice,
        token=token,
        values=values or {},
    )


@page("users.manage")
async def users_page(c: Ctx) -> web.Response:
    """GET /office/users"""
    code, name = c.request.query.get("notice", ""), c.request.query.get("name", "")
    return await _page(c, notice=c.translate(NOTICES[code], name=name) if code in NOTICES else "")


@page("users.manage")
async def add_user(c: Ctx) -> web.Response:
    """POST /office/users: a new user (with a password, or none until one is set)."""
    values = {k: c.field(k) for k in ("name", "role", "email", "telegram")}
    password = c.form.get("password", "") if c.form is not None else ""
    try:
        added = await accounts.add(
            c.app,
            c.user,
            name=values["name"],
            role=values["role"],
            email=values["email"] or None,
            telegram=values["telegram"] or None,
            password=password if isinstance(password, str) and password else None,
            with_token=c.field("token") == "1",
            read_only=c.field("read_only") == "1",
        )
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc), values=values)
    if added.token:
        return await _page(c, notice=c.translate(NOTICES["added"], name=added.account.name), token=added)
    return _back("added", added.account.name)


@page("users.manage")
async def set_active(c: Ctx) -> web.Response:
    """POST /office/users/{name}/disable | enable"""
    active = c.request.path.endswith("/enable")
    try:
        done = await accounts.set_active(c.app, c.user, _name(c), active=active)
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return _back(("enabled" if active else "disabled") if done.changed else "unchanged", done.account.name)


@page("users.manage")
async def reset_password(c: Ctx) -> web.Response:
    """POST /office/users/{name}/password: an admin sets someone's password."""
    password = c.form.get("password", "") if c.form is not None else ""
    try:
        if not isinstance(password, str):
            raise ValidationError("password: must be text")
        done = await accounts.set_password(c.app, c.user, _name(c), password)
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return _back("password", done.account.name)


@page("users.manage")
async def issue_token(c: Ctx) -> web.Response:
    """POST /office/users/{name}/token: a new API token, shown on this answer only."""
    try:
        issued = await accounts.issue_token(c.app, c.user, _name(c), read_only=c.field("read_only") == "1")
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return await _page(c, token=issued)


@page("users.manage")
async def revoke_token(c: Ctx) -> web.Response:
    """POST /office/users/{name}/token/revoke"""
    try:
        revoked = await accounts.revoke_tokens(c.app, c.user, _name(c))
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return _back("revoked", revoked.account.name)


@page("users.manage")
async def unlock(c: Ctx) -> web.Response:
    """POST /office/users/{name}/unlock: lift the lock after too many failed sign-ins."""
    try:
        done = await accounts.unlock(c.app, c.user, _name(c))
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return _back("unlocked" if done.changed else "unchanged", done.account.name)


@page("users.manage")
async def reset_two_factor(c: Ctx) -> web.Response:
    """POST /office/users/{name}/2fa-reset: remove a lost second factor (their sessions end)."""
    try:
        reset = await two_factor.reset(c.app, c.user, _name(c))
    except AlertsError as exc:
        return await _page(c, status=exc.http_status, error=c.said(exc))
    return _back("2fa-reset" if reset else "unchanged", _name(c))


@page("view")
async def sign_out_everywhere(c: Ctx) -> web.StreamResponse:
    """POST /office/sessions/end: end every session of the signed-in user, this one too."""
    await accounts.sign_out_everywhere(c.app, c.user)
    response = redirect("/login")
    await auth.sign_out(c.request, response)
    return response


def _account(c: Ctx, *, status: int = 200, **values: Any) -> web.Response:
    """The signed-in user's own page: the language of their pages, their password, their sessions."""
    notice = c.request.query.get("notice", "")
    context = {"error": "", "language_error": "", "done": notice == "changed", "notice": notice} | values
    languages = [(code, i18n.NATIVE_NAMES[code]) for code in i18n.LANGUAGES]
    return c.render("password.html", status=status, page_languages=languages, **context)


@page("view")
async def password_form(c: Ctx) -> web.Response:
    """GET /office/password: the user's own account."""
    return _account(c)


@page("view")
async def set_my_language(c: Ctx) -> web.StreamResponse:
    """POST /office/account/language: the language of one's own pages, in every browser (this
    browser's earlier choice with the switch is dropped so that the setting shows at once)."""
    try:
        await accounts.set_language(c.app, c.user, c.user.name, c.field("language") or None)
    except AlertsError as exc:
        return _account(c, status=exc.http_status, language_error=c.said(exc))
    response = redirect(f"{P}/password?notice=language")
    i18n.forget(response)
    return response


@page("view")
async def change_password(c: Ctx) -> web.StreamResponse:
    """POST /office/password: change one's own password; other sessions end, this one goes on."""
    form = {k: c.form.get(k, "") if c.form is not None else "" for k in ("current", "password", "repeat")}
    try:
        if not all(isinstance(v, str) for v in form.values()):
            raise ValidationError("password: must be text")
        if form["password"] != form["repeat"]:
            raise ValidationError.said(N_("password: the two entries do not match; nothing changed"))
        new, current = str(form["password"]), str(form["current"])
        await accounts.set_password(c.app, c.user, c.user.name, new, current=current)
    except AlertsError as exc:
        return _account(c, status=exc.http_status, error=c.said(exc), done=False)
    async with c.app.reads() as session:
        user = await users.get_user(session, c.user.id)
    response = redirect(f"{P}/password?notice=changed")
    auth.sign_in(c.request, response, user)  # a new cookie: the old one ended with the password
    return response


def setup(webapp: web.Application) -> None:
    """Add the users page and the change-password page."""
    webapp.router.add_get(f"{P}/users", users_page)
    webapp.router.add_post(f"{P}/users", add_user)
    webapp.router.add_post(f"{P}/users/{{name}}/disable", set_active)
    webapp.router.add_post(f"{P}/users/{{name}}/enable", set_active)
    webapp.router.add_post(f"{P}/users/{{name}}/password", reset_password)
    webapp.router.add_post(f"{P}/users/{{name}}/token", issue_token)
    webapp.router.add_post(f"{P}/users/{{name}}/token/revoke", revoke_token)
    webapp.router.add_post(f"{P}/users/{{name}}/unlock", unlock)
    webapp.router.add_post(f"{P}/users/{{name}}/2fa-reset", reset_two_factor)
    webapp.router.add_post(f"{P}/sessions/end", sign_out_everywhere)
    webapp.router.add_get(f"{P}/password", password_form)
    webapp.router.add_post(f"{P}/password", change_password)
    webapp.router.add_post(f"{P}/account/language", set_my_language)
