"""Fan-out end to end through the real channels: a real SMTP server on loopback in its
failure modes, and a loopback Bot API speaking Telegram's real error payloads. Every
recipient ends in the right state, none gets two copies, no message names another recipient."""

from __future__ import annotations

import dataclasses
import email
import hashlib
import hmac
from collections import Counter
from email.message import Message

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.config import DispatcherSettings, EmailSettings
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder, message_id, parse_message_id
from alerts.store.models import Contact, Delivery, DeliveryEvent, Suppression
from channels.base import Channel
from channels.email import EmailChannel
from channels.telegram import TelegramChannel
from tests.botapi import BotApiServer
from tests.factories import RENDERER, our_message_id, published_alert
from tests.smtpd import SMTPTestServer

FAST = DispatcherSettings(
    backoff_base=0.05, backoff_max=0.2, unknown_grace_seconds=0.2, flush_interval=0.01, max_attempts=6
)
N = 60


async def run(
    sessions: async_sessionmaker[AsyncSession], alert_id: int, channels: dict[str, Channel]
) -> None:
    builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
    for ch in channels.values():
        await ch.open()
    try:
        dispatcher = Dispatcher(
            sessions=sessions,
            channels=channels,
            builder=builder,
            settings=FAST,
            concurrency={"email": 4, "telegram": 4},
        )
        await dispatcher.run_until_done(alert_id, timeout=60)
    finally:
        for ch in channels.values():
            await ch.close()


