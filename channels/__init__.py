"""Delivery channel adapters: ``build_channels`` makes the configured ones (nothing registers itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts.core.channels import ALWAYS_CONFIGURED, ChannelName

if TYPE_CHECKING:
    from alerts.core.config import Settings
    from channels.base import Channel


def configured_channels(settings: Settings) -> frozenset[str]:
    """The channels this configuration can send on (email and press always)."""
    names = {c.value for c in ALWAYS_CONFIGURED}
    if settings.telegram.token:
        names.add(ChannelName.TELEGRAM.value)
    if settings.webhook.url:
        names.add(ChannelName.WEBHOOK.value)
    return frozenset(names)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """One adapter per configured channel, built from its config section.

    Email and press share one SMTP connection pool (the email channel closes it).
    """
    # imported here: a command that sends nothing (``alerts alert status``) never loads the
    # SMTP, DKIM and Telegram libraries
    from channels.email import EmailChannel, dkim_from_settings
    from channels.press import PressChannel

    dkim = dkim_from_settings(settings.email)
    email = EmailChannel(settings.email, dkim=dkim)
    out: dict[str, Channel] = {
        ChannelName.EMAIL.value: email,
        ChannelName.PRESS.value: PressChannel(settings.email, settings.press, dkim=dkim, pool=email.pool),
    }
    if settings.telegram.token:
        from channels.telegram import TelegramChannel

        out[ChannelName.TELEGRAM.value] = TelegramChannel(
            settings.telegram, timeout=settings.telegram.timeout
        )
    if settings.webhook.url:
        from channels.webhook import WebhookChannel

        out[ChannelName.WEBHOOK.value] = WebhookChannel(settings.webhook)
    return out
