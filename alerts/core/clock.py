"""Aware-UTC time helpers, shared by every module."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.core.errors import ValidationError


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """A time as the service writes it in JSON (ISO 8601), or None."""
    return value.isoformat() if value is not None else None


def parse_when(text: str, *, field: str = "time") -> datetime:
    """Parse an ISO-8601 time; a naive one is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not an ISO-8601 date and time.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00: past either end
        return datetime.min.replace(tzinfo=UTC) if value.year == 1 else datetime.max.replace(tzinfo=UTC)
