"""Row ids as people type them, in a path, a form or a command line: the one rule.

An id is ASCII digits (``\\d`` would also take other scripts' digits, which ``int`` accepts, so
``/alerts/١`` would name alert 1) and at most ``MAX_ID``: a bigger number names no row, and
would overflow the database's integer (a 500 instead of a 404).
"""

from __future__ import annotations

#: The largest id accepted anywhere (exact in JSON numbers; below every id column's limit).
MAX_ID = 2**53
#: A route's id segment: ASCII digits, few enough that it cannot overflow before the check.
ID_PATTERN = "[0-9]{1,16}"


def parse_id(text: str) -> int | None:
    """The id ``text`` names, or None when it is not one (not ASCII digits, or over MAX_ID)."""
    text = text.strip()
    if not text or len(text) > 16 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None
