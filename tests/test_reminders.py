"""Reminders through Telegram: the real TelegramChannel against the loopback Bot API (``botapi``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from alerts.app import App, open_app
from alerts.cli.capture import CaptureServer
from alerts.followups import notices as followups_notices
from alerts.followups.manage import STALLED_AFTER, fire, rearm_stalled
from alerts.store.models import Alert, Consent, Contact, User
from channels.base import Channel
from channels.email import EmailChannel
from channels.telegram import TelegramChannel
from tests.botapi import BotApiServer
from tests.test_followups import T0, add, body, capture, row, sent_alert, settings_for

__all__ = ["capture"]

CHAT = "424242"


@pytest.fixture
async def app(db_url: str, capture: CaptureServer, botapi: BotApiServer) -> AsyncIterator[App]:
    """The open App with the real email and Telegram channels, on the capture server and the Bot API."""
    settings = settings_for(db_url, capture.port)
    channels: dict[str, Channel] = {
        "email": EmailChannel(settings.email),
        "telegram": TelegramChannel(botapi.settings()),
    }
    async with open_app(settings, channels=channels) as opened:
        yield opened


async def reminder(
    app: App, *, public: bool = False, consent: str | None = None
) -> tuple[int, int, str, list[str]]:
    """A sent alert whose author olga has a Telegram chat, and a reminder on it; (alert, follow-up, title,
    every contact address). ``consent``: the scope of the defender's consent recorded (none if None)."""
    alert_id, _ = await sent_alert(app, 2)
    async with app.sessions.begin() as session:
        await session.execute(update(User).where(User.name == "olga").values(telegram=CHAT))
        await session.execute(update(Alert).where(Alert.id == alert_id).values(is_public=public))
        if consent is not None:
            olga = await session.scalar(select(User.id).where(User.name == "olga"))
            assert olga is not None
            session.add(Consent(alert_id=alert_id, scope=consent, recorded_by=olga, recorded_at=T0))
        title = (await session.scalar(select(Alert.title).where(Alert.id == alert_id))) or ""
        addresses = [a for a in (await session.scalars(select(Contact.email))).all() if a]
    fid = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1), note="Call the ministry")
    return alert_id, fid, title, addresses


async def test_reminder_reaches_the_officers_telegram_chat(
    app: App, capture: CaptureServer, botapi: BotApiServer
) -> None:
    alert_id, fid, title, addresses = await reminder(app)
    capture.handler.clear()
    fired = await fire(app, fid, T0 + timedelta(hours=1))
    assert fired is not None and fired.result == "reminder sent; sent to olga"
    [call] = botapi.sent(CHAT)
    text = call.text or ""
    assert text.startswith(f"Follow-up due: alert {alert_id}\n")
    assert f"A follow-up is due on alert {alert_id} (sent)." in text and "Due: 2030-03-20 10:00 CET" in text
    assert f"https://alerts.example.org/office/alerts/{alert_id}" in text
    assert "Call the ministry" not in text  # the officer's note stays out of Telegram
    assert call.params.get("parse_mode") == "HTML"
    # the alert is not public: its title (the defender's name) stays out of Telegram, not out of email
    assert title and title not in text and "Marenco" not in text
    [message] = capture.messages()
    assert title in message.subject and title in body(message)
    assert "Note: Call the ministry" in body(message)
    assert addresses and not any(a in text or a in message.raw.decode() for a in addresses)
    assert "@" not in text  # no address of any kind
    assert (await row(app, fid)).result == "reminder sent; sent to olga"


async def test_public_alert_reminder_names_it_on_telegram(app: App, botapi: BotApiServer) -> None:
    alert_id, fid, title, _ = await reminder(app, public=True, consent="public")
    await fire(app, fid, T0 + timedelta(hours=1))
    [call] = botapi.sent(CHAT)
    assert (call.text or "").startswith(f"Follow-up due: alert {alert_id} {title}\n")
    assert "Call the ministry" not in (call.text or "")  # not even for a public alert


