"""Log output: ``[logging] format`` text or JSON lines, with the ids of what a record is about,
and never an address, a token or a secret.

The ids come from context variables: ``log_context(alert_id=…, delivery_id=…)`` around a send
(the dispatcher), ``request_id`` around an HTTP request (the web middleware). asyncio copies
the context into each task, so concurrent sends and requests never see each other's ids.

Redaction, on every record of every logger, whatever its level and format (the rule of the
code base stays: addresses are not logged above DEBUG; this is the net under it): e-mail
addresses, Telegram @names and bot tokens, bearer tokens, signed link tokens in paths
(``/unsubscribe/…``, ``/preferences/…``, ``/subscribe/confirm/…``, ``/t/…``), and the configured
secrets themselves (``secret_key``, ``old_secret_keys``, passwords, the bot token, the webhook
secret) are replaced by ``<redacted>`` — in the message and in the traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

from alerts.core.config import Settings

IDS = ("request_id", "alert_id", "delivery_id")
REDACTED = "<redacted>"
_HANDLER = "alerts"

_CONTEXT: ContextVar[Mapping[str, object]] = ContextVar("alerts_log_context", default=MappingProxyType({}))

_PATTERNS = [
    re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
    re.compile(r"(?<![\w.@])@[A-Za-z][A-Za-z0-9_]{3,31}\b"),  # Telegram @channel names
    re.compile(r"(?<!\d)\d{5,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot tokens (also inside /bot… URLs)
    re.compile(r"(?i)\bbearer\s+[^\s,;\"']+"),  # Authorization headers
    # signed tokens in our own link paths (unsubscribe, preferences, confirmations, tracking)
    re.compile(r"(/(?:unsubscribe|preferences|subscribe/confirm|t/[oc])/)[^\s/?\"'<>]+"),
]


class log_context:  # lower case: used like a function, ``with log_context(alert_id=…):``
    """Records logged inside carry these ids (``alert_id``, ``delivery_id``, ``request_id``).

    A class rather than a generator: the dispatcher enters one per message, and a
    ``@contextmanager`` costs twice as much."""

    __slots__ = ("_ids", "_token")

    def __init__(self, **ids: object) -> None:
        self._ids = ids
        self._token: Token[Mapping[str, object]] | None = None

    def __enter__(self) -> None:
        ids = {k: v for k, v in self._ids.items() if v is not None}
        current = _CONTEXT.get()
        self._token = _CONTEXT.set({**current, **ids} if current else ids)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CONTEXT.reset(self._token)
            self._token = None


def current_ids() -> Mapping[str, object]:
    """The ids of the current context."""
    return _CONTEXT.get()


def secrets_of(settings: Settings) -> list[str]:
    """The configured secret values, to be redacted wherever they appear."""
    values = [
        settings.server.secret_key,
        *settings.server.old_secret_keys,
        settings.email.password,
        settings.telegram.token,
        settings.webhook.secret,
    ]
    return [v for v in values if len(v) >= 6]


class Redactor(logging.Filter):
    """Replaces addresses, tokens and the configured secrets in a record's text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        literal = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in literal)) if literal else None

    def redact(self, text: str) -> str:
        """The text with everything that must not be logged replaced."""
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in _CONTEXT.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the known ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in IDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=… alert_id=… delivery_id=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{n}={getattr(record, n)}" for n in IDS if getattr(record, n, None) is not None)
        if not ids:
            return text
        head, newline, rest = text.partition("\n")
        return f"{head} [{ids}]{newline}{rest}"


def make_handler(
    *, format: Literal["text", "json"] = "text", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) through the redactor, in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Redactor(secrets))
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    handler.set_name(_HANDLER)
    return handler


def configure(*, level: int, format: Literal["text", "json"] = "text", secrets: Iterable[str] = ()) -> None:
    """Route every record to stderr through ``make_handler``; called again, replace that handler.

    Like ``logging.basicConfig``, it leaves alone a root logger that someone else has set up
    (an application embedding this one, or pytest's capture).
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == _HANDLER]
    if root.handlers and not ours:
        return
    for old in ours:
        root.removeHandler(old)
    root.addHandler(make_handler(format=format, secrets=secrets))
    root.setLevel(level)
