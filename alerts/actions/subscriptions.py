"""Subscriber actions: subscribe (double opt-in), confirm, unsubscribe, change preferences, and a
Telegram chat's /start and /stop.

A subscriber signs in with nothing: the link token (or the signed confirmation token, or the
Telegram chat Telegram vouches for) is the credential, so these actions take it instead of a
``User``. What stops what — the unsubscribe link stops that email address, ``/stop`` stops
that chat, the preferences page chooses among the contact's channels — is written once, in
``alerts.contacts.optout``. Each action does its work and its audit entry in one transaction.

``subscribe`` does the same work for every address (new, pending, subscribed, suppressed, or a
contact an officer entered) within the subscribe limits (``alerts.contacts.subscribe_limits``),
and returns the confirmation to mail instead of mailing it: the public page hands it to
``send_confirmation`` in the background after answering, the same way whether there is a mail
or not, so the answer is the same, as fast, for a known address as for a new one. A link that
is forged, expired or no longer valid raises ``NotFound``, the same for every reason.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.app import App
from alerts.contacts import optout, subscribe_limits, subscriptions
from alerts.contacts.subscribe_limits import Limits, Refusal
from alerts.contacts.subscriptions import Confirmation, Signer
from alerts.core import urls
from alerts.core.channels import SUBSCRIBER_CHANNELS, ChannelName
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.msgids import N_
from alerts.core.types import OutcomeKind, RenderedMessage
from alerts.delivery.system_messages import system_message
from alerts.store.models import Contact

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmationMail:
    """A confirmation to mail (the address stays in memory; it is never logged)."""

    contact_id: int
    address: str
    language: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribed:
    """What a subscribe request did: refused by a limit (``refusal``, ``retry_after`` seconds), or
    let through with a confirmation to mail or none (the page says the same either way)."""

    refusal: Refusal | None = None
    retry_after: int = 0
    to_confirm: ConfirmationMail | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirmed:
    """A confirmed subscription: whether it was new, and the token of its preferences link."""

    already: bool
    link_token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscribed:
    """What an unsubscribe did: ``already`` when there was nothing left to stop."""

    contact_id: int
    already: bool
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Preferences:
    """A subscriber's choices, as the preferences page shows them."""

    contact_id: int
    unsubscribed: bool
    choices: tuple[str, ...]  # the channels a subscriber may choose
    channels: tuple[str, ...]  # those chosen
    language: str
    kinds: tuple[str, ...]
    countries: tuple[str, ...]


def signer(app: App) -> Signer:
    """The signer of subscribers' links."""
    return Signer(app.signing)


def _preferences(contact: Contact) -> Preferences:
    return Preferences(
        contact_id=contact.id,
        unsubscribed=contact.status == "unsubscribed",
        choices=tuple(c.value for c in SUBSCRIBER_CHANNELS),
        channels=tuple(
            contact.channels if contact.channels is not None else (c.value for c in SUBSCRIBER_CHANNELS)
        ),
        language=contact.language,
        kinds=tuple(subscriptions.topics_of(contact, "kind")),
        countries=tuple(subscriptions.topics_of(contact, "country")),
    )


def _check_kinds(app: App, kinds: Sequence[str]) -> None:
    families = app.renderer.families()
    unknown = [k for k in kinds if k not in families]
    if unknown:
        raise ValidationError(f"kinds: {unknown[0]!r} is not a kind of alert", details={"field": "kinds"})


async def subscribe(
    app: App,
    *,
    email: str,
    language: str,
    kinds: Sequence[str] = (),
    countries: Sequence[str] = (),
    network: str,
    limits: Limits,
    now: datetime | None = None,
) -> Subscribed:
    """Record a subscription request (double opt-in) from a client ``network``, within the
    subscribe limits; the confirmation to mail, if any.

    The same work whatever the address: one transaction of the same statements (the limits,
    the contact's upsert, one audit entry), one commit, a confirmation token signed; mailing
    is the caller's, off the request's path.
    """
    if not email.strip():
        raise ValidationError.said(N_("Please give an email address."), details={"field": "email"})
    request = subscriptions.check_request(email=email, language=language, kinds=kinds, countries=countries)
    _check_kinds(app, kinds)
    when = now or utcnow()
    async with app.sessions.begin() as session:
        admitted = await subscribe_limits.admit(
            session, network=network, domain=request.domain, limits=limits, now=when
        )
        if admitted.refusal is not None:
            return Subscribed(refusal=admitted.refusal, retry_after=admitted.retry_after)
        requested = await subscriptions.subscribe(session, request, now=when)
        contact = requested.contact
        url = urls.confirm(app.settings.server.public_url, signer(app).confirm_token(contact))
        mail = ConfirmationMail(
            contact_id=contact.id,
            address=contact.email or request.address,
            language=contact.language,
            url=url,
        )
    return Subscribed(to_confirm=mail if requested.confirm else None)