@pytest.mark.parametrize("consent", [None, "restricted"])
async def test_public_audience_without_consent_keeps_the_name_off_telegram(
    app: App, capture: CaptureServer, botapi: BotApiServer, consent: str | None
) -> None:
    """Marked public (the public is in the audience) is not enough: the defender must have consented."""
    alert_id, fid, title, _ = await reminder(app, public=True, consent=consent)
    capture.handler.clear()
    await fire(app, fid, T0 + timedelta(hours=1))
    [call] = botapi.sent(CHAT)
    text = call.text or ""
    assert text.startswith(f"Follow-up due: alert {alert_id}\n")
    assert title and title not in text and "Call the ministry" not in text
    [message] = capture.messages()  # the email keeps both
    assert title in message.subject and "Note: Call the ministry" in body(message)


@pytest.mark.botapi_options(script={CHAT: ["blocked"]})
async def test_blocked_bot_does_not_hold_back_the_email(
    app: App, capture: CaptureServer, botapi: BotApiServer
) -> None:
    _, fid, _, _ = await reminder(app)
    capture.handler.clear()
    fired = await fire(app, fid, T0 + timedelta(hours=1))
    assert fired is not None and fired.result == (
        "reminder sent; sent to olga; refused for olga (telegram): Forbidden: bot was blocked by the user"
    )
    assert [m.rcpt_tos for m in capture.messages()] == [("olga@example.org",)]
    assert len(botapi.sent(CHAT)) == 1
    f = await row(app, fid)
    assert f.fired_at is not None and f.result == fired.result  # final: a refusal is not retried
    assert await fire(app, fid, T0 + timedelta(hours=2)) is None
    assert len(capture.messages()) == 1 and len(botapi.sent(CHAT)) == 1


@pytest.mark.botapi_options(script={CHAT: ["server_error", "ok"]})
async def test_telegram_outage_retries_telegram_only(
    app: App, capture: CaptureServer, botapi: BotApiServer
) -> None:
    _, fid, _, _ = await reminder(app)
    capture.handler.clear()
    first = await fire(app, fid, T0 + timedelta(hours=1))
    due = (await row(app, fid)).due_at
    assert T0 + timedelta(hours=1, seconds=15) <= due <= T0 + timedelta(hours=1, seconds=30)
    assert first is not None and first.result.startswith(f"retrying at {due.isoformat()}: olga (telegram)")
    assert len(capture.messages()) == 1  # the email went out at once
    second = await fire(app, fid, due)
    assert second is not None and second.result == "reminder sent; sent to olga"
    assert len(capture.messages()) == 1 and len(botapi.sent(CHAT)) == 2  # no second email


