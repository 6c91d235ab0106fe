"""Turn a claimed delivery into a RenderedMessage: shared content (rendered once and
cached per alert version × audience × channel × language) plus per-recipient parts."""

from __future__ import annotations

import hmac
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any, Protocol

from alerts.core import urls
from alerts.core.channels import EMAIL_ADDRESSED, rendered_as
from alerts.core.telegram import sent_parts
from alerts.core.types import Attachment, Recipient, RenderedContent, RenderedMessage
from alerts.core.verp import Verp
from alerts.delivery.links import TrackingLinks


class RendererLike(Protocol):
    """What the message builder needs from alerts.render.Renderer."""

    def render(
        self,
        family: str,
        data: Mapping[str, Any],
        *,
        audience: str,
        channel: str,
        language: str,
        extra: Mapping[str, Any] | None = None,
    ) -> RenderedContent: ...

    def words(self, family: str, language: str) -> Mapping[str, Any]: ...

    def case_values(self, family: str, data: Mapping[str, Any], language: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertInfo:
    """What the dispatcher keeps about an alert while sending it."""

    id: int
    title: str
    family: str
    version: int
    case_data: dict[str, Any]
    ancestors: tuple[int, ...]  # parent, grandparent… (updates thread under these)
    embargo_until: datetime | None
    attachments: tuple[Attachment, ...]
    fallback_email: bool
    original: dict[str, Any] | None  # title/date/id of the first alert of the thread


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed:
    """One delivery claimed by this dispatcher, with what is needed to send it."""

    id: int
    alert_id: int
    contact_id: int | None
    channel: str
    audience: str
    language: str
    address: str
    attempts: int
    unknown_outcomes: int
    from_state: str
    name: str = ""
    token: str | None = None
    reply_to: str | None = None  # provider id of the original Telegram message
    provider_id: str | None = None  # Telegram: the parts an earlier attempt sent (core.telegram)


def message_domain(from_address: str) -> str:
    """The domain part of the sender, for Message-IDs."""
    _, addr = parseaddr(from_address)
    return addr.rpartition("@")[2] or "localhost"


def message_id(alert_id: int, contact_id: int | None, domain: str, token: str | None = None) -> str:
    """Deterministic per (alert, contact): a repeat after a crash collapses in mail clients, and
    an update's References name the original's. With the contact's ``token`` (a random secret
    of each contact) it carries a MAC: a bounce report that quotes it (``inbound``) proves it
    returns our message, where ids and the From domain alone can be guessed by anyone."""
    who = f"c{contact_id}" if contact_id is not None else "hook"
    if contact_id is not None and token:
        # hmac.digest: the one-shot C path (hmac.new builds a Python object per message)
        mac = hmac.digest(token.encode("utf-8"), f"alerts.message-id:{alert_id}.{who}".encode(), "sha256")
        who = f"{who}.{mac[:8].hex()}"
    return f"<alert-{alert_id}.{who}@{domain}>"


# A contact's Message-ID is ours only with its MAC (Message-IDs without one, made before it,
# are not taken as proof: anyone can write them).
_OUR_MESSAGE_ID = re.compile(
    r"^<alert-([1-9][0-9]{0,17})\.(?:c([1-9][0-9]{0,17})\.[0-9a-f]{16}|hook)@[^<>@\s]+>$"
)


def parse_message_id(value: str) -> tuple[int, int | None] | None:
    """(alert id, contact id) of a Message-ID ``message_id`` made; None for anyone else's."""
    found = _OUR_MESSAGE_ID.match(value.strip())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)) if found.group(2) else None


class MessageBuilder:
    """Builds messages; renders each shared form once (LRU-cached)."""

    def __init__(
        self,
        renderer: RendererLike,
        *,
        public_url: str,
        domain: str,
        cache_size: int = 256,
        link_token: Callable[[str], str] | None = None,
        tracking: TrackingLinks | None = None,
        verp: Verp | None = None,
    ) -> None:
        self.renderer = renderer
        self.public_url = public_url.rstrip("/")
        self.domain = domain
        # signs the contact's token in unsubscribe links, so they cannot be forged
        self.link_token = link_token or (lambda token: token)
        # opt-in ([tracking] opens clicks): per-recipient pixel and tracked links, email only
        self.tracking = tracking if tracking is not None and (tracking.opens or tracking.clicks) else None
        self.verp = verp  # [bounces] verp: the delivery id in the envelope sender of emails
        self._cache: OrderedDict[tuple[Any, ...], RenderedContent] = OrderedDict()
        self._cache_size = cache_size

    def content(self, alert: AlertInfo, *, audience: str, channel: str, language: str) -> RenderedContent:
        """The shared rendered form for this audience, channel and language."""
        render_channel = rendered_as(channel)
        key = (alert.id, alert.version, audience, render_channel, language)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        extra: dict[str, Any] = {
            "alert_title": alert.title,
            "alert_url": urls.public_alert(self.public_url, alert.id),
        }
        if alert.embargo_until is not None:
            # language-neutral: the template's own (translated) embargo line wraps it
            extra["embargo_until"] = alert.embargo_until.strftime("%Y-%m-%d %H:%M UTC")
        if alert.original is not None:
            extra["original"] = alert.original
        content = self.renderer.render(
            alert.family,
            alert.case_data,
            audience=audience,
            channel=render_channel,
            language=language,
            extra=extra,
        )
        self._cache[key] = content
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return content

    def build(self, item: Claimed, alert: AlertInfo) -> RenderedMessage:
        """The message for one claimed delivery."""
        content = self.content(alert, audience=item.audience, channel=item.channel, language=item.language)
        unsubscribe = urls.unsubscribe(self.public_url, self.link_token(item.token)) if item.token else None
        recipient = Recipient(
            contact_id=item.contact_id or 0,
            name=item.name,
            address=item.address,
            language=item.language,
            kind=item.audience,
            unsubscribe_url=unsubscribe,
        )
        threads = tuple(
            message_id(a, item.contact_id, self.domain, item.token) for a in reversed(alert.ancestors)
        )
        tracking = self.tracking if item.channel == "email" else None
        return RenderedMessage(
            delivery_id=item.id,
            alert_id=item.alert_id,
            content=content,
            recipient=recipient,
            message_id=message_id(item.alert_id, item.contact_id, self.domain, item.token),
            thread_ids=threads,
            reply_to_provider_id=item.reply_to,
            sent_parts=sent_parts(item.provider_id) if item.channel == "telegram" else (),
            embargo=None,  # the press template already carries the embargo line, translated
            attachments=alert.attachments if item.channel == "press" else (),
            attempt=item.attempts,
            extra=tracking.extra(item.id, content.html) if tracking is not None else {},
            verp_tag=self.verp.tag(item.id) if self.verp and item.channel in EMAIL_ADDRESSED else None,
        )
