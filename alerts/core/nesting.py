"""Structured text people send (case data as TOML, API bodies as JSON): bounded in size and
depth before any parser or walker can recurse through it.

``tomllib`` is recursive: ``a = [[[…]]]`` 500 deep raises ``RecursionError`` (a 500 and
thousands of log lines a request). ``toml_depth`` finds the deepest nesting of arrays and
inline tables by scanning the text once, without recursion (strings and comments skipped),
so ``load_toml`` refuses such a document before parsing it. Dotted keys (``a.b.c… = 1``) nest
without recursing in the parser; ``check_depth`` measures the parsed value, iteratively, for
them and for JSON, so nothing later (validation, JSON columns, the editor) recurses deeply.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

from alerts.core.errors import ValidationError

#: Deepest nesting accepted (tables and lists): a real case is about 4 deep.
MAX_DEPTH = 32
#: Longest TOML document accepted, in characters.
MAX_TOML = 200_000

_QUOTES = ('"""', "'''", '"', "'")


def toml_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in TOML ``text`` outside strings and comments (an
    upper bound: table headers count too). Never recurses; malformed text gives some number,
    and the parser then says what is wrong."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        quote = next((q for q in _QUOTES if text.startswith(q, i)), None)
        if quote is not None:
            i = _string_end(text, i + len(quote), quote)
            continue
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def _string_end(text: str, i: int, quote: str) -> int:
    """The index just past the string that began before ``i`` (the end of text if unclosed)."""
    escapes = quote[0] == '"'
    single_line = len(quote) == 1
    n = len(text)
    while i < n:
        if escapes and text[i] == "\\":
            i += 2
            continue
        if single_line and text[i] == "\n":
            return i  # an unclosed one-line string ends at the line (the parser will say so)
        if text.startswith(quote, i):
            return i + len(quote)
        i += 1
    return n


def check_depth(value: Any, field: str, *, limit: int = MAX_DEPTH) -> None:
    """ValidationError naming ``field`` when ``value`` (dicts and lists) nests deeper than ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth >= limit:
            raise too_deep(field, limit)
        stack.extend((child, depth + 1) for child in children)


def too_deep(field: str, limit: int = MAX_DEPTH) -> ValidationError:
    """The refusal of a value nested deeper than ``limit``."""
    return ValidationError(
        f"{field}: nested deeper than {limit} levels", details={"field": field, "limit": limit}
    )


def load_toml(text: str, field: str) -> dict[str, Any]:
    """TOML ``text`` parsed, once bounded in size and depth; ValidationError naming ``field``
    (and the line of a syntax error)."""
    if len(text) > MAX_TOML:
        raise ValidationError(
            f"{field}: longer than {MAX_TOML} characters", details={"field": field, "limit": MAX_TOML}
        )
    if toml_depth(text) > MAX_DEPTH:
        raise too_deep(field)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{field}: not valid TOML: {exc}", details={"field": field}) from None
    check_depth(data, field)
    return data
