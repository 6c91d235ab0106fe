"""Loopback SMTP server fixtures (filled in by the email channel work)."""
