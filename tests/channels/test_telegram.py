"""TelegramChannel against the loopback Bot API server (tests/botapi.py)."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.csv_import import import_csv
from alerts.core.config import TelegramSettings
from alerts.core.errors import ConfigError, ValidationError
from alerts.core.states import SuppressionReason
from alerts.core.types import Outcome, OutcomeKind, Recipient, RenderedContent, RenderedMessage
from alerts.store.models import Contact
from channels.telegram import TelegramChannel, parse_chat_id
from tests.botapi import BotApiServer

TEXT = "<b>Urgent:</b> defender detained &amp; held incommunicado"


def message(chat: str = "1001", *, reply_to: str | None = None, n: int = 1) -> RenderedMessage:
    content = RenderedContent(channel="telegram", audience="public", language="en", text=TEXT)
    recipient = Recipient(contact_id=n, name="Contact", address=chat, language="en", kind="public")
    return RenderedMessage(
        delivery_id=n,
        alert_id=7,
        content=content,
        recipient=recipient,
        message_id=f"<alert-7.contact-{n}@example.org>",
        reply_to_provider_id=reply_to,
    )


@pytest.fixture
async def open_channel() -> AsyncIterator[list[TelegramChannel]]:
    channels: list[TelegramChannel] = []
    yield channels
    for channel in channels:
        await channel.close()


async def opened(
    holder: list[TelegramChannel], botapi: BotApiServer, timeout: float = 10.0, **overrides: Any
) -> TelegramChannel:
    channel = TelegramChannel(botapi.settings(**overrides), timeout=timeout)
    await channel.open()
    holder.append(channel)
    return channel


async def test_sends_html_text_without_link_preview(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi, per_chat_interval=0.01)
    outcome = await channel.send(message("1001"))
    assert outcome == Outcome(kind=OutcomeKind.SENT, provider_id="1")
    [call] = botapi.calls
    assert (call.method, call.chat_id, call.text, call.reply_to) == ("sendMessage", "1001", TEXT, None)
    assert call.params["parse_mode"] == "HTML"
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert "allow_paid_broadcast" not in call.params
    assert (await channel.send(message("1001"))).provider_id == "2"  # message ids count per chat


async def test_channel_name_is_sent_as_is(botapi: BotApiServer, open_channel: list[TelegramChannel]) -> None:
    channel = await opened(open_channel, botapi)
    assert (await channel.send(message("@hrd_alerts"))).kind is OutcomeKind.SENT
    assert botapi.calls[0].chat_id == "@hrd_alerts"


async def test_update_replies_to_the_original(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi)
    await channel.send(message("1001", reply_to="42"))
    [call] = botapi.calls
    assert call.reply_to == 42
    assert call.params["reply_parameters"] == {"message_id": 42, "allow_sending_without_reply": True}


async def test_paid_broadcast_flag_is_passed(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi, allow_paid_broadcast=True)
    assert channel.rate == 1000.0
    await channel.send(message("1001"))
    assert botapi.calls[0].params["allow_paid_broadcast"] is True


@pytest.mark.parametrize(
    ("behaviour", "kind", "suppress", "detail"),
    [
        (
            "blocked",
            OutcomeKind.PERMANENT,
            SuppressionReason.BLOCKED,
            "Forbidden: bot was blocked by the user",
        ),
        ("deactivated", OutcomeKind.PERMANENT, SuppressionReason.BLOCKED, "Forbidden: user is deactivated"),
        (
            "kicked",
            OutcomeKind.PERMANENT,
            SuppressionReason.BLOCKED,
            "Forbidden: bot was kicked from the group chat",
        ),
        ("chat_not_found", OutcomeKind.PERMANENT, None, "Chat not found"),
        (
            "bad_html",
            OutcomeKind.PERMANENT,
            None,
            'Can\'t parse entities: unsupported start tag "foo" at byte offset 0',
        ),
        ("server_error", OutcomeKind.TRANSIENT, None, "Internal Server Error"),
    ],
)
async def test_error_payloads_map_to_outcomes(
    botapi: BotApiServer,
    open_channel: list[TelegramChannel],
    behaviour: str,
    kind: OutcomeKind,
    suppress: SuppressionReason | None,
    detail: str,
) -> None:
    channel = await opened(open_channel, botapi)
    botapi.script["1001"] = [behaviour]
    assert await channel.send(message("1001")) == Outcome(kind=kind, suppress=suppress, detail=detail)


@pytest.mark.botapi_options(script={"1001": ["retry_after"]})
async def test_retry_after_is_transient_with_the_servers_delay(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi)
    outcome = await channel.send(message("1001"))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.retry_after == timedelta(seconds=3)
    assert outcome.detail == "Flood control exceeded. Retry in 3 seconds"


@pytest.mark.botapi_options(script={"1001": ["retry_after=1"]})
async def test_retry_after_pauses_every_chat(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi, rate_per_second=1000)
    assert (await channel.send(message("1001"))).retry_after == timedelta(seconds=1)
    flood_at = botapi.answered[0][0]
    outcomes = await asyncio.gather(*(channel.send(message(str(2000 + i), n=i)) for i in range(3)))
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 3
    first_after = min(c.at for c in botapi.calls[1:])
    assert 1.0 <= first_after - flood_at < 1.2


@pytest.mark.botapi_options(script={"1001": ["retry_after=1"]})
async def test_retry_after_also_stops_sends_already_waiting_for_their_slot(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    # At 4/s the second send waits 0.25 s for its slot; the flood answer arrives meanwhile.
    channel = await opened(open_channel, botapi, rate_per_second=4)
    flooded, later = await asyncio.gather(channel.send(message("1001")), channel.send(message("2002", n=2)))
    assert (flooded.kind, later.kind) == (OutcomeKind.TRANSIENT, OutcomeKind.SENT)
    assert botapi.sent("2002")[0].at - botapi.answered[0][0] >= 1.0


@pytest.mark.botapi_options(script={"-4001": ["migrate=-1004001"]})
async def test_migrated_group_is_sent_to_its_new_id(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi)
    outcome = await channel.send(message("-4001", reply_to="9"))
    assert outcome == Outcome(kind=OutcomeKind.SENT, provider_id="1", new_address="-1004001")
    assert [c.chat_id for c in botapi.calls] == ["-4001", "-1004001"]
    assert botapi.calls[1].reply_to == 9 and botapi.calls[1].text == TEXT


@pytest.mark.botapi_options(script={"-4001": ["migrate=-1004001"], "-1004001": ["blocked"]})
async def test_migrated_group_reports_the_new_id_even_when_that_send_fails(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi)
    outcome = await channel.send(message("-4001"))
    assert (outcome.kind, outcome.suppress, outcome.new_address) == (
        OutcomeKind.PERMANENT,
        SuppressionReason.BLOCKED,
        "-1004001",
    )
    assert len(botapi.calls) == 2


@pytest.mark.botapi_options(default="stall")
async def test_no_answer_in_time_is_unknown(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi, timeout=0.3)
    outcome = await channel.send(message("1001"))
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.detail.startswith("no answer from the Bot API in time")
    assert len(botapi.calls) == 1


async def test_connection_refused_is_transient(
    botapi: BotApiServer, open_channel: list[TelegramChannel], closed_port: int
) -> None:
    channel = await opened(open_channel, botapi, base_url=f"http://127.0.0.1:{closed_port}/bot")
    outcome = await channel.send(message("1001"))
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.detail.startswith("aiohttp.ClientConnectorError")


async def test_wrong_token_propagates_without_showing_the_token(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    from telegram.error import InvalidToken

    channel = await opened(open_channel, botapi, token="123:wrong-token")
    with pytest.raises(InvalidToken) as info:
        await channel.send(message("1001"))
    assert "wrong-token" not in str(info.value)


@pytest.mark.parametrize("address", ["", "12ab", "@abc", "@1channel", "+4915112345678", "@bad-name"])
async def test_malformed_address_is_permanent_and_never_sent(
    botapi: BotApiServer, open_channel: list[TelegramChannel], address: str
) -> None:
    channel = await opened(open_channel, botapi)
    outcome = await channel.send(message(address))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.detail.startswith("telegram: not a numeric chat id or an @channel name")
    assert botapi.calls == []


#: Telegram addresses as people type them: valid ones, and near misses on every side of the rule.
CANDIDATES = [
    "1001", "-1001234567890", "-4012345678", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "0", "-0", "007", "+1001", "1 001", "12ab",
    "@hrd_alerts", "@abcd", "@abc", "@" + "a" * 32, "@" + "a" * 33, "@_abcde", "@abcde_",
    "@ab__cde", "@1channel", "@bad-name", "@héllo", "hrd_alerts", "https://t.me/hrd_alerts",
]  # fmt: skip


async def test_what_import_accepts_the_channel_sends(
    sessions: async_sessionmaker[AsyncSession], botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    # One rule (alerts.core.telegram) at import and at send time: @_abcde used to import as a
    # contact and then fail every send as a malformed address.
    rows = [f"C{i},,{address},partner,,,," for i, address in enumerate(CANDIDATES)]
    header = "name,email,telegram,kind,language,organisation,country,lists"
    report = await import_csv(sessions, io.BytesIO("\n".join([header, *rows]).encode()))
    refused = {CANDIDATES[error.row - 2] for error in report.refused}
    assert all(error.reason.startswith("telegram: not a numeric chat id") for error in report.refused)
    assert refused == {
        "9223372036854775808", "0", "-0", "007", "+1001", "1 001", "12ab", "@abc", "@" + "a" * 33,
        "@_abcde", "@abcde_", "@ab__cde", "@1channel", "@bad-name", "@héllo", "hrd_alerts",
        "https://t.me/hrd_alerts",
    }  # fmt: skip
    async with sessions() as session:
        imported = list(await session.scalars(select(Contact.telegram).order_by(Contact.id)))
    assert imported == [a for a in CANDIDATES if a not in refused]
    channel = await opened(open_channel, botapi)
    for n, address in enumerate(imported, start=1):
        outcome = await channel.send(message(address, n=n))
        assert outcome.kind is OutcomeKind.SENT, (address, outcome)
    assert [call.chat_id for call in botapi.calls] == imported


def test_parse_chat_id() -> None:
    assert parse_chat_id(" -1001234567890 ") == -1001234567890
    assert parse_chat_id("@hrd_alerts") == "@hrd_alerts"
    with pytest.raises(ValidationError) as info:
        parse_chat_id("alerts")
    assert info.value.details == {"field": "telegram"}


async def test_open_refuses_an_empty_token() -> None:
    with pytest.raises(ConfigError, match=r"\[telegram\] token is empty"):
        await TelegramChannel(TelegramSettings()).open()


async def test_close_is_idempotent(botapi: BotApiServer) -> None:
    channel = TelegramChannel(botapi.settings())
    await channel.open()
    await channel.close()
    await channel.close()
    with pytest.raises(RuntimeError, match="before open"):
        await channel.send(message())


async def test_global_rate_is_held(botapi: BotApiServer, open_channel: list[TelegramChannel]) -> None:
    channel = await opened(open_channel, botapi, rate_per_second=200, concurrency=8)
    n = 300
    outcomes = await asyncio.gather(*(channel.send(message(str(5000 + i), n=i)) for i in range(n)))
    assert all(o.kind is OutcomeKind.SENT for o in outcomes)
    times = sorted(c.at for c in botapi.calls)
    rate = (n - 1) / (times[-1] - times[0])
    # the limit is an upper bound: a busy machine may send slower, never faster (the speed
    # itself is measured in bench/, not here)
    assert rate <= 210
    # What Telegram counts: no 1 s window over the rate by more than 5 %.
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 210
    # No burst either. These are arrival times at a server in the same busy process, so
    # a 1/10 s window may see some bunching from the event loop, never a flood.
    assert max(sum(1 for t in times if s <= t < s + 0.1) for s in times) <= 30


async def test_per_chat_interval_holds_under_concurrency(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi, rate_per_second=1000, per_chat_interval=0.2)
    chats = ["1", "2", "3"]
    sends = [channel.send(message(chat, n=i)) for i in range(4) for chat in chats]
    assert all(o.kind is OutcomeKind.SENT for o in await asyncio.gather(*sends))
    times = {chat: [c.at for c in botapi.sent(chat)] for chat in chats}
    for chat in chats:
        assert len(times[chat]) == 4
        assert min(b - a for a, b in itertools.pairwise(times[chat])) >= 0.2
    # the chats wait in parallel, not one after another: every chat's first message went out
    # before any chat's second (order, not a wall-clock bound, so a busy machine cannot fail it)
    assert max(t[0] for t in times.values()) < min(t[1] for t in times.values())


async def test_default_per_chat_interval_is_one_second(
    botapi: BotApiServer, open_channel: list[TelegramChannel]
) -> None:
    channel = await opened(open_channel, botapi)
    await asyncio.gather(channel.send(message("1001")), channel.send(message("1001", n=2)))
    first, second = botapi.sent("1001")
    assert 1.0 <= second.at - first.at < 1.2


async def test_token_never_reaches_the_logs(
    botapi: BotApiServer, open_channel: list[TelegramChannel], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    channel = await opened(open_channel, botapi)
    botapi.script["1001"] = ["retry_after=1", "blocked"]
    botapi.script["-4001"] = ["migrate=-1004001"]
    for chat in ("1001", "1001", "-4001", "2002"):
        await channel.send(message(chat))
    assert len(botapi.calls) == 5
    assert caplog.records, "expected the flood-control warning"
    assert botapi.token not in caplog.text
    assert not [r for r in caplog.records if "1001" in r.getMessage() or TEXT in r.getMessage()]
