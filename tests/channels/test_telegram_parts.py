"""Telegram's length limit as Telegram counts it (UTF-16 code units after entity parsing), and a
message too long for one sent in numbered parts — against the loopback Bot API, which refuses
what Telegram refuses ("message is too long") and parses the HTML on its own."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.config import DispatcherSettings
from alerts.core.telegram import MESSAGE_LIMIT, split_message, text_length
from alerts.core.types import OutcomeKind, Recipient, RenderedContent, RenderedMessage
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.store.models import AlertVersion, Delivery, DeliveryEvent
from channels.telegram import TelegramChannel
from tests.botapi import BotApiServer, telegram_text, utf16_units
from tests.factories import RENDERER, published_alert

FLAGS = "🇺🇦🇵🇸🇸🇩🇲🇲🇧🇾"  # 5 flags: 10 code points, 20 UTF-16 units
WORDS = "法院 拒絕 保釋 👩🏽‍⚖️ &amp; <b>défenseure</b> arrêtée"  # CJK, a ZWJ sequence, an entity
URL = "https://example.org/" + "very-long-path/" * 40 + "?q=1&amp;r=2"


def _message(text: str, *, chat: str = "1001", reply_to: str | None = None) -> RenderedMessage:
    content = RenderedContent(channel="telegram", audience="public", language="en", text=text)
    recipient = Recipient(contact_id=1, name="Contact", address=chat, language="en", kind="public")
    return RenderedMessage(
        delivery_id=1,
        alert_id=7,
        content=content,
        recipient=recipient,
        message_id="<alert-7.contact-1@example.org>",
        reply_to_provider_id=reply_to,
    )


def _long_data(paragraphs: int) -> dict[str, object]:
    data = RENDERER.example("urgent-appeal")
    data["summary"] = "\n\n".join(f"{FLAGS} {' '.join([WORDS] * 3)}" for _ in range(paragraphs))
    data["demands"] = {"en": [f"{FLAGS} {WORDS} {URL.replace('&amp;', '&')}" for _ in range(3)]}
    data["date"] = str(data["date"])
    return data


def _long_case(paragraphs: int = 12) -> str:
    """A Telegram form of a real family whose case holds emoji, flags, CJK and long URLs: under
    4096 code points, over 4096 UTF-16 units (what a count in code points let through)."""
    data = _long_data(paragraphs)
    content = RENDERER.render(
        "urgent-appeal", data, audience="public", channel="telegram", language="en", extra={"alert_url": None}
    )
    return content.text


@pytest.fixture
async def channel(botapi: BotApiServer) -> AsyncIterator[TelegramChannel]:
    opened = TelegramChannel(botapi.settings(per_chat_interval=0.01, rate_per_second=1000.0))
    await opened.open()
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        FLAGS,
        WORDS,
        f'<a href="{URL}">{WORDS}</a>',
        "&lt;script&gt; &#128226; &#x1F1FA;&#x1F1E6; &quot;q&quot;",
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200f!",
    ],
)
def test_our_count_is_the_bot_apis(text: str) -> None:
    plain, refused = telegram_text(text, "HTML")
    assert refused is None
    assert text_length(text) == utf16_units(plain)


def test_the_case_that_was_refused_fits_in_code_points_but_not_in_units() -> None:
    text = _long_case()
    plain, _ = telegram_text(text, "HTML")
    assert len(plain) <= MESSAGE_LIMIT < utf16_units(plain)  # the old count said it fits


async def test_a_message_over_the_limit_goes_in_numbered_parts_in_order(
    botapi: BotApiServer, channel: TelegramChannel
) -> None:
    text = _long_case()
    whole = await botapi_refusal(botapi, text)
    assert whole == "Bad Request: message is too long"  # one message: Telegram would refuse it
    botapi.calls.clear()
    outcome = await channel.send(_message(text, reply_to="42"))
    calls = botapi.sent("1001")
    n = len(calls)
    assert n >= 2 and outcome.kind is OutcomeKind.SENT
    assert outcome.provider_id == "1"  # the first part: what updates reply to
    assert outcome.detail == f"{n} parts: " + ", ".join(str(i) for i in range(1, n + 1))
    assert all(0 < call.units <= MESSAGE_LIMIT for call in calls)  # accepted by the Bot API's count
    assert [re.search(r"\((\d+)/(\d+)\)$", call.text or "").groups() for call in calls] == [  # type: ignore[union-attr]
        (str(i), str(n)) for i in range(1, n + 1)
    ]
    assert [call.reply_to for call in calls] == [42] + [None] * (n - 1)  # the thread hangs on part 1
    # nothing lost or repeated: the parts, unnumbered, are the message's paragraphs
    rejoined = "\n\n".join(re.sub(r"\n\n\(\d+/\d+\)$", "", call.text or "") for call in calls)
    assert rejoined == text
    assert calls[0].text.startswith("<b>URGENT")  # type: ignore[union-attr]


async def botapi_refusal(botapi: BotApiServer, text: str) -> str:
    """What the Bot API answers to ``text`` sent as one message."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        url = f"{botapi.base_url}{botapi.token}/sendMessage"
        async with http.post(url, json={"chat_id": 5, "text": text, "parse_mode": "HTML"}) as r:
            body = await r.json()
    assert r.status == 400 and body["ok"] is False and body["error_code"] == 400
    return str(body["description"])


