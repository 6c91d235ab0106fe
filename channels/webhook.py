"""Webhook: an HMAC-SHA256-signed JSON POST to a partner system.

Receivers check ``X-Alerts-Signature: sha256=<hex>``, the HMAC-SHA256 of
``f"{X-Alerts-Timestamp}.{body}"`` keyed with the shared secret (``verify_signature`` does it),
and drop repeats by ``X-Alerts-Delivery``: a delivery whose answer was lost is sent again with
the same value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import ClassVar

import aiohttp
from yarl import URL

from alerts.core.clock import utcnow
from alerts.core.config import WebhookSettings
from alerts.core.errors import ConfigError
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Alerts-Signature"
TIMESTAMP_HEADER = "X-Alerts-Timestamp"
DELIVERY_HEADER = "X-Alerts-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Alerts-Signature`` value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes | str,
    header: str,
    *,
    max_age: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is the right signature (constant-time); optionally refuse old timestamps."""
    if not secret or not timestamp:
        return False
    if max_age is not None:
        try:
            age = (time.time() if now is None else now) - int(timestamp)
        except ValueError:
            return False
        if abs(age) > max_age:
            return False
    data = body.encode() if isinstance(body, str) else body
    return hmac.compare_digest(sign(secret, timestamp, data).encode(), header.strip().encode())


def _retry_after(value: str | None) -> timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a delay; None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        return max(parsedate_to_datetime(value) - utcnow(), timedelta(0))
    except (TypeError, ValueError):
        return None


class WebhookChannel:
    """POSTs each message as signed JSON to the recipient's URL."""

    name: ClassVar[str] = "webhook"

    #: HTTP status → outcome; the first range holding the status decides. Redirects are not
    #: followed (a signed POST goes where the partner registered it, nowhere else).
    STATUS_OUTCOMES: ClassVar[tuple[tuple[range, OutcomeKind], ...]] = (
        (range(200, 300), OutcomeKind.SENT),
        (range(408, 409), OutcomeKind.TRANSIENT),  # Request Timeout
        (range(429, 430), OutcomeKind.TRANSIENT),  # Too Many Requests (honour Retry-After)
        (range(500, 600), OutcomeKind.TRANSIENT),
        (range(300, 500), OutcomeKind.PERMANENT),
    )

    #: Exception → outcome; the first matching class decides (subclasses first). Others propagate.
    ERROR_OUTCOMES: ClassVar[tuple[tuple[type[BaseException], OutcomeKind], ...]] = (
        (aiohttp.ConnectionTimeoutError, OutcomeKind.TRANSIENT),  # never connected: nothing sent
        (TimeoutError, OutcomeKind.UNKNOWN),  # the body went out; no answer in time
        # Refused, reset, or a kept-alive connection the receiver had closed. Receivers drop
        # repeats by X-Alerts-Delivery, so retrying soon is safe.
        (aiohttp.ClientConnectionError, OutcomeKind.TRANSIENT),
        (aiohttp.InvalidURL, OutcomeKind.PERMANENT),
    )

    def __init__(self, options: WebhookSettings) -> None:
        self.options = options
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the HTTP session (one connection pool for every receiver)."""
        if not self.options.secret:
            logger.warning("[webhook] secret is empty: webhook deliveries will be refused until it is set")
        t = self.options.timeout
        # ``connect`` fires before ``total``, so a timeout while connecting (nothing sent) is
        # told apart from one waiting for the answer.
        timeout = aiohttp.ClientTimeout(total=t, connect=t / 2)
        self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "urgent-alerts"})

    async def close(self) -> None:
        """Close the HTTP session; safe to call twice."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, message: RenderedMessage) -> Outcome:
        """POST the message as signed JSON and classify the answer."""
        if self._session is None:
            raise RuntimeError("WebhookChannel.send() called before open()")
        if not self.options.secret:
            raise ConfigError(
                "[webhook] secret is empty: set it in the config file or ALERTS_WEBHOOK_SECRET.",
                details={"key": "webhook.secret"},
            )
        url = URL(message.recipient.address or self.options.url)
        if url.scheme not in ("http", "https") or not url.host:
            return Outcome(
                kind=OutcomeKind.PERMANENT, detail="webhook: recipient address is not an http(s) URL"
            )
        body = self.body(message)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.options.secret, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: message.message_id,
        }
        logger.debug("Webhook POST to %s (delivery %s)", url, message.delivery_id)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                excerpt = (await resp.content.read(300)).decode("utf-8", "replace")
                return self._classify_status(
                    resp.status, resp.reason, resp.headers.get("Retry-After"), excerpt
                )
        except Exception as exc:
            for cls, kind in self.ERROR_OUTCOMES:
                if isinstance(exc, cls):
                    return Outcome(kind=kind, detail=f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise

    @staticmethod
    def body(message: RenderedMessage) -> bytes:
        """The JSON body for one message (built in Python, never by a template)."""
        payload = {
            "alert_id": message.alert_id,
            "delivery_id": message.delivery_id,
            "message_id": message.message_id,
            "language": message.content.language,
            "audience": message.content.audience,
            "subject": message.content.subject,
            "text": message.content.text,
            "sent_at": utcnow().isoformat(timespec="seconds"),
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def _classify_status(
        self, status: int, reason: str | None, retry_after: str | None, excerpt: str
    ) -> Outcome:
        detail = f"HTTP {status} {reason or ''}".rstrip()
        if excerpt:
            detail += f": {excerpt}"
        for statuses, kind in self.STATUS_OUTCOMES:  # noqa: B007 - the match is used after the loop
            if status in statuses:
                break
        else:
            kind = OutcomeKind.PERMANENT  # 1xx or out of range: a broken receiver
        if kind is OutcomeKind.SENT:
            return Outcome.sent(detail=detail)
        delay = _retry_after(retry_after) if kind is OutcomeKind.TRANSIENT else None
        return Outcome(kind=kind, retry_after=delay, detail=detail)