@pytest.mark.botapi_options(script={CHAT: ["stall", "ok"]})
async def test_stalled_firing_taken_over_sends_nothing_twice(
    app: App, db_url: str, capture: CaptureServer, botapi: BotApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A firing stuck on Telegram is re-armed as stalled and fired by another process; that one reaches
    only whom the first had not, and the first one's late end (its send timed out) leaves the second
    one's result alone."""
    monkeypatch.setattr(followups_notices, "SEND_TIMEOUT", 2.0)
    _, fid, _, _ = await reminder(app)
    capture.handler.clear()
    due = T0 + timedelta(hours=1)
    first = asyncio.create_task(fire(app, fid, due))
    for _ in range(200):  # until the first firing's Telegram message hangs (its email went out)
        if botapi.sent(CHAT):
            break
        await asyncio.sleep(0.01)
    assert len(botapi.sent(CHAT)) == 1 and len(capture.messages()) == 1
    assert (await row(app, fid)).data == {"notified": ["email:1"]}  # recorded before the stall
    later = due + STALLED_AFTER + timedelta(minutes=1)
    settings = settings_for(db_url, capture.port)
    channels: dict[str, Channel] = {
        "email": EmailChannel(settings.email),
        "telegram": TelegramChannel(botapi.settings()),
    }
    async with open_app(settings, channels=channels) as other:  # the other process
        async with other.sessions.begin() as session:
            assert await rearm_stalled(session, later) == [fid]
        second = await fire(other, fid, later)
    assert second is not None and second.result == "reminder sent; sent to olga"
    late = await first
    assert late is not None and late.result.startswith("superseded: another firing took over")
    f = await row(app, fid)
    assert f.result == "reminder sent; sent to olga" and f.fired_at == later
    assert (f.data or {})["notified"] == ["email:1", "telegram:1"]
    assert [m.rcpt_tos for m in capture.messages()] == [("olga@example.org",)]  # one email
    # one Telegram message delivered: the stalled request was abandoned unanswered
    assert [b for _, chat, b in botapi.answered if chat == CHAT and b != "stall"] == ["ok"]


@pytest.mark.botapi_options(script={CHAT: ["stall", "ok"]})
async def test_a_stalled_send_is_bounded_and_retried(
    app: App, capture: CaptureServer, botapi: BotApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivering never outlasts the stall window: a send with no answer is given up and retried."""
    assert followups_notices.DELIVER_BUDGET < STALLED_AFTER.total_seconds() / 2
    monkeypatch.setattr(followups_notices, "SEND_TIMEOUT", 0.2)
    _, fid, _, _ = await reminder(app)
    capture.handler.clear()
    first = await fire(app, fid, T0 + timedelta(hours=1))
    assert first is not None
    # no answer: the message may have arrived, an unknown outcome, retried once after the grace
    assert first.result == "retrying at 2030-03-20T09:15:00+00:00: olga (telegram): no answer within 0.2 s"
    await asyncio.sleep(1.0)  # the channel's per-chat interval
    second = await fire(app, fid, T0 + timedelta(minutes=75))
    assert second is not None and second.result == "reminder sent; sent to olga"
    assert len(capture.messages()) == 1


@pytest.mark.botapi_options(script={CHAT: ["retry_after=120", "ok"]})
async def test_a_notice_honours_telegrams_retry_after(
    app: App, capture: CaptureServer, botapi: BotApiServer
) -> None:
    """Notices follow the delivery retry policy: Telegram's flood wait is honoured (it was
    retried after a fixed 30 s, into the same flood wait)."""
    _, fid, _, _ = await reminder(app)
    now = T0 + timedelta(hours=1)
    first = await fire(app, fid, now)
    assert first is not None and first.result.startswith("retrying at ")
    due = (await row(app, fid)).due_at
    assert now + timedelta(seconds=120) <= due <= now + timedelta(seconds=121)


@pytest.mark.botapi_options(script={CHAT: ["stall", "stall", "ok"]})
async def test_a_second_unknown_outcome_gives_up(
    app: App, capture: CaptureServer, botapi: BotApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for alerts: an unknown outcome (no answer; it may have arrived) is retried once, never
    again, so an officer gets at most two copies (it was retried up to five times)."""
    monkeypatch.setattr(followups_notices, "SEND_TIMEOUT", 0.2)
    _, fid, _, _ = await reminder(app)
    first = await fire(app, fid, T0 + timedelta(hours=1))
    assert first is not None and first.result.startswith("retrying at 2030-03-20T09:15:00+00:00")
    await asyncio.sleep(1.0)  # the channel's per-chat interval
    second = await fire(app, fid, T0 + timedelta(minutes=75))
    assert second is not None
    assert second.result == (
        "reminder sent; sent to olga; gave up on olga (telegram): no answer within 0.2 s"
    )
    f = await row(app, fid)
    assert f.fired_at is not None and (f.data or {})["notified"] == ["email:1"]
    assert len(botapi.sent(CHAT)) == 2
