"""Texts that people read on the pages, made below the web: each is an English msgid with
``%(name)s`` slots, marked with ``N_`` so that ``pybabel extract`` finds it (babel.cfg in
``alerts/web/locales``). The code that makes one keeps it English (the CLI and the API show it
so); the web translates it where it is shown (``alerts.web.i18n``), never this layer.

``Text`` keeps a msgid and its values apart (a value may be a ``Text`` itself, or ``Joined``
texts), and reads as its English with ``str``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Mark ``message`` as a msgid; it is translated where it is shown."""
    return message


@dataclass(frozen=True, slots=True)
class Text:
    """A msgid (marked with ``N_``) and the values of its slots; ``str()`` is the English."""

    msgid: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.msgid % dict(self.values) if self.values else self.msgid


@dataclass(frozen=True, slots=True)
class Joined:
    """Texts shown one after the other, ``separator`` between them."""

    parts: Sequence[Text]
    separator: str = "; "

    def __str__(self) -> str:
        return self.separator.join(str(part) for part in self.parts)


def text(msgid: str, **values: Any) -> Text:
    """``Text(msgid, values)``, written as a call."""
    return Text(msgid, values)
