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

import array
import functools
import re
import sys
from dataclasses import dataclass
from typing import Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES

from alerts.core.telegram import HINT, USERNAME_MAX, USERNAME_MIN
from alerts.core.text import LINE_BREAK, REFUSED_IN_LINE, REFUSED_IN_TEXT

Schema = dict[str, Any]
#: A schema's own refusal when its ``anyOf``/``oneOf``/``not`` fails: ``{"field", "message"}``, the words
#: the rule behind it uses (an extension keyword: JSON Schema validators ignore it).
REFUSAL = "x-refusal"
#: How the fields under a schema are named in refusals, e.g. ``"case data"``: ``case data:
#: facts.en[2]``, as the rule behind it names them (an extension keyword too).
PATH = "x-path"


def _escape(code: int) -> str:
    # BMP characters as \uXXXX (Python, ECMA-262 and Rust read it alike); the few beyond it
    # (the noncharacters U+1FFFE…) as themselves, which every engine reads.
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


def _ranges(chars: list[int]) -> str:
    """A regex class body for these code points."""
    out, i = [], 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and chars[j + 1] == chars[j] + 1:
            j += 1
        first, last = chars[i], chars[j]
        out.append(_escape(first) + (f"-{_escape(last)}" if last > first else ""))
        i = j + 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Classes:
    """Regex class bodies: what one-line and multi-line text refuse, and the whitespace each
    may hold (what ``str.strip`` removes)."""

    refused: str
    text_refused: str
    line_space: str
    text_space: str


@functools.cache
def _classes() -> _Classes:
    # Every character but the surrogates (no JSON text holds a lone surrogate that a decoder
    # lets through, nor can most regex engines name one), scanned once, on first use. Line
    # breaks and whitespace are all in the BMP; beyond it both rules refuse the same characters
    # (the noncharacters), so that part is scanned once (tests/web/test_schema.py checks both).
    bmp = _characters(range(0xD800), range(0xE000, 0x10000))
    beyond = {ord(m.group()) for m in REFUSED_IN_LINE.finditer(_characters(range(0x10000, 0x110000)))}

    def matching(pattern: str | re.Pattern[str]) -> set[int]:
        return {ord(m.group()) for m in re.finditer(pattern, bmp)}

    whitespace = matching(r"\s")  # Python's \s: exactly what str.strip removes
    in_line = matching(REFUSED_IN_LINE) | beyond
    in_text = (matching(REFUSED_IN_TEXT) - matching(LINE_BREAK)) | beyond  # breaks become LF
    return _Classes(
        refused=_ranges(sorted(in_line)),
        text_refused=_ranges(sorted(in_text)),
        line_space=_ranges(sorted(whitespace - in_line)),
        text_space=_ranges(sorted(whitespace - in_text)),
    )


def _characters(*spans: range) -> str:
    """The characters of these code point ranges, as one string (built in C: a join of chr()
    over a million code points takes a second)."""
    codes = array.array("I")
    for span in spans:
        codes.extend(span)
    return codes.tobytes().decode(f"utf-32-{sys.byteorder[0]}e")


def line(max_length: int, *, blank: bool = False, nullable: bool = False, refuse: str = "") -> Schema:
    """A one-line text field; ``blank``: empty or spaces allowed (they mean "none"); ``refuse``:
    characters refused besides the control characters (a list name's ``;``)."""
    classes = _classes()
    refused = classes.refused + re.escape(refuse)
    space = classes.line_space
    pattern = f"^[^{refused}]*$" if blank else f"^[^{refused}]*[^{refused}{space}][^{refused}]*$"
    return {
        "type": ["string", "null"] if nullable else "string",
        "maxLength": max_length,
        "pattern": pattern,
    }


def text(max_length: int, *, blank: bool = True) -> Schema:
    """A multi-line text field (notes, summaries); ``blank``: empty or whitespace allowed."""
    classes = _classes()
    refused, space = classes.text_refused, classes.text_space
    pattern = f"^[^{refused}]*$" if blank else f"^[^{refused}]*[^{refused}{space}][^{refused}]*$"
    return {"type": "string", "maxLength": max_length, "pattern": pattern}


def is_text_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is one of ``text``'s (so a refusal names a control character as
    multi-line text counts them)."""
    return pattern.startswith(f"^[^{_classes().text_refused}]")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in word)


#: An email address as email_validator takes it: the format, and none of the special-use
#: domains it refuses (``x@host.test``, ``x@localhost``: nobody can receive mail there).
EMAIL_ADDRESS: Schema = {
    "type": "string",
    "format": "email",
    "maxLength": 320,
    "not": {"pattern": "[@.](?:" + "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)) + ")\\.?$"},
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
