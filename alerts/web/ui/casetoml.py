"""Case data as TOML in the editor's textarea: parse (bounded) with tomllib, write back with ``dumps``."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from alerts.core.nesting import load_toml

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def loads(text: str) -> dict[str, Any]:
    """The case data in ``text``, bounded in size and depth before parsing
    (``alerts.core.nesting``); ValidationError naming the line of a syntax error."""
    return load_toml(text, "case data")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value and '"""' not in value and "\\" not in value:
            return '"""\n' + value + '"""'
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        items = [_value(v) for v in value]
        if sum(len(i) for i in items) > 60:
            return "[\n" + "".join(f"  {i},\n" for i in items) + "]"
        return "[" + ", ".join(items) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {type(value).__name__} as TOML")


def dumps(data: Mapping[str, Any], prefix: str = "") -> str:
    """TOML for ``data``: plain values first, then one [table] per nested mapping."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            tables.append((f"{prefix}{_key(key)}", value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines)
    for name, table in tables:
        out += f"\n\n[{name}]\n" + dumps(table, prefix=f"{name}.")
    return out.strip() + "\n"
