"""Delivery channel adapters and their registry (a plain dict; nothing registers itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels.base import Channel

if TYPE_CHECKING:
    from alerts.config import Settings


def build_channels(settings: Settings) -> dict[str, Channel]:
    """One adapter per configured channel, built from its config section."""
    from channels.email import EmailChannel
    from channels.press import PressChannel
    from channels.telegram import TelegramChannel
    from channels.webhook import WebhookChannel

    out: dict[str, Channel] = {
        "email": EmailChannel(settings.email),
        "press": PressChannel(settings.email, settings.press),
    }
    if settings.telegram.token:
        out["telegram"] = TelegramChannel(settings.telegram)
    if settings.webhook.url:
        out["webhook"] = WebhookChannel(settings.webhook)
    return out