def confirmation_message(app: App, mail: ConfirmationMail) -> RenderedMessage:
    """The confirmation mail (no List-Unsubscribe: nothing is subscribed yet)."""
    subject, body = CONFIRM_MAIL.get(mail.language, CONFIRM_MAIL["en"])
    return system_message(
        channel=ChannelName.EMAIL,
        recipient_name="",
        address=mail.address,
        language=mail.language,
        subject=subject,
        text=body.format(url=mail.url),
        key=f"subscribe-{mail.contact_id}.{secrets.token_hex(6)}",
        sender=app.settings.email.from_,
        kind="public",
        contact_id=mail.contact_id,
    )


async def send_confirmation(app: App, mail: ConfirmationMail | None) -> bool:
    """Mail the confirmation link; False when there is none to mail, or (logged, address never
    above DEBUG) when it could not go."""
    if mail is None:
        return False
    channel = app.channels.get("email")
    if channel is None:
        logger.warning("no email channel: the confirmation for contact %d was not sent", mail.contact_id)
        return False
    try:
        outcome = await channel.send(confirmation_message(app, mail))
    except Exception as exc:  # noqa: BLE001 - the visitor sees the same page; officers see the log
        logger.warning("confirmation for contact %d not sent: %s", mail.contact_id, type(exc).__name__)
        return False
    if outcome.kind is not OutcomeKind.SENT:
        logger.warning("confirmation for contact %d not sent: %s", mail.contact_id, outcome.kind)
        return False
    return True


def confirmation_valid(app: App, token: str) -> bool:
    """Whether a confirmation token is well signed and unexpired (the GET page's check; changes nothing)."""
    return signer(app).read_confirm(token) is not None


async def confirm(app: App, token: str, *, now: datetime | None = None) -> Confirmed:
    """Activate the subscription a confirmation link names; a replayed link is harmless."""
    async with app.sessions.begin() as session:
        result, contact = await subscriptions.confirm(session, signer(app), token, now=now or utcnow())
        if result is Confirmation.INVALID or contact is None:
            raise NotFound("this link is not valid or has expired")
        return Confirmed(
            already=result is Confirmation.ALREADY, link_token=signer(app).link_token(contact.token)
        )


async def _by_link(app: App, token: str) -> Contact:
    async with app.reads() as session:
        contact = await subscriptions.contact_by_link(session, signer(app), token)
    if contact is None:
        raise NotFound("this link is not valid or has expired")
    return contact


async def preferences(app: App, token: str) -> Preferences:
    """What the preferences page shows (a read: nothing changes)."""
    return _preferences(await _by_link(app, token))


async def unsubscribe(
    app: App, token: str, *, via: str = "link", now: datetime | None = None
) -> Unsubscribed:
    """The unsubscribe link (page button or RFC 8058 one-click): stop that email address."""
    async with app.sessions.begin() as session:
        contact = await subscriptions.contact_by_link(session, signer(app), token)
        if contact is None:
            raise NotFound("this link is not valid or has expired")
        changed = await optout.unsubscribe(
            session, contact, now=now or utcnow(), via=via, channels=("email",)
        )
        return Unsubscribed(contact_id=contact.id, already=not changed, status=contact.status)


async def change_preferences(
    app: App,
    token: str,
    *,
    channels: Sequence[str],
    language: str,
    kinds: Sequence[str] = (),
    countries: Sequence[str] = (),
    now: datetime | None = None,
) -> Preferences:
    """Change channels, language and topics; choosing no channel stops every address."""
    _check_kinds(app, kinds)
    async with app.sessions.begin() as session:
        contact = await subscriptions.contact_by_link(session, signer(app), token)
        if contact is None:
            raise NotFound("this link is not valid or has expired")
        if contact.status == "unsubscribed":
            raise Conflict("you are unsubscribed: subscribe again to choose what you receive")
        await optout.update_preferences(
            session,
            contact,
            channels=channels,
            language=language,
            kinds=kinds,
            countries=countries,
            now=now or utcnow(),
        )
        return _preferences(contact)


async def start_chat(
    app: App, *, chat_id: int, name: str, language: str, now: datetime | None = None
) -> optout.ChatStarted:
    """/start in a Telegram chat (Telegram vouches for the chat: no confirmation round)."""
    async with app.sessions.begin() as session:
        return await optout.start_chat(
            session, chat_id=str(chat_id), name=name, language=language, now=now or utcnow()
        )


async def stop_chat(app: App, *, chat_id: int, now: datetime | None = None) -> str:
    """/stop in a Telegram chat: that chat only; returns the language to answer in."""
    async with app.sessions.begin() as session:
        return await optout.stop_chat(session, chat_id=str(chat_id), now=now or utcnow())
