"""Row ids and other whole numbers as people type them, in a path, a form, a query or a
command line: the one rule.

A number is ASCII digits (``str.isdigit`` and ``\\d`` also take other scripts' digits and
superscripts: ``int("²")`` raises, and ``int("١")`` is 1, so ``/alerts/١`` would name alert 1)
within bounds: an id is at most ``MAX_ID``, since a bigger number names no row and would
overflow the database's integer (a 500 instead of a 404).
"""

from __future__ import annotations

from alerts.core.errors import ValidationError

#: The largest id accepted anywhere (exact in JSON numbers; below every id column's limit).
MAX_ID = 2**53
#: A route's id segment: ASCII digits, few enough that it cannot overflow before the check.
ID_PATTERN = "[0-9]{1,16}"
#: The last page number a paged list accepts (an offset far below any integer's limit).
MAX_PAGE = 100_000
_MAX_DIGITS = 16  # len(str(MAX_ID)); more digits are refused before ``int`` sees them


def _digits(text: str) -> int | None:
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_id(text: str) -> int | None:
    """The id ``text`` names, or None when it is not one (not ASCII digits, or over MAX_ID)."""
    value = _digits(text.strip())
    return value if value is not None and value <= MAX_ID else None


def parse_number(text: str, field: str, *, minimum: int = 0, maximum: int = MAX_ID) -> int:
    """The whole number ``text`` holds (ASCII digits, from ``minimum`` to ``maximum``), or
    ValidationError naming ``field``: every numeric parameter a person sends is read here."""
    value = _digits(text.strip())
    if value is None or not minimum <= value <= maximum:
        raise ValidationError(
            f"{field}: {text[:40]!r} is not a whole number from {minimum} to {maximum}",
            details={"field": field, "minimum": minimum, "maximum": maximum},
        )
    return value
