"""Subscriber self-service, no sign-in: subscribe (double opt-in), confirm, unsubscribe
(RFC 8058 one-click) and preferences. The routes, rate limits and shared page helpers are in
``public``.

An unknown, forged or expired token gets the same 404 page whatever the reason, so nobody
learns whether an address is subscribed. The one-click unsubscribe POST needs no cookie and
no CSRF token: the token in the URL is the credential. Confirmation is a POST too (the GET
shows a button), so mail scanners that open links cannot confirm a subscription on the
owner's behalf.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from alerts.actions import subscriptions as actions
from alerts.app import App
from alerts.contacts.subscribe_limits import Refusal
from alerts.core import urls
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.networks import network_of
from alerts.web import i18n
from alerts.web.clients import client_address
from alerts.web.i18n import N_, split_countries
from alerts.web.public.pages import (
    CONFIRMATIONS,
    SUBSCRIBE_LIMITS,
    chosen_countries,
    form_choices,
    form_value,
    message_page,
    not_found,
    read_form,
    render_page,
)

logger = logging.getLogger(__name__)

#: How long shutdown waits for confirmation mails still being sent.
CONFIRM_DRAIN_SECONDS = 10.0


# --------------------------------------------------------------------------- subscribe


async def subscribe_form(request: web.Request) -> web.Response:
    """The subscribe form."""
    from alerts.web.base import APP

    app = request.app[APP]
    return render_page(
        request,
        "subscribe.html",
        error="",
        email="",
        language="en",
        kinds=[],
        listed=[],
        countries="",
        **form_choices(app),
    )


def _in_background(webapp: web.Application, mail: Coroutine[Any, Any, bool]) -> None:
    tasks = webapp[CONFIRMATIONS]
    task = asyncio.create_task(mail)
    tasks.add(task)
    task.add_done_callback(_done)
    task.add_done_callback(tasks.discard)


def _done(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        # send_confirmation logs its own failures; this is anything it did not catch (no address)
        logger.warning("confirmation mail task failed: %s", type(exc).__name__)


async def drain_confirmations(webapp: web.Application) -> None:
    """On shutdown: let confirmation mails still being sent finish (cancel them after a while)."""
    running: set[asyncio.Task[bool]] = webapp[CONFIRMATIONS]
    tasks = set(running)
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=CONFIRM_DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        logger.warning("%d confirmation mail(s) not sent: the server stopped", len(pending))


async def subscribe(request: web.Request) -> web.Response:
    """Record the request; mail a confirmation link. The same answer, after the same work,
    whether the address is known or not (``actions.subscribe``)."""
    from alerts.web.base import APP

    app = request.app[APP]
    form = await read_form(request)
    email, language = form_value(form, "email").strip(), form_value(form, "language", "en")
    kinds, countries = form.get("kinds", []), chosen_countries(form)
    try:
        result = await actions.subscribe(
            app,
            email=email,
            language=language,
            kinds=kinds,
            countries=countries,
            network=network_of(client_address(request)),
            limits=request.app[SUBSCRIBE_LIMITS],
        )
    except ValidationError as exc:
        listed, others = split_countries(countries)
        return render_page(
            request,
            "subscribe.html",
            status=422,
            error=i18n.said(exc, i18n.choose(request)),
            email=email,
            language=language,
            kinds=kinds,
            listed=listed,
            countries=others,
            **form_choices(app),
        )
    if result.refusal is Refusal.TOO_MANY:
        logger.info("subscribe refused: too many requests from one network")
        return _try_later(request, N_("Too many requests"), result.retry_after)
    if result.refusal is Refusal.HELD:
        logger.warning(
            "subscribe held back: a confirmation-mail budget is spent (service, network or domain)"
        )
        return _try_later(request, N_("Confirmation not sent"), result.retry_after, held=True)
    response = message_page(
        request,
        N_("Check your inbox"),
        N_("If this address can be subscribed, we have sent it a message with a confirmation link."),
        N_("You will receive no alerts until you confirm."),
        status=202,
    )
    # The answer leaves first; then the mail, with or without one, is handed to the background:
    # building and sending it never delays the answer, so a new address answers as fast as a
    # known one. (The headers are set by on_response_prepare hooks: sending here loses none.)
    await response.prepare(request)
    await response.write_eof()
    _in_background(request.app, actions.send_confirmation(app, result.to_confirm))
    return response


def _try_later(request: web.Request, title: str, wait: int, *, held: bool = False) -> web.Response:
    """429 with Retry-After: too many requests, or (``held``) no confirmation mail sent now."""
    minutes = max(1, -(-wait // 60))
    lines: list[Any] = [(N_("Please try again in %(n)s minutes."), {"n": minutes})]
    if held:
        lines.insert(0, N_("We could not send a confirmation message now: too many were asked for recently."))
        lines.append(N_("Nothing was recorded; your subscription starts only when you confirm it."))
    response = message_page(request, title, *lines, status=429)
    response.headers["Retry-After"] = str(wait)
    return response


async def confirm_page(request: web.Request) -> web.Response:
    """A button that confirms (GET never changes anything)."""
    from alerts.web.base import APP

    if not actions.confirmation_valid(request.app[APP], request.match_info["token"]):
        return not_found(request)
    return message_page(
        request,
        N_("Confirm your subscription"),
        N_("Press the button to start receiving urgent alerts."),
        action=request.path,
        button=N_("Confirm my subscription"),
    )


async def confirm(request: web.Request) -> web.Response:
    """Activate the subscription; a replayed link is harmless."""
    from alerts.web.base import APP

    app = request.app[APP]
    try:
        result = await actions.confirm(app, request.match_info["token"])
    except NotFound:
        return not_found(request)
    return message_page(
        request,
        N_("Subscribed"),
        N_("You are already subscribed.") if result.already else N_("Your subscription is confirmed."),
        N_("You can change what you receive, or unsubscribe, at any time:"),
        urls.preferences(app.settings.server.public_url, result.link_token),
    )


# --------------------------------------------------------------------------- unsubscribe, preferences


async def unsubscribe_page(request: web.Request) -> web.Response:
    """What the link in a message opens: a button (a GET never unsubscribes: mail scanners follow links)."""
    from alerts.web.base import APP

    try:
        shown = await actions.preferences(request.app[APP], request.match_info["token"])
    except NotFound:
        return not_found(request)
    if shown.unsubscribed:
        return message_page(
            request,
            N_("Unsubscribed"),
            N_("You are unsubscribed: you receive nothing more from us."),
            subscriber_language=shown.language,
        )
    return message_page(
        request,
        N_("Unsubscribe"),
        N_("Press the button to receive no more alerts from us at this email address."),
        action=request.path,
        button=N_("Unsubscribe"),
        subscriber_language=shown.language,
    )


async def unsubscribe(request: web.Request) -> web.Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's button: no cookie, no CSRF token.

    The link comes in an email, so it stops that email address (``alerts.contacts.optout``).
    """
    from alerts.web.base import APP

    app = request.app[APP]
    await read_form(request)  # read (and bound) the body; its content does not matter
    via = "one-click" if request.headers.get("Cookie") is None else "page"
    try:
        await actions.unsubscribe(app, request.match_info["token"], via=via)
    except NotFound:
        return not_found(request)
    return message_page(
        request,
        N_("Unsubscribed"),
        N_("You are unsubscribed: this email address receives nothing more from us."),
        N_("You can subscribe again at any time from the subscribe page."),
    )


