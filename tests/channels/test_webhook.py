"""WebhookChannel against the loopback webhook sink (tests/botapi.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from alerts.core.errors import ConfigError
from alerts.core.types import Outcome, OutcomeKind, Recipient, RenderedContent, RenderedMessage
from channels.webhook import WebhookChannel, sign, verify_signature
from tests.botapi import WebhookSink

TEXT = "Défenseur détenu — agissez maintenant"


def message(url: str, *, n: int = 1) -> RenderedMessage:
    content = RenderedContent(
        channel="webhook", audience="partner", language="fr", subject="Alerte", text=TEXT
    )
    recipient = Recipient(contact_id=n, name="Partner", address=url, language="fr", kind="partner")
    return RenderedMessage(
        delivery_id=100 + n,
        alert_id=7,
        content=content,
        recipient=recipient,
        message_id=f"<alert-7.contact-{n}@example.org>",
    )


@pytest.fixture
async def channels() -> AsyncIterator[list[WebhookChannel]]:
    opened: list[WebhookChannel] = []
    yield opened
    for channel in opened:
        await channel.close()


async def opened(holder: list[WebhookChannel], sink: WebhookSink, **overrides: Any) -> WebhookChannel:
    channel = WebhookChannel(sink.settings(**overrides))
    await channel.open()
    holder.append(channel)
    return channel


async def test_posts_signed_json(webhook_sink: WebhookSink, channels: list[WebhookChannel]) -> None:
    channel = await opened(channels, webhook_sink)
    before = int(time.time())
    outcome = await channel.send(message(webhook_sink.url))
    assert outcome == Outcome(kind=OutcomeKind.SENT, detail='HTTP 200 OK: {"status": 200}')
    [req] = webhook_sink.requests
    assert req.signature_ok
    assert req.path == "/hooks/alerts"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Alerts-Delivery"] == "<alert-7.contact-1@example.org>"
    timestamp = req.headers["X-Alerts-Timestamp"]
    assert before <= int(timestamp) <= time.time()
    expected = hmac.new(webhook_sink.secret.encode(), f"{timestamp}.".encode() + req.body, hashlib.sha256)
    assert req.headers["X-Alerts-Signature"] == f"sha256={expected.hexdigest()}"
    body = req.json()
    sent_at = body.pop("sent_at")
    assert body == {
        "alert_id": 7,
        "delivery_id": 101,
        "message_id": "<alert-7.contact-1@example.org>",
        "language": "fr",
        "audience": "partner",
        "subject": "Alerte",
        "text": TEXT,
    }
    assert sent_at.endswith("+00:00") and len(sent_at) == 25


async def test_sink_refuses_a_wrong_secret(webhook_sink: WebhookSink, channels: list[WebhookChannel]) -> None:
    channel = await opened(channels, webhook_sink, secret="not-the-shared-secret")
    outcome = await channel.send(message(webhook_sink.url))
    assert (outcome.kind, webhook_sink.requests[0].signature_ok) == (OutcomeKind.PERMANENT, False)
    assert outcome.detail == 'HTTP 401 Unauthorized: {"error": "bad signature"}'


async def test_empty_address_uses_the_configured_url(
    webhook_sink: WebhookSink, channels: list[WebhookChannel]
) -> None:
    channel = await opened(channels, webhook_sink)
    assert (await channel.send(message(""))).kind is OutcomeKind.SENT
    assert webhook_sink.requests[0].path == "/hooks/alerts"


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after"),
    [
        (201, OutcomeKind.SENT, None),
        (204, OutcomeKind.SENT, None),
        ((429, {"Retry-After": "7"}), OutcomeKind.TRANSIENT, timedelta(seconds=7)),
        (429, OutcomeKind.TRANSIENT, None),
        ((503, {"Retry-After": "120"}), OutcomeKind.TRANSIENT, timedelta(seconds=120)),
        ((503, {"Retry-After": "soon"}), OutcomeKind.TRANSIENT, None),
        (500, OutcomeKind.TRANSIENT, None),
        (408, OutcomeKind.TRANSIENT, None),
        (404, OutcomeKind.PERMANENT, None),
        (410, OutcomeKind.PERMANENT, None),
        ((301, {"Location": "http://127.0.0.1:1/elsewhere"}), OutcomeKind.PERMANENT, None),
    ],
)
async def test_status_mapping(
    webhook_sink: WebhookSink,
    channels: list[WebhookChannel],
    answer: int | tuple[int, dict[str, str]],
    kind: OutcomeKind,
    retry_after: timedelta | None,
) -> None:
    channel = await opened(channels, webhook_sink)
    webhook_sink.script.append(answer)
    outcome = await channel.send(message(webhook_sink.url))
    status = answer[0] if isinstance(answer, tuple) else answer
    assert (outcome.kind, outcome.retry_after) == (kind, retry_after)
    assert outcome.detail.startswith(f"HTTP {status} ")
    assert len(webhook_sink.requests) == 1  # never retried or redirected by the adapter


async def test_retry_after_as_http_date(webhook_sink: WebhookSink, channels: list[WebhookChannel]) -> None:
    from email.utils import formatdate

    channel = await opened(channels, webhook_sink)
    webhook_sink.script.append((503, {"Retry-After": formatdate(time.time() + 60, usegmt=True)}))
    outcome = await channel.send(message(webhook_sink.url))
    assert outcome.retry_after is not None
    assert timedelta(seconds=58) <= outcome.retry_after <= timedelta(seconds=60)


async def test_no_answer_after_the_body_was_sent_is_unknown(
    webhook_sink: WebhookSink, channels: list[WebhookChannel]
) -> None:
    channel = await opened(channels, webhook_sink, timeout=0.3)
    webhook_sink.script.append("stall")
    started = time.monotonic()
    outcome = await channel.send(message(webhook_sink.url))
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert time.monotonic() - started < 1.0
    assert webhook_sink.requests[0].signature_ok  # the receiver did get it


async def test_connection_refused_is_transient(
    webhook_sink: WebhookSink, channels: list[WebhookChannel], closed_port: int
) -> None:
    channel = await opened(channels, webhook_sink)
    outcome = await channel.send(message(f"http://127.0.0.1:{closed_port}/hook"))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.detail.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1")


@pytest.mark.parametrize("address", ["ftp://example.org/hook", "not a url", "http:///path"])
async def test_address_that_is_not_an_http_url_is_permanent(
    webhook_sink: WebhookSink, channels: list[WebhookChannel], address: str
) -> None:
    channel = await opened(channels, webhook_sink)
    outcome = await channel.send(message(address))
    assert outcome == Outcome(
        kind=OutcomeKind.PERMANENT, detail="webhook: recipient address is not an http(s) URL"
    )


async def test_empty_secret_is_refused(webhook_sink: WebhookSink, channels: list[WebhookChannel]) -> None:
    channel = await opened(channels, webhook_sink, secret="")
    with pytest.raises(ConfigError, match=r"\[webhook\] secret is empty"):
        await channel.send(message(webhook_sink.url))
    assert webhook_sink.requests == []


async def test_close_is_idempotent(webhook_sink: WebhookSink) -> None:
    channel = WebhookChannel(webhook_sink.settings())
    await channel.open()
    await channel.close()
    await channel.close()
    with pytest.raises(RuntimeError, match="before open"):
        await channel.send(message(webhook_sink.url))


def test_verify_signature() -> None:
    body = json.dumps({"text": "ü"}).encode()
    header = sign("s3cret", "1700000000", body)
    assert verify_signature("s3cret", "1700000000", body, header)
    assert verify_signature("s3cret", "1700000000", body.decode(), header)
    assert not verify_signature("other", "1700000000", body, header)
    assert not verify_signature("s3cret", "1700000001", body, header)
    assert not verify_signature("s3cret", "1700000000", body + b" ", header)
    assert not verify_signature("", "1700000000", body, sign("", "1700000000", body))
    assert verify_signature("s3cret", "1700000000", body, header, max_age=300, now=1700000299)
    assert not verify_signature("s3cret", "1700000000", body, header, max_age=300, now=1700000301)
    assert not verify_signature("s3cret", "yesterday", body, header, max_age=300)
