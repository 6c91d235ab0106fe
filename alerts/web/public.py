"""Public pages, no sign-in: subscribe (double opt-in), confirm, unsubscribe (RFC 8058 one-click),
preferences, the archive of public alerts, its Atom feed and CAP 1.2 output.

Pages that carry a token in their URL are never cached and send no Referer, so the token
does not leak to another site. An unknown, forged or expired token gets the same 404 page
whatever the reason, so nobody learns whether an address is subscribed. The one-click
unsubscribe POST needs no cookie and no CSRF token: the token in the URL is the credential.
Confirmation is a POST too (the GET shows a button), so mail scanners that open links
cannot confirm a subscription on the owner's behalf.

``POST /subscribe`` is limited per client address (``SUBSCRIBE_LIMIT`` in ``SUBSCRIBE_WINDOW``,
then 429 with ``Retry-After``; the address as sign-in reads it, ``auth.client_address``), and
the service mails at most ``CONFIRM_MAILS_PER_HOUR`` confirmations: past that, subscribe
answers the same page but sends nothing (and logs a warning), so nobody can use the form to
mail-bomb strangers or burn the sending reputation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from aiohttp import web

from alerts import subscriptions
from alerts.app import App
from alerts.cap import CAP_TYPE, cap_alert
from alerts.errors import ValidationError
from alerts.feeds import atom_feed, public_alert, public_alerts
from alerts.messages import message_domain
from alerts.models import Contact
from alerts.subscriptions import Confirmation, Signer
from alerts.timeutil import utcnow
from alerts.types import OutcomeKind, Recipient, RenderedContent, RenderedMessage
from alerts.web import auth

logger = logging.getLogger(__name__)

PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "public_pages"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
MAX_FORM_BYTES = 16 * 1024
PAGE_SIZE = 30
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
PRIVATE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
#: Confirmation mails being sent in the background (a reference keeps each task alive).
CONFIRMATIONS = web.AppKey("confirmations", set[asyncio.Task[bool]])
#: How long shutdown waits for confirmation mails still being sent.
CONFIRM_DRAIN_SECONDS = 10.0

#: Subscribe requests per client address in SUBSCRIBE_WINDOW seconds; more get 429.
SUBSCRIBE_LIMIT = 5
SUBSCRIBE_WINDOW = 10 * 60
#: Confirmation mails per hour for the whole service; more are not sent.
CONFIRM_MAILS_PER_HOUR = 200


@dataclass
class SubscribeLimits:
    """Sliding windows (in memory, per process): requests per address, confirmation mails."""

    addresses: auth.LoginLimiter
    mails: auth.LoginLimiter


SUBSCRIBE_LIMITS = web.AppKey("subscribe_limits", SubscribeLimits)

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


def _page(name: str, *, status: int = 200, private: bool = False, **context: Any) -> web.Response:
    return web.Response(
        text=PAGES.get_template(name).render(**context),
        status=status,
        content_type="text/html",
        headers=PRIVATE if private else SECURITY_HEADERS,
    )


def _message(title: str, *lines: str, status: int = 200, action: str = "", button: str = "") -> web.Response:
    return _page(
        "message.html", status=status, private=True, title=title, lines=lines, action=action, button=button
    )


def not_found() -> web.Response:
    """The one answer for an unknown, forged or expired link."""
    return _message(
        "Link not valid",
        "This link is not valid or has expired.",
        "If you want to subscribe, please start again from the subscribe page.",
        status=404,
    )


def _signer(app: App) -> Signer:
    return Signer(app.settings.server.secret_key)


def _base(app: App) -> str:
    return app.settings.server.public_url.rstrip("/")


async def _form(request: web.Request) -> dict[str, list[str]]:
    from alerts.web.api import read_body

    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("the form could not be read") from None


def _first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]


def _countries(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _choices(app: App) -> dict[str, Any]:
    families = app.renderer.families()
    codes = sorted({lang for f in families for lang in app.renderer.family(f).languages} | {"en"})
    return {"families": families, "languages": [(c, LANGUAGE_NAMES.get(c, c)) for c in codes]}


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
    return RenderedMessage(
        delivery_id=0,
        alert_id=0,
        content=RenderedContent(
            channel="email",
            audience="public",
            language=contact.language,
            subject=subject,
            text=body.format(url=url),
        ),
        recipient=Recipient(
            contact_id=contact.id, name="", address=contact.email, language=contact.language, kind="public"
        ),
        message_id=f"<subscribe-{contact.id}.{secrets.token_hex(6)}@{message_domain(app.settings.email.from_)}>",
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
                CONFIRM_MAILS_PER_HOUR,
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
        channels=subscriptions.SUBSCRIBER_CHANNELS,
        chosen=contact.channels if contact.channels is not None else ["email", "telegram"],
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


# --------------------------------------------------------------------------- archive, feeds, CAP


async def archive(request: web.Request) -> web.Response:
    """Public alerts, newest first."""
    from alerts.web import APP

    app = request.app[APP]
    raw = request.query.get("page", "1")
    page = int(raw) if raw.isdigit() and 0 < len(raw) < 6 and int(raw) > 0 else 1
    async with app.sessions() as session:
        alerts = await public_alerts(session, app, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return _page("archive.html", alerts=alerts[:PAGE_SIZE], more=len(alerts) > PAGE_SIZE, page=page)


def _alert_id(request: web.Request) -> int | None:
    value = int(request.match_info["id"])
    return value if value <= 2**53 else None


async def alert_page(request: web.Request) -> web.Response:
    """One public alert, in the language asked for (``?lang=``)."""
    from alerts.web import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    async with app.sessions() as session:
        found = await public_alert(session, app, alert_id) if alert_id is not None else None
    if found is None:
        return _message("Not found", "There is no public alert here.", status=404)
    text = found.text(request.query.get("lang"))
    paragraphs = [p.strip() for p in text.text.split("\n\n") if p.strip()]
    return _page("alert.html", alert=found, text=text, paragraphs=paragraphs, lang=text.language)


async def feed(request: web.Request) -> web.Response:
    """Atom 1.0 feed of the public alerts."""
    from alerts.web import APP

    app = request.app[APP]
    async with app.sessions() as session:
        alerts = await public_alerts(session, app, limit=PAGE_SIZE)
    body = atom_feed(
        alerts,
        base_url=_base(app),
        self_path="/feed.atom",
        title="Urgent Alerts",
        now=utcnow(),
        language=request.query.get("lang"),
    )
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8", headers=SECURITY_HEADERS
    )


async def cap_feed(request: web.Request) -> web.Response:
    """Atom index of the public alerts' CAP documents."""
    from alerts.web import APP

    app = request.app[APP]
    async with app.sessions() as session:
        alerts = await public_alerts(session, app, limit=PAGE_SIZE)
    body = atom_feed(
        alerts,
        base_url=_base(app),
        self_path="/alerts/cap.atom",
        title="Urgent Alerts (CAP 1.2)",
        now=utcnow(),
        entry_link="/alerts/{id}.cap.xml",
        entry_type=CAP_TYPE,
    )
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8", headers=SECURITY_HEADERS
    )