def _preferences(
    request: web.Request,
    app: App,
    shown: actions.Preferences,
    token: str,
    *,
    status: int = 200,
    saved: bool = False,
    error: str = "",
) -> web.Response:
    listed, others = split_countries(shown.countries)
    return render_page(
        request,
        "preferences.html",
        status=status,
        private=True,
        subscriber_language=shown.language,
        saved=saved,
        error=error,
        token=token,
        unsubscribed=shown.unsubscribed,
        channels=list(shown.choices),
        chosen=list(shown.channels),
        language=shown.language,
        kinds=list(shown.kinds),
        listed=listed,
        countries=others,
        **form_choices(app),
    )


async def preferences_page(request: web.Request) -> web.Response:
    """The subscriber's preferences."""
    from alerts.web.base import APP

    app = request.app[APP]
    token = request.match_info["token"]
    try:
        shown = await actions.preferences(app, token)
    except NotFound:
        return not_found(request)
    return _preferences(request, app, shown, token)


async def save_preferences(request: web.Request) -> web.Response:
    """Save channels, language, kinds and countries."""
    from alerts.web.base import APP

    app = request.app[APP]
    token = request.match_info["token"]
    form = await read_form(request)
    try:
        shown = await actions.change_preferences(
            app,
            token,
            channels=form.get("channels", []),
            language=form_value(form, "language", "en"),
            kinds=form.get("kinds", []),
            countries=chosen_countries(form),
        )
    except NotFound:
        return not_found(request)
    except (Conflict, ValidationError) as exc:  # rolled back: show what is stored
        try:
            stored = await actions.preferences(app, token)
        except NotFound:
            return not_found(request)
        status = 409 if isinstance(exc, Conflict) else 422
        return _preferences(
            request,
            app,
            stored,
            token,
            status=status,
            error="" if status == 409 else i18n.said(exc, i18n.choose(request, fallback=stored.language)),
        )
    return _preferences(request, app, shown, token, saved=True)
