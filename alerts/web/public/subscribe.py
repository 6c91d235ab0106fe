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
import secrets
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from alerts.app import App
from alerts.contacts import subscriptions
from alerts.contacts.subscriptions import Confirmation
from alerts.core.channels import SUBSCRIBER_CHANNELS, ChannelName
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.types import OutcomeKind, RenderedMessage
from alerts.delivery.system_messages import system_message
from alerts.store.models import Contact
from alerts.web import auth
from alerts.web.public import pages as public
from alerts.web.public.pages import (
    CONFIRMATIONS,
    SUBSCRIBE_LIMITS,
    _base,
    _choices,
    _countries,
    _first,
    _form,
    _message,
    _page,
    _signer,
    not_found,
)

logger = logging.getLogger(__name__)

#: How long shutdown waits for confirmation mails still being sent.
CONFIRM_DRAIN_SECONDS = 10.0

#: The confirmation mail, per language (English for any other).
CONFIRM_MAIL = {
    "en": (
        "Confirm your subscription to urgent alerts",
        "Someone, probably you, asked to receive urgent alerts at this address.\n\n"
        "To confirm, open this link and press the button:\n{url}\n\n"
        "If it was not you, ignore this message: you will receive nothing else. "
        "The link expires in 7 days.\n",
    ),
    "fr": (
        "Confirmez votre abonnement aux alertes urgentes",
        "Quelqu'un, sans doute vous, a demandé à recevoir les alertes urgentes à cette adresse.\n\n"
        "Pour confirmer, ouvrez ce lien et appuyez sur le bouton :\n{url}\n\n"
        "Si ce n'était pas vous, ignorez ce message : vous ne recevrez rien d'autre. "
        "Le lien expire dans 7 jours.\n",
    ),
    "es": (
        "Confirme su suscripción a las alertas urgentes",
        "Alguien, probablemente usted, pidió recibir las alertas urgentes en esta dirección.\n\n"
        "Para confirmar, abra este enlace y pulse el botón:\n{url}\n\n"
        "Si no fue usted, ignore este mensaje: no recibirá nada más. El enlace caduca en 7 días.\n",
    ),
}


# --------------------------------------------------------------------------- subscribe


async def subscribe_form(request: web.Request) -> web.Response:
    """The subscribe form."""
    from alerts.web import APP

    app = request.app[APP]
    return _page("subscribe.html", error="", email="", language="en", kinds=[], countries="", **_choices(app))


def confirmation_message(app: App, contact: Contact, url: str) -> RenderedMessage:
    """The confirmation mail (no List-Unsubscribe: nothing is subscribed yet)."""
    subject, body = CONFIRM_MAIL.get(contact.language, CONFIRM_MAIL["en"])
    assert contact.email is not None
    return system_message(
        channel=ChannelName.EMAIL,
        recipient_name="",
        address=contact.email,
        language=contact.language,
        subject=subject,
        text=body.format(url=url),
        key=f"subscribe-{contact.id}.{secrets.token_hex(6)}",
        sender=app.settings.email.from_,
        kind="public",
        contact_id=contact.id,
    )


async def send_confirmation(app: App, contact: Contact) -> bool:
    """Mail the confirmation link; False (logged, address never above DEBUG) when it could not go."""
    channel = app.channels.get("email")
    if channel is None:
        logger.warning("no email channel: the confirmation for contact %d was not sent", contact.id)
        return False
    url = f"{_base(app)}/subscribe/confirm/{_signer(app).confirm_token(contact)}"
    try:
        outcome = await channel.send(confirmation_message(app, contact, url))
    except Exception as exc:  # noqa: BLE001 - the visitor sees the same page; officers see the log
        logger.warning("confirmation for contact %d not sent: %s", contact.id, type(exc).__name__)
        return False
    if outcome.kind is not OutcomeKind.SENT:
        logger.warning("confirmation for contact %d not sent: %s", contact.id, outcome.kind)
        return False
    return True


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