async def final_states(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        return dict((await session.execute(select(Delivery.address, Delivery.state))).all())  # type: ignore[arg-type]


def check_privacy(server: SMTPTestServer) -> dict[str, Message]:
    """One recipient per message, and no other recipient's address anywhere in it."""
    everyone = {m.rcpt_tos[0] for m in server.messages()}
    by_rcpt: dict[str, Message] = {}
    for m in server.messages():
        assert len(m.rcpt_tos) == 1
        me = m.rcpt_tos[0]
        others = [a for a in everyone if a != me and a.encode() in m.raw]
        assert others == [], f"message to {me} names {others[:3]}"
        by_rcpt[me] = email.message_from_bytes(m.raw)
    return by_rcpt


async def test_normal_run_one_copy_each(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    alert_id = await published_alert(sessions, N)
    await run(sessions, alert_id, {"email": EmailChannel(dataclasses.replace(smtpd_settings, pool_size=4))})
    assert Counter((await final_states(sessions)).values()) == {"sent": N}
    assert Counter(m.rcpt_tos[0] for m in smtpd_server.messages()) == {
        f"person{i}@example.org": 1 for i in range(N)
    }
    parsed = check_privacy(smtpd_server)
    msg = parsed["person7@example.org"]
    assert msg["To"].endswith("<person7@example.org>")
    assert msg["Message-ID"] == await our_message_id(sessions, alert_id, 8)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert smtpd_server.connections <= 4


@pytest.mark.smtpd_options(fail_first=5, fail_at="rcpt", fail_reply="451 4.3.0 Try again later")
async def test_4xx_then_accepting(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    alert_id = await published_alert(sessions, N)
    await run(sessions, alert_id, {"email": EmailChannel(smtpd_settings)})
    assert Counter((await final_states(sessions)).values()) == {"sent": N}
    assert Counter(Counter(m.rcpt_tos[0] for m in smtpd_server.messages()).values()) == {1: N}
    async with sessions() as session:
        deferred = (
            (await session.execute(select(DeliveryEvent).where(DeliveryEvent.type == "deferred")))
            .scalars()
            .all()
        )
    assert len(deferred) == 5 and all("451" in e.detail for e in deferred)


@pytest.mark.smtpd_options(
    reject={
        "person3@example.org": "550 5.1.1 User unknown",
        "person4@example.org": "554 5.7.1 Relay access denied",
    }
)
async def test_5xx_for_some_recipients(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    alert_id = await published_alert(sessions, 10)
    await run(sessions, alert_id, {"email": EmailChannel(smtpd_settings)})
    states = await final_states(sessions)
    assert states.pop("person3@example.org") == "suppressed"
    assert states.pop("person4@example.org") == "failed"
    assert set(states.values()) == {"sent"}
    async with sessions() as session:
        assert (await session.execute(select(Suppression.address_key, Suppression.reason))).all() == [
            ("person3@example.org", "bounced")
        ]
    check_privacy(smtpd_server)


@pytest.mark.smtpd_options(
    reject={
        "person3@example.org": "550 5.1.1 User unknown",
        "person4@example.org": "554 5.7.1 Relay access denied",
        "person5@example.org": "554 5.7.1 Relay access denied",
    }
)
async def test_the_status_of_an_alert_counts_each_state_of_a_channel_apart(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    """Ten emails of which one bounced and two were refused: ``alert status`` and the stats API
    say 7 sent, 2 failed, 1 suppressed on the email channel, not one figure for the channel."""
    from alerts.delivery import tracking
    from alerts.store.models import Alert

    alert_id = await published_alert(sessions, 10)
    await run(sessions, alert_id, {"email": EmailChannel(smtpd_settings)})
    async with sessions() as session:
        doc = await tracking.stats(session, await session.get_one(Alert, alert_id))
    email_states = {state: n for state, n in doc["channels"]["email"].items() if n}
    assert (doc["total"], doc["open"], email_states) == (10, 0, {"sent": 7, "failed": 2, "suppressed": 1})


@pytest.mark.smtpd_options(drop_after=3)
async def test_connection_dropped_mid_session(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    alert_id = await published_alert(sessions, N)
    await run(sessions, alert_id, {"email": EmailChannel(smtpd_settings)})
    assert Counter((await final_states(sessions)).values()) == {"sent": N}
    assert Counter(Counter(m.rcpt_tos[0] for m in smtpd_server.messages()).values()) == {1: N}
    assert smtpd_server.connections > N // 3 - 1  # it really reconnected


@pytest.mark.smtpd_options(stall=1.0, timeout=0.3)
async def test_stall_after_data_is_unknown_and_retried_once_with_same_message_id(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    alert_id = await published_alert(sessions, 2)
    await run(sessions, alert_id, {"email": EmailChannel(smtpd_settings)})
    async with sessions() as session:
        events = Counter((await session.execute(select(DeliveryEvent.type))).scalars().all())
        details = (await session.execute(select(Delivery.last_error))).scalars().all()
    # two unknown outcomes each (the first and the single retry), then failed: never a third copy
    assert events["unknown"] == 4 and events["sending"] == 4
    assert Counter((await final_states(sessions)).values()) == {"failed": 2}
    assert all(d and d.startswith("outcome unknown") for d in details)
    ids = Counter(email.message_from_bytes(m.raw)["Message-ID"] for m in smtpd_server.messages())
    assert set(ids) <= {await our_message_id(sessions, alert_id, c) for c in (1, 2)}


@pytest.mark.botapi_options(
    script={
        "100000": ["retry_after=1", "ok"],
        "100001": ["blocked"],
        "100002": ["deactivated"],
        "100003": ["chat_not_found"],
        "100004": ["migrate=-1009999"],
        "100005": ["server_error", "ok"],
    }
)
async def test_telegram_error_payloads(
    sessions: async_sessionmaker[AsyncSession], botapi: BotApiServer
) -> None:
    alert_id = await published_alert(sessions, 10, channels=("telegram",))
    await run(sessions, alert_id, {"telegram": TelegramChannel(botapi.settings(rate_per_second=200.0))})
    states = await final_states(sessions)
    assert states == {
        "100000": "sent",
        "100001": "suppressed",
        "100002": "suppressed",
        "100003": "failed",
        "100004": "sent",
        "100005": "sent",
        "100006": "sent",
        "100007": "sent",
        "100008": "sent",
        "100009": "sent",
    }
    assert [c.chat_id for c in botapi.sent() if c.chat_id in ("100004", "-1009999")] == ["100004", "-1009999"]
    ok_chats = Counter(chat for _, chat, behaviour in botapi.answered if behaviour == "ok")
    assert len(ok_chats) == 7 and all(n == 1 for n in ok_chats.values())  # one copy per chat
    async with sessions() as session:
        migrated = (
            await session.execute(select(Contact.telegram).where(Contact.name == "Person 4"))
        ).scalar_one()
        blocked = (await session.execute(select(Suppression.address_key, Suppression.reason))).all()
    assert migrated == "-1009999"
    assert sorted(blocked) == [("100001", "blocked"), ("100002", "blocked")]


def test_message_id_mac_is_the_documented_hmac() -> None:
    # Message-IDs already in mailboxes (and the bounce reports quoting them) must keep
    # verifying: the MAC is HMAC-SHA256 under the contact's token, however it is computed
    token = "Zq3" * 11
    mac = hmac.new(token.encode(), b"alerts.message-id:41.c7", hashlib.sha256).hexdigest()[:16]
    assert message_id(41, 7, "alerts.test", token) == f"<alert-41.c7.{mac}@alerts.test>"
    assert message_id(41, 7, "alerts.test", token) != message_id(41, 7, "alerts.test", token[::-1])
    assert parse_message_id(message_id(41, 7, "alerts.test", token)) == (41, 7)
    assert message_id(41, None, "alerts.test", token) == "<alert-41.hook@alerts.test>"