async def cap_document(request: web.Request) -> web.Response:
    """One public alert as CAP 1.2 XML."""
    from alerts.web import APP

    app = request.app[APP]
    alert_id = _alert_id(request)
    async with app.sessions() as session:
        found = await public_alert(session, app, alert_id) if alert_id is not None else None
        original = None
        if found is not None and found.parent_id is not None:
            original = await public_alert(session, app, found.parent_id)
    if found is None:
        return _message("Not found", "There is no public alert here.", status=404)
    body = cap_alert(found, public_url=_base(app), original=original)
    return web.Response(body=body, content_type=CAP_TYPE, charset="utf-8", headers=SECURITY_HEADERS)


def setup(webapp: web.Application) -> None:
    """Add the public routes."""
    webapp[CONFIRMATIONS] = set()
    webapp[SUBSCRIBE_LIMITS] = SubscribeLimits(
        addresses=auth.LoginLimiter(limit=SUBSCRIBE_LIMIT, window=SUBSCRIBE_WINDOW),
        mails=auth.LoginLimiter(limit=CONFIRM_MAILS_PER_HOUR, window=3600),
    )
    webapp.on_shutdown.append(_drain_confirmations)
    r = webapp.router
    r.add_get("/subscribe", subscribe_form)
    r.add_post("/subscribe", subscribe)
    r.add_get("/subscribe/confirm/{token}", confirm_page)
    r.add_post("/subscribe/confirm/{token}", confirm)
    r.add_get("/unsubscribe/{token}", unsubscribe_page)
    r.add_post("/unsubscribe/{token}", unsubscribe)
    r.add_get("/preferences/{token}", preferences_page)
    r.add_post("/preferences/{token}", save_preferences)
    r.add_get("/alerts", archive)
    r.add_get("/alerts/cap.atom", cap_feed)
    r.add_get(r"/alerts/{id:\d{1,16}}.cap.xml", cap_document)
    r.add_get(r"/alerts/{id:\d{1,16}}", alert_page)
    r.add_get("/feed.atom", feed)