async def _drain_confirmations(webapp: web.Application) -> None:
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
    """Record the request; mail a confirmation link. The same answer whether the address is known or not."""
    from alerts.web import APP

    app = request.app[APP]
    limits = request.app[SUBSCRIBE_LIMITS]
    client = f"addr:{auth.client_address(request)}"
    wait = limits.addresses.retry_after(client)
    if wait:
        logger.info("subscribe refused: too many requests from one address")
        response = _message(
            "Too many requests",
            f"Please try again in {max(1, -(-wait // 60))} minutes.",
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    limits.addresses.fail(client)  # every request counts, accepted or not
    form = await _form(request)
    email, language = _first(form, "email").strip(), _first(form, "language", "en")
    kinds, countries = form.get("kinds", []), _first(form, "countries")
    families = app.renderer.families()
    try:
        if not email:
            raise ValidationError("Please give an email address.")
        unknown = [k for k in kinds if k not in families]
        if unknown:
            raise ValidationError(f"kinds: {unknown[0]!r} is not a kind of alert")
        async with app.sessions.begin() as session:
            contact = await subscriptions.subscribe(
                session,
                email=email,
                language=language,
                kinds=kinds,
                countries=_countries(countries),
                now=utcnow(),
            )
    except ValidationError as exc:
        return _page(
            "subscribe.html",
            status=422,
            error=exc.message,
            email=email,
            language=language,
            kinds=kinds,
            countries=countries,
            **_choices(app),
        )
    if contact is not None:
        if limits.mails.retry_after("mails"):
            logger.warning(
                "confirmation mails are over %d per hour: the one for contact %d was not sent",
                public.CONFIRM_MAILS_PER_HOUR,  # looked up at call time, as setup() reads it
                contact.id,
            )
        else:
            limits.mails.fail("mails")
            # In the background, so a new address answers as fast as a known one (no timing oracle).
            _in_background(request.app, send_confirmation(app, contact))
    return _message(
        "Check your inbox",
        "If this address can be subscribed, we have sent it a message with a confirmation link.",
        "You will receive no alerts until you confirm.",
        status=202,
    )


async def confirm_page(request: web.Request) -> web.Response:
    """A button that confirms (GET never changes anything)."""
    from alerts.web import APP

    if _signer(request.app[APP]).read_confirm(request.match_info["token"]) is None:
        return not_found()
    return _message(
        "Confirm your subscription",
        "Press the button to start receiving urgent alerts.",
        action=request.path,
        button="Confirm my subscription",
    )


async def confirm(request: web.Request) -> web.Response:
    """Activate the subscription; a replayed link is harmless."""
    from alerts.web import APP

    app = request.app[APP]
    async with app.sessions.begin() as session:
        result, contact = await subscriptions.confirm(
            session, _signer(app), request.match_info["token"], now=utcnow()
        )
        token = _signer(app).link_token(contact.token) if contact is not None else ""
    if result is Confirmation.INVALID:
        return not_found()
    first = (
        "Your subscription is confirmed."
        if result is Confirmation.CONFIRMED
        else "You are already subscribed."
    )
    return _message(
        "Subscribed",
        first,
        "You can change what you receive, or unsubscribe, at any time:",
        f"{_base(app)}/preferences/{token}",
    )


# --------------------------------------------------------------------------- unsubscribe, preferences


async def unsubscribe_page(request: web.Request) -> web.Response:
    """What the link in a message opens: a button (a GET never unsubscribes: mail scanners follow links)."""
    from alerts.web import APP

    app = request.app[APP]
    async with app.sessions() as session:
        contact = await subscriptions.contact_by_link(session, _signer(app), request.match_info["token"])
    if contact is None:
        return not_found()
    if contact.status == "unsubscribed":
        return _message("Unsubscribed", "You are unsubscribed: you receive nothing more from us.")
    return _message(
        "Unsubscribe",
        "Press the button to receive no more alerts from us.",
        action=request.path,
        button="Unsubscribe",
    )


async def unsubscribe(request: web.Request) -> web.Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's button: no cookie, no CSRF token."""
    from alerts.web import APP

    app = request.app[APP]
    await _form(request)  # read (and bound) the body; its content does not matter
    async with app.sessions.begin() as session:
        contact = await subscriptions.contact_by_link(session, _signer(app), request.match_info["token"])
        if contact is None:
            return not_found()
        await subscriptions.unsubscribe(
            session,
            contact,
            now=utcnow(),
            via="one-click" if request.headers.get("Cookie") is None else "page",
        )
    return _message(
        "Unsubscribed",
        "You are unsubscribed: you receive nothing more from us.",
        "You can subscribe again at any time from the subscribe page.",
    )


def _preferences(
    app: App, contact: Contact, token: str, *, status: int = 200, saved: bool = False, error: str = ""
) -> web.Response:
    return _page(
        "preferences.html",
        status=status,
        private=True,
        saved=saved,
        error=error,
        token=token,
        unsubscribed=contact.status == "unsubscribed",
        channels=[c.value for c in SUBSCRIBER_CHANNELS],
        chosen=contact.channels if contact.channels is not None else [c.value for c in SUBSCRIBER_CHANNELS],
        language=contact.language,
        kinds=subscriptions.topics_of(contact, "kind"),
        countries=", ".join(subscriptions.topics_of(contact, "country")),
        **_choices(app),
    )


async def preferences_page(request: web.Request) -> web.Response:
    """The subscriber's preferences."""
    from alerts.web import APP

    app = request.app[APP]
    token = request.match_info["token"]
    async with app.sessions() as session:
        contact = await subscriptions.contact_by_link(session, _signer(app), token)
    if contact is None:
        return not_found()
    return _preferences(app, contact, token)


async def save_preferences(request: web.Request) -> web.Response:
    """Save channels, language, kinds and countries."""
    from alerts.web import APP

    app = request.app[APP]
    token = request.match_info["token"]
    form = await _form(request)
    try:
        async with app.sessions.begin() as session:
            contact = await subscriptions.contact_by_link(session, _signer(app), token)
            if contact is None:
                return not_found()
            if contact.status == "unsubscribed":
                return _preferences(app, contact, token, status=409)
            kinds = form.get("kinds", [])
            unknown = [k for k in kinds if k not in app.renderer.families()]
            if unknown:
                raise ValidationError(f"kinds: {unknown[0]!r} is not a kind of alert")
            await subscriptions.update_preferences(
                session,
                contact,
                channels=form.get("channels", []),
                language=_first(form, "language", "en"),
                kinds=kinds,
                countries=_countries(_first(form, "countries")),
                now=utcnow(),
            )
            return _preferences(app, contact, token, saved=True)
    except ValidationError as exc:  # rolled back: show what is stored
        async with app.sessions() as session:
            contact = await subscriptions.contact_by_link(session, _signer(app), token)
            assert contact is not None
            return _preferences(app, contact, token, status=422, error=exc.message)
