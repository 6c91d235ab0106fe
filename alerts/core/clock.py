"""Aware-UTC time helpers, shared by every module."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from alerts.core.errors import ValidationError
from alerts.core.msgids import N_


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


def from_local(value: datetime, zone: tzinfo, *, field: str) -> datetime:
    """A wall-clock time in ``zone`` as aware UTC; ValidationError naming ``field`` for a time
    that never happens there (the hour the clocks skip in spring) or happens twice (the hour
    they repeat in autumn): moving it an hour, or picking one, would send at a time nobody chose."""
    naive = value.replace(tzinfo=None)
    first, second = (naive.replace(tzinfo=zone, fold=fold) for fold in (0, 1))
    skipped = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive
    if skipped or first.utcoffset() != second.utcoffset():
        said = (
            N_(
                "%(field)s: %(time)s does not exist in %(zone)s (the clocks skip that hour); "
                "pick another time"
            )
            if skipped
            else N_(
                "%(field)s: %(time)s happens twice in %(zone)s (the clocks go back that hour); "
                "pick another time"
            )
        )
        raise ValidationError.said(
            said, details={"field": field}, field=field, time=naive.strftime("%Y-%m-%d %H:%M"), zone=str(zone)
        )
    return first.astimezone(UTC)
