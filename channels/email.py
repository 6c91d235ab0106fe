"""Email over a pool of persistent SMTP connections (aiosmtplib).

One recipient per message (one RCPT, one ``To``); the shared body is serialised once per
rendered content (``channels.mime``); RFC 8058 one-click unsubscribe; updates threaded under
the original alert with ``In-Reply-To``/``References``; optional DKIM signing.

DKIM signing is RSA in pure Python (dkimpy): about 5 ms a message, so a few hundred messages
a second at most. For volume, let the relay sign (OpenDKIM behind Postfix) instead.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import ClassVar

import dkim.crypto
from aiolimiter import AsyncLimiter
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from alerts.core.config import EmailSettings
from alerts.core.errors import ConfigError, ValidationError
from alerts.core.states import SuppressionReason
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage
from alerts.core.verp import return_path
from channels.mime import DkimOptions, MessageBuilder
from channels.smtp_pool import DeliveryFailed, Phase, SMTPPool

__all__ = ["DkimOptions", "EmailChannel", "dkim_from_settings"]

logger = logging.getLogger(__name__)

T, P, U = OutcomeKind.TRANSIENT, OutcomeKind.PERMANENT, OutcomeKind.UNKNOWN


def dkim_from_settings(options: EmailSettings) -> DkimOptions | None:
    """DkimOptions from ``[email] dkim_selector dkim_domain dkim_key_file`` (None when unset)."""
    keys = (options.dkim_selector, options.dkim_domain, options.dkim_key_file)
    if not any(keys):
        return None
    if not all(keys):
        raise ConfigError("[email] dkim_selector, dkim_domain and dkim_key_file must be set together.")
    try:
        key = Path(options.dkim_key_file).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"[email] dkim_key_file: cannot read {options.dkim_key_file!r}: {exc.strerror}."
        ) from None
    return DkimOptions(selector=options.dkim_selector, domain=options.dkim_domain, private_key=key)


def _column(failed: DeliveryFailed) -> tuple[str, str]:
    """The table columns for one failure: its reply code class (if any), then its phase."""
    cause = failed.cause
    if isinstance(cause, SMTPResponseException) and 400 <= cause.code < 600:
        return f"{cause.code // 100}xx", failed.phase.value
    return "-", failed.phase.value


class EmailChannel:
    """The ``email`` channel: one message, one recipient, one SMTP transaction."""

    name: ClassVar[str] = "email"
    section: ClassVar[str] = "[email]"

    #: (aiosmtplib error, reply class "4xx"/"5xx" or phase "before"/"after") → outcome.
    #: A reply code decides first; without one, the phase: a failure after the message data
    #: went out may have been delivered (UNKNOWN: never resent blindly). Errors not listed
    #: propagate to the dispatcher.
    OUTCOMES: ClassVar[dict[tuple[type[BaseException], str], OutcomeKind]] = {
        (SMTPRecipientRefused, "4xx"): T,  # 450/451/452 mailbox busy, greylisting, too many
        (SMTPRecipientRefused, "5xx"): P,  # 550/551/553 also suppress (BOUNCE_CODES)
        (SMTPSenderRefused, "4xx"): T,
        (SMTPSenderRefused, "5xx"): P,  # our sender is refused: no suppression of the recipient
        (SMTPDataError, "4xx"): T,
        (SMTPDataError, "5xx"): P,  # content refused (552 too big, 554 policy)
        (SMTPHeloError, "4xx"): T,
        (SMTPHeloError, "5xx"): T,  # the session, not this message, was refused
        (SMTPAuthenticationError, "4xx"): T,
        (SMTPAuthenticationError, "5xx"): T,  # misconfiguration: logged as an error
        (SMTPNotSupported, "before"): T,  # e.g. STARTTLS required but not offered
        (SMTPConnectError, "before"): T,  # refused, unreachable, 4xx/5xx greeting
        (SMTPServerDisconnected, "before"): T,
        (SMTPServerDisconnected, "after"): U,
        (SMTPTimeoutError, "before"): T,
        (SMTPTimeoutError, "after"): U,
        (ConnectionError, "before"): T,
        (ConnectionError, "after"): U,
        (TimeoutError, "before"): T,
        (TimeoutError, "after"): U,
    }
    #: Recipient refusals meaning "this mailbox does not exist": suppress the address.
    BOUNCE_CODES: ClassVar[frozenset[int]] = frozenset({550, 551, 553})

    def __init__(
        self,
        options: EmailSettings,
        *,
        dkim: DkimOptions | None = None,
        tls_context: ssl.SSLContext | None = None,
        pool: SMTPPool | None = None,
        from_: str | None = None,
    ) -> None:
        if dkim is not None:
            try:
                dkim_crypto_check(dkim.private_key)
            except ValueError:
                raise ConfigError(f"{self.section} dkim_key_file: not a PEM RSA private key.") from None
        try:
            self._builder = MessageBuilder(
                from_=options.from_ if from_ is None else from_, reply_to=options.reply_to, dkim_options=dkim
            )
        except ValidationError as exc:
            raise ConfigError(f"{self.section} {exc.message}", details=exc.details) from None
        self._owns_pool = pool is None
        self.pool = SMTPPool(options, tls_context=tls_context) if pool is None else pool
        rate = options.rate_per_second
        # aiolimiter needs max_rate >= 1: below one message a second, space them instead.
        self._limiter = (
            None if rate <= 0 else AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1 / rate)
        )

    async def open(self) -> None:
        """Prepare the pool (connections open lazily, on first use)."""
        await self.pool.open()

    async def close(self) -> None:
        """Close the pool's connections (if this channel owns the pool); idempotent."""
        if self._owns_pool:
            await self.pool.close()

    def build(self, message: RenderedMessage) -> tuple[str, bytes]:
        """(envelope recipient, DATA payload) for one message; ValidationError if unsafe."""
        return self._builder.build(message)

    async def send(self, message: RenderedMessage) -> Outcome:
        """Send one message to its one recipient and classify the answer."""
        try:
            recipient, data = self.build(message)
        except ValidationError as exc:
            # The reason may quote part of the address: only the field name above DEBUG.
            logger.info(
                "%s delivery %s refused before sending: unsafe %s",
                self.name,
                message.delivery_id,
                exc.details.get("field", "field"),
            )
            logger.debug("%s delivery %s: %s", self.name, message.delivery_id, exc.message)
            return Outcome(kind=OutcomeKind.PERMANENT, detail=exc.message)
        if self._limiter is not None:
            async with self._limiter:
                return await self._deliver(message, recipient, data)
        return await self._deliver(message, recipient, data)

    def envelope_sender(self, message: RenderedMessage) -> str:
        """The return path: the sender, with the message's VERP tag when it has one."""
        if message.verp_tag is None:
            return self._builder.sender
        return return_path(self._builder.sender, message.verp_tag)

    async def _deliver(self, message: RenderedMessage, recipient: str, data: bytes) -> Outcome:
        try:
            reply = await self.pool.deliver(self.envelope_sender(message), recipient, data)
        except DeliveryFailed as failed:
            return self.classify(failed, delivery_id=message.delivery_id)
        return Outcome.sent(provider_id=message.message_id, detail=f"{reply.code} {reply.message}")

    def classify(self, failed: DeliveryFailed, *, delivery_id: int = 0) -> Outcome:
        """The Outcome for one failed transaction, from ``OUTCOMES``; unknown errors re-raise."""
        cause = failed.cause
        columns = _column(failed)
        for cls in type(cause).__mro__:
            kind = self.OUTCOMES.get((cls, columns[0])) or self.OUTCOMES.get((cls, columns[1]))
            if kind is not None:
                break
        else:
            raise cause
        if isinstance(cause, SMTPAuthenticationError):
            logger.error("%s SMTP authentication failed: %s", self.section, cause.code)
        suppress = None
        if isinstance(cause, SMTPRecipientRefused) and cause.code in self.BOUNCE_CODES:
            suppress = SuppressionReason.BOUNCED
        if isinstance(cause, SMTPResponseException):
            detail = f"{cause.code} {cause.message}"
        else:
            where = (
                "after the message data was sent"
                if failed.phase is Phase.AFTER
                else "before the message data"
            )
            detail = f"{type(cause).__name__}: {cause} ({where})"
        logger.info("%s delivery %s: %s (%s)", self.name, delivery_id, kind, type(cause).__name__)
        return Outcome(kind=kind, suppress=suppress, detail=detail)


def dkim_crypto_check(private_key: bytes) -> None:
    """Raise ValueError unless ``private_key`` is a PEM RSA private key dkimpy can use."""
    try:
        dkim.crypto.parse_pem_private_key(private_key)
    except dkim.crypto.UnparsableKeyError as exc:
        raise ValueError(str(exc)) from None
