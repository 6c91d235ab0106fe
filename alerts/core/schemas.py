"""JSON Schema for text people type: the published form of ``core.text``'s and
``core.telegram``'s rules.

The API's OpenAPI document describes its fields with these; ``compose.casedata`` describes a
template family's variables with them. They are derived from the rules' own constants, so a
value these schemas accept passes those rules (a schema may be stricter, never looser): one-line
text holds none of ``REFUSED_IN_LINE``, multi-line text none of ``REFUSED_IN_TEXT`` once its line
breaks are normalised, and a required field something besides whitespace. Patterns spell every
invisible character as ``\\uXXXX``, which Python, ECMA-262 and Rust regexes read alike.
"""

from __future__ import annotations

import re
from typing import Any

from alerts.core.telegram import HINT, USERNAME_MAX, USERNAME_MIN
from alerts.core.text import REFUSED_IN_LINE, REFUSED_IN_TEXT

Schema = dict[str, Any]
#: A schema's own refusal when its ``anyOf``/``oneOf`` fails: ``{"field", "message"}``, the words
#: the rule behind it uses (an extension keyword: JSON Schema validators ignore it).
REFUSAL = "x-refusal"


def _class(pattern: re.Pattern[str]) -> str:
    """The body of a one-class regex (``[...]``) with every non-ASCII or invisible character as
    ``\\uXXXX`` (read alike by Python, ECMA-262 and Rust regexes); lone surrogates dropped (no
    JSON text can hold them, and JSON decoders refuse them before any pattern sees them)."""
    body = pattern.pattern
    assert body.startswith("[") and body.endswith("]"), body
    out = []
    for char in body[1:-1].replace("\ud800-\udfff", ""):
        out.append(char if " " < char < "\x7f" and char not in "\\]^" else f"\\u{ord(char):04x}")
    return "".join(out)


#: One-line text refuses ``core.text.REFUSED_IN_LINE``.
_REFUSED = _class(REFUSED_IN_LINE)
#: Whitespace that ``str.strip`` removes and a one-line field may hold (the rest are refused):
#: a required field needs one character besides these (the actions strip, then refuse empty).
_SPACE = "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"
_TEXT_REFUSED = _class(REFUSED_IN_TEXT)
#: Multi-line text: line breaks are allowed (and normalised), the other refused characters not.
#: CR, VT, FF, NEL and U+2028/9 are line breaks too (``core.text.LINE_BREAK``).
_BREAKS = "\\u000d\\u000b\\u000c\\u0085\\u2028\\u2029"
_TEXT_CHAR = "(?:[^" + _TEXT_REFUSED + "]|[" + _BREAKS + "])"
TEXT_PATTERN = f"^{_TEXT_CHAR}*$"
#: Multi-line text with a character that is neither whitespace nor refused.
NONBLANK_TEXT_PATTERN = f"^{_TEXT_CHAR}*[^{_REFUSED}{_SPACE}]{_TEXT_CHAR}*$"


def line(max_length: int, *, blank: bool = False, nullable: bool = False, refuse: str = "") -> Schema:
    """A one-line text field; ``blank``: empty or spaces allowed (they mean "none"); ``refuse``:
    characters refused besides the control characters (a list name's ``;``)."""
    refused = _REFUSED + re.escape(refuse)
    pattern = f"^[^{refused}]*$" if blank else f"^[^{refused}]*[^{refused}{_SPACE}][^{refused}]*$"
    return {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": max_length,
        "pattern": pattern,
    }


def text(max_length: int, *, blank: bool = True) -> Schema:
    """A multi-line text field (notes, summaries); ``blank``: empty or whitespace allowed."""
    return {
        "type": "string",
        "maxLength": max_length,
        "pattern": TEXT_PATTERN if blank else NONBLANK_TEXT_PATTERN,
    }


#: A Telegram chat id (the Bot API's are at most 52 bits) or an @username.
CHAT_ID_PATTERN = "^-?[1-9][0-9]{0,17}$"
USERNAME_PATTERN = "^@[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*$"
TELEGRAM: Schema = {
    "anyOf": [
        {"type": "null"},
        {"const": ""},
        {"type": "string", "pattern": CHAT_ID_PATTERN},
        {
            "type": "string",
            "pattern": USERNAME_PATTERN,
            "minLength": USERNAME_MIN + 1,
            "maxLength": USERNAME_MAX + 1,
        },
    ],
    "description": "a numeric chat id or an @username; empty or null: none",
    REFUSAL: {"field": "telegram", "message": f"telegram: {HINT}."},
}
