"""Log output: text or JSON lines with the ids of the context, and the redaction of addresses,
tokens and configured secrets in messages and tracebacks, whatever the level."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from alerts.core import logs
from alerts.core.config import Settings

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "a-very-secret-server-key-0123"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs")
    handler = logs.make_handler(format="json", secrets=[SECRET, "smtp-pass-word"], stream=stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("message", "leaked"),
    [
        ("550 <Jane.Doe+alerts@example.org>: unknown", "Jane.Doe+alerts@example.org"),
        ("chat @defenders_channel blocked the bot", "@defenders_channel"),
        (f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage", BOT_TOKEN),
        ("Authorization: Bearer ua_t0k3n-value", "ua_t0k3n-value"),
        ("GET /unsubscribe/abcdefghijklmnop.sig-nature 200", "abcdefghijklmnop.sig-nature"),
        ("GET /preferences/abcdefghijklmnop.sig?x=1", "abcdefghijklmnop.sig"),
        ("GET /subscribe/confirm/WzEsImFiYyJd.ZZZ", "WzEsImFiYyJd.ZZZ"),
        ("GET /t/c/WyJjIiw1XQ.sig", "WyJjIiw1XQ.sig"),
        (f"the key {SECRET} was used", SECRET),
        ("login with smtp-pass-word failed", "smtp-pass-word"),
    ],
)
def test_addresses_tokens_and_secrets_never_reach_the_output(
    captured: tuple[logging.Logger, io.StringIO], message: str, leaked: str
) -> None:
    logger, stream = captured
    logger.debug("%s", message)  # even at DEBUG
    [line] = lines(stream)
    assert leaked not in stream.getvalue() and logs.REDACTED in str(line["message"])


def test_a_traceback_is_redacted_too(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise ValueError("recipient jane@example.org refused")
    except ValueError:
        logger.exception("sending failed")
    [line] = lines(stream)
    assert "jane@example.org" not in stream.getvalue()
    assert "ValueError: recipient <redacted> refused" in str(line["exception"])


def test_ordinary_text_is_left_alone(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("alert %d: fan-out wrote %d new deliveries at 12:30:05", 12, 3)
    assert lines(stream)[0]["message"] == "alert 12: fan-out wrote 3 new deliveries at 12:30:05"


async def test_ids_follow_the_context_of_each_task(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    async def send(delivery_id: int) -> None:
        with logs.log_context(alert_id=7, delivery_id=delivery_id):
            await asyncio.sleep(0.01 * (3 - delivery_id))  # interleaved
            logger.info("delivery %d: sent", delivery_id)

    with logs.log_context(request_id="r-0123456789"):
        await asyncio.gather(send(1), send(2))
    logger.info("outside")
    by_message = {line["message"]: line for line in lines(stream)}
    assert by_message["delivery 1: sent"]["delivery_id"] == 1
    assert by_message["delivery 2: sent"]["delivery_id"] == 2
    assert by_message["delivery 2: sent"]["request_id"] == "r-0123456789"
    assert by_message["delivery 2: sent"]["alert_id"] == 7
    assert not {"alert_id", "delivery_id", "request_id"} & by_message["outside"].keys()
    assert {"time", "level", "logger"} <= by_message["outside"].keys()


def test_the_text_format_appends_the_ids() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs.text")
    logger.addHandler(logs.make_handler(format="text", stream=stream))
    logger.propagate = False
    with logs.log_context(alert_id=3, delivery_id=9):
        logger.warning("delivery %d: deferred for <x@example.org>", 9)
    assert (
        stream.getvalue()
        .rstrip()
        .endswith("WARNING tests.logs.text: delivery 9: deferred for <<redacted>> [alert_id=3 delivery_id=9]")
    )


def test_the_configured_secrets_are_collected() -> None:
    settings = (
        Settings()
        .replace("server", secret_key=SECRET, old_secret_keys=("an-older-key-0123456789",))
        .replace("telegram", token=BOT_TOKEN)
        .replace("email", password="smtp-pass-word")
        .replace("webhook", secret="hook-secret-1")
    )
    assert set(logs.secrets_of(settings)) == {
        SECRET,
        "an-older-key-0123456789",
        BOT_TOKEN,
        "smtp-pass-word",
        "hook-secret-1",
    }
