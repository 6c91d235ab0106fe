"""AiohttpRequest, python-telegram-bot's HTTP layer, against the loopback Bot API (tests/botapi.py)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from alerts.core.types import OutcomeKind
from channels.telegram import TelegramChannel
from channels.telegram_http import AiohttpRequest, ConnectTimedOut
from tests.botapi import BotApiServer


def send(chat: str) -> RequestData:
    return RequestData(
        [RequestParameter.from_input("chat_id", chat), RequestParameter.from_input("text", "hello")]
    )


async def test_answers_are_returned_as_status_and_body(botapi: BotApiServer) -> None:
    botapi.script["2002"] = ["blocked"]
    request = AiohttpRequest(connection_pool_size=2, timeout=5)
    await request.initialize()
    try:
        url = f"{botapi.settings().base_url}{botapi.token}/sendMessage"
        ok_status, ok_body = await request.do_request(url, "POST", send("1001"))
        blocked_status, blocked_body = await request.do_request(url, "POST", send("2002"))
    finally:
        await request.shutdown()
    assert ok_status == 200 and json.loads(ok_body)["result"]["chat"]["id"] == 1001
    assert blocked_status == 403 and "blocked" in json.loads(blocked_body)["description"]
    assert [c.chat_id for c in botapi.calls] == ["1001", "2002"]
    assert botapi.calls[0].text == "hello"


async def test_waiting_for_a_free_connection_times_out_before_anything_is_sent(botapi: BotApiServer) -> None:
    botapi.script["1001"] = ["stall"]
    request = AiohttpRequest(connection_pool_size=1, timeout=0.2)
    await request.initialize()
    url = f"{botapi.settings().base_url}{botapi.token}/sendMessage"
    try:
        stalled = asyncio.create_task(request.do_request(url, "POST", send("1001"), read_timeout=5))
        await asyncio.sleep(0.1)  # holds the only connection
        started = time.monotonic()
        with pytest.raises(ConnectTimedOut):
            await request.do_request(url, "POST", send("2002"))
        assert time.monotonic() - started < 2
        assert [c.chat_id for c in botapi.calls] == ["1001"]  # the second never left
        botapi.release.set()
        assert (await stalled)[0] == 500
    finally:
        await request.shutdown()


async def test_no_answer_in_time_is_timed_out_and_a_refused_connection_a_network_error(
    botapi: BotApiServer, closed_port: int
) -> None:
    botapi.script["1001"] = ["stall"]
    request = AiohttpRequest(connection_pool_size=1, timeout=0.2)
    await request.initialize()
    try:
        with pytest.raises(TimedOut) as timed_out:
            await request.do_request(
                f"{botapi.settings().base_url}{botapi.token}/sendMessage", "POST", send("1001")
            )
        assert not isinstance(timed_out.value, ConnectTimedOut)  # it may have reached Telegram
        with pytest.raises(NetworkError, match="aiohttp.ClientConnectorError"):
            await request.do_request(f"http://127.0.0.1:{closed_port}/bot1:x/sendMessage", "POST", send("1"))
    finally:
        botapi.release.set()
        await request.shutdown()


def test_a_request_that_never_left_is_transient(botapi: BotApiServer) -> None:
    channel = TelegramChannel(botapi.settings())
    assert channel._classify(ConnectTimedOut("no connection")).kind is OutcomeKind.TRANSIENT
    assert channel._classify(TimedOut("no answer")).kind is OutcomeKind.UNKNOWN
