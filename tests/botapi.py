"""Loopback Telegram Bot API server fixtures (filled in by the telegram channel work)."""
