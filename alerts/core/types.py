"""Values passed between the steps of the pipeline (render → channel → dispatch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from alerts.core.states import SuppressionReason


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedContent:
    """One rendered form of an alert, shared by every recipient of the same
    (alert version, audience kind, channel, language)."""

    channel: str
    audience: str
    language: str
    subject: str = ""
    text: str = ""
    html: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A file sent with a press release."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """The one person a message goes to. Never logged above DEBUG."""

    contact_id: int
    name: str
    address: str  # email address, Telegram chat id / @channel, or webhook url
    language: str
    kind: str
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedMessage:
    """One message for one recipient on one channel: shared content + per-recipient parts."""

    delivery_id: int
    alert_id: int
    content: RenderedContent
    recipient: Recipient
    message_id: str  # deterministic per (alert, contact): "<alert-12.c34.<mac>@domain>"
    thread_ids: tuple[str, ...] = ()  # Message-IDs / provider ids of earlier alerts in the case
    reply_to_provider_id: str | None = None  # Telegram: message id to reply to
    sent_parts: tuple[str, ...] = ()  # Telegram: ids of the parts an earlier attempt sent
    embargo: str | None = None  # press: embargo line text
    attachments: tuple[Attachment, ...] = ()
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    verp_tag: str | None = None  # email: the envelope sender carries it (alerts.core.verp)


class OutcomeKind(StrEnum):
    """How a transport answered one send."""

    SENT = "sent"
    TRANSIENT = "transient"  # retry later (honouring retry_after)
    PERMANENT = "permanent"  # give up (and suppress when ``suppress`` is set)
    UNKNOWN = "unknown"  # the transport gave no answer after the data was sent


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A channel's classification of one send."""

    kind: OutcomeKind
    provider_id: str | None = None  # SMTP Message-ID, Telegram message_id
    retry_after: timedelta | None = None  # honour the server's value
    suppress: SuppressionReason | None = None  # the transport says this address is dead
    detail: str = ""  # provider text, not normalized
    new_address: str | None = None  # Telegram: the chat migrated to this id

    @classmethod
    def sent(cls, provider_id: str | None = None, detail: str = "") -> Outcome:
        """Shorthand for a SENT outcome."""
        return cls(kind=OutcomeKind.SENT, provider_id=provider_id, detail=detail)