@pytest.mark.botapi_options(script={"1001": ["ok", "server_error"]})
async def test_a_retry_sends_only_the_parts_not_yet_sent(
    botapi: BotApiServer, channel: TelegramChannel
) -> None:
    text = _long_case(80)
    parts = split_message(text)
    assert len(parts) >= 3
    first = await channel.send(_message(text, reply_to="42"))
    assert first.kind is OutcomeKind.TRANSIENT and first.provider_id == "1"  # part 1 went out
    assert [c.text for c in botapi.sent("1001")] == [parts[0], parts[1]]
    again = await channel.send(replace(_message(text, reply_to="42"), sent_parts=("1",)))
    assert again.kind is OutcomeKind.SENT and again.provider_id == "1"
    sent = botapi.sent("1001")
    assert [c.text for c in sent[2:]] == list(parts[1:])  # part 2 again (it failed), then the rest
    assert [c.reply_to for c in sent[2:]] == [None] * (len(parts) - 1)  # only part 1 replied


async def test_a_long_word_or_url_is_cut_anywhere_and_tags_stay_balanced() -> None:
    text = "<b>Title</b>\n\n<i>" + "x" * 9000 + "</i>\n\n" + f'<a href="{URL}">{"y" * 5000}</a>'
    parts = split_message(text)
    assert [text_length(p) <= MESSAGE_LIMIT for p in parts] == [True] * len(parts)
    for part in parts:
        plain, refused = telegram_text(part, "HTML")
        assert refused is None and plain
        assert part.count("<i>") == part.count("</i>") and part.count("<a ") == part.count("</a>")
    assert split_message("short") == ("short",)


@pytest.mark.botapi_options(script={"100000": ["ok", "server_error"]})
async def test_through_the_dispatcher_a_delivery_is_sent_once_all_its_parts_are(
    botapi: BotApiServer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alert_id = await published_alert(sessions, 1, channels=("telegram",))
    async with sessions.begin() as session:  # the case as pasted: long, emoji, flags, CJK, URLs
        await session.execute(
            update(AlertVersion).where(AlertVersion.alert_id == alert_id).values(case_data=_long_data(80))
        )
    channel = TelegramChannel(botapi.settings(per_chat_interval=0.01, rate_per_second=1000.0))
    await channel.open()
    try:
        builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
        settings = DispatcherSettings(backoff_base=0.05, backoff_max=0.1, flush_interval=0.01, max_attempts=3)
        dispatcher = Dispatcher(
            sessions=sessions, channels={"telegram": channel}, builder=builder, settings=settings
        )
        await dispatcher.run_until_done(alert_id, timeout=30)
    finally:
        await channel.close()
    async with sessions() as session:
        delivery = (await session.execute(select(Delivery).where(Delivery.alert_id == alert_id))).scalar_one()
        events = (
            await session.execute(
                select(DeliveryEvent.type, DeliveryEvent.detail)
                .where(DeliveryEvent.delivery_id == delivery.id)
                .order_by(DeliveryEvent.id)
            )
        ).all()
    texts = [call.text for call in botapi.sent("100000")]
    parts = sorted(set(texts), key=texts.index)
    assert len(parts) >= 3 and texts == [parts[0], parts[1], *parts[1:]]  # part 2 twice: it failed once
    assert (delivery.state, delivery.provider_id) == ("sent", "1")  # the first part, for replies
    assert [type_ for type_, _ in events] == ["queued", "sending", "deferred", "sending", "sent"]
    assert events[-1][1] == f"{len(parts)} parts: " + ", ".join(str(i) for i in range(1, len(parts) + 1))
