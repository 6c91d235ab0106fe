"""Loopback servers for channel tests: a Telegram Bot API (fixture ``botapi``) and a webhook
receiver that checks the HMAC signature (fixture ``webhook_sink``).

Both are real aiohttp servers on 127.0.0.1, port 0, speaking the real wire protocol.

Bot API behaviour is scripted per chat: ``botapi.script["123"] = ["blocked", "ok"]`` answers
the next two sendMessage calls to chat 123 with those behaviours in order, then ``default``.
``@pytest.mark.botapi_options(script={...}, default="ok", nth={3: "retry_after=1"})`` sets the
same at start; ``nth`` keys are 1-based counts of sendMessage calls over all chats. Behaviours:

- ``ok``: a real ``Message`` result;
- ``retry_after`` / ``retry_after=N``: 429 with ``parameters.retry_after`` (default 3);
- ``blocked``, ``deactivated``, ``kicked``: the 403 texts Telegram sends;
- ``chat_not_found``, ``bad_html``: 400 texts;
- ``migrate=NEW_ID``: 400 with ``parameters.migrate_to_chat_id``;
- ``server_error``: 500; ``stall``: no answer until the test ends.

Like Telegram, every ``sendMessage`` is first checked as Telegram checks it: with
``parse_mode=HTML`` the text is parsed (only Telegram's tags; its entities decoded), and the
text after parsing must hold 1-4096 UTF-16 code units ("message is too long" and "message text
is empty" otherwise, HTTP 400, Telegram's wording). ``BotApiCall.units`` is that length. The
parsing here is written apart from ``alerts.core.telegram``, so the two can disagree.

The webhook sink answers 200 unless ``webhook_sink.script`` holds the next answers: an int
status, ``(status, {headers})`` or ``"stall"``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web

from alerts.core.config import TelegramSettings, WebhookSettings
from channels.webhook import verify_signature

BOT_ID = 7000001
BOT_TOKEN = f"{BOT_ID}:AAHtest-0123456789abcdefghijklmnopqrstu"

# (HTTP status, description, parameters) as the real Bot API sends them.
ERRORS: dict[str, tuple[int, str]] = {
    "blocked": (403, "Forbidden: bot was blocked by the user"),
    "deactivated": (403, "Forbidden: user is deactivated"),
    "kicked": (403, "Forbidden: bot was kicked from the group chat"),
    "chat_not_found": (400, "Bad Request: chat not found"),
    "bad_html": (400, 'Bad Request: can\'t parse entities: unsupported start tag "foo" at byte offset 0'),
    "server_error": (500, "Internal Server Error"),
}


#: Tags Telegram's HTML parse mode knows (https://core.telegram.org/bots/api#html-style).
TELEGRAM_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
}  # fmt: skip
MESSAGE_LIMIT = 4096  # UTF-16 code units of the text after entity parsing


class _Entities(HTMLParser):
    """Telegram HTML → the plain text Telegram keeps (and the first tag it would refuse)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.refused: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS and self.refused is None:
            self.refused = tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def telegram_text(text: str, parse_mode: str | None) -> tuple[str, str | None]:
    """(the text after entity parsing, an error description or None), as Telegram parses it."""
    if (parse_mode or "").upper() != "HTML":
        return text.strip(), None
    parser = _Entities()
    parser.feed(text)
    parser.close()
    if parser.refused is not None:
        return "", f'Bad Request: can\'t parse entities: Unsupported start tag "{parser.refused}"'
    return "".join(parser.text).strip(), None


def utf16_units(text: str) -> int:
    """What Telegram counts: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class BotApiCall:
    """One Bot API request as the server received it."""

    at: float  # time.monotonic() on arrival
    method: str
    chat_id: str
    text: str | None
    reply_to: int | None
    params: dict[str, Any]
    units: int = 0  # UTF-16 code units of the text after entity parsing


@dataclass
class BotApiServer:
    """A running loopback Bot API; see the module docstring."""

    token: str = BOT_TOKEN
    base_url: str = ""
    default: str = "ok"
    script: dict[str, list[str]] = field(default_factory=dict)
    nth: dict[int, str] = field(default_factory=dict)
    calls: list[BotApiCall] = field(default_factory=list)
    answered: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, chat, behaviour)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _message_ids: dict[str, int] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> TelegramSettings:
        """TelegramSettings pointing at this server."""
        values: dict[str, Any] = {"token": self.token, "base_url": self.base_url}
        values.update(overrides)
        return TelegramSettings(**values)

    def sent(self, chat_id: str | None = None) -> list[BotApiCall]:
        """The sendMessage calls (to one chat, if given)."""
        return [c for c in self.calls if c.method == "sendMessage" and chat_id in (None, c.chat_id)]

    def _behaviour(self, chat_id: str) -> str:
        count = len(self.sent())
        if count in self.nth:
            return self.nth[count]
        queue = self.script.get(chat_id)
        return queue.pop(0) if queue else self.default

    async def handle(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        token, method = request.match_info["token"], request.match_info["method"]
        params = await _params(request)
        if token != self.token:
            return _error(401, "Unauthorized")
        if method == "getMe":
            return _ok({"id": BOT_ID, "is_bot": True, "first_name": "Alerts", "username": "alerts_test_bot"})
        if method != "sendMessage":
            return _error(404, "Not Found")
        chat_id = str(params.get("chat_id", ""))
        reply = params.get("reply_parameters")
        reply_to = int(reply["message_id"]) if isinstance(reply, dict) else None
        plain, refused = telegram_text(str(params.get("text", "")), params.get("parse_mode"))
        units = utf16_units(plain)
        self.calls.append(BotApiCall(at, method, chat_id, params.get("text"), reply_to, params, units))
        if refused is not None:
            return _error(400, refused)
        if units > MESSAGE_LIMIT:
            return _error(400, "Bad Request: message is too long")
        if units == 0:
            return _error(400, "Bad Request: message text is empty")
        behaviour = self._behaviour(chat_id)
        self.answered.append((time.monotonic(), chat_id, behaviour))
        name, _, arg = behaviour.partition("=")
        if name == "ok":
            return _ok(self._message(chat_id, params))
        if name == "retry_after":
            seconds = int(arg or 3)
            return _error(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})
        if name == "migrate":
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": int(arg)},
            )
        if name == "stall":
            await self.release.wait()
            return _error(500, "Internal Server Error")
        status, description = ERRORS[name]
        return _error(status, description)

    def _message(self, chat_id: str, params: dict[str, Any]) -> dict[str, Any]:
        self._message_ids[chat_id] = message_id = self._message_ids.get(chat_id, 0) + 1
        if chat_id.startswith("@"):
            chat: dict[str, Any] = {
                "id": -1001000000000 - len(chat_id),
                "type": "channel",
                "title": "Alerts",
                "username": chat_id[1:],
            }
        elif chat_id.startswith("-"):
            chat = {"id": int(chat_id), "type": "supergroup", "title": "Partners"}
        else:
            chat = {"id": int(chat_id), "type": "private", "first_name": "Defender"}
        return {
            "message_id": message_id,
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Alerts", "username": "alerts_test_bot"},
            "chat": chat,
            "date": int(time.time()),
            "text": params.get("text", ""),
        }


async def _params(request: web.Request) -> dict[str, Any]:
    # The Bot API takes JSON or form bodies; in form bodies, objects are JSON-encoded strings.
    if request.content_type == "application/json":
        data: dict[str, Any] = await request.json()
        return data
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        text = str(value)
        try:
            params[key] = json.loads(text) if text[:1] in "{[" or text in ("true", "false") else text
        except ValueError:
            params[key] = text
    return params


def _ok(result: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


@pytest.fixture
async def botapi(request: pytest.FixtureRequest) -> AsyncIterator[BotApiServer]:
    """A loopback Bot API server; behaviour from ``@pytest.mark.botapi_options(...)``."""
    marker = request.node.get_closest_marker("botapi_options")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    server = BotApiServer(
        default=options.pop("default", "ok"),
        script={str(k): list(v) for k, v in options.pop("script", {}).items()},
        nth=dict(options.pop("nth", {})),
    )
    if options:
        raise TypeError(f"unknown botapi_options: {', '.join(options)}")
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", server.handle)
    runner, port = await _serve(app)
    server.base_url = f"http://127.0.0.1:{port}/bot"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST as the webhook sink received it."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    def json(self) -> Any:
        """The decoded JSON body."""
        return json.loads(self.body)


@dataclass
class WebhookSink:
    """A running loopback webhook receiver; see the module docstring."""

    secret: str = "sink-secret-Zq8xV2"
    url: str = ""
    script: list[int | tuple[int, dict[str, str]] | str] = field(default_factory=list)
    requests: list[WebhookRequest] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def settings(self, **overrides: Any) -> WebhookSettings:
        """WebhookSettings pointing at this sink."""
        values: dict[str, Any] = {"url": self.url, "secret": self.secret, "timeout": 2.0}
        values.update(overrides)
        return WebhookSettings(**values)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ok = verify_signature(
            self.secret,
            request.headers.get("X-Alerts-Timestamp", ""),
            body,
            request.headers.get("X-Alerts-Signature", ""),
        )
        self.requests.append(WebhookRequest(time.monotonic(), request.path, dict(request.headers), body, ok))
        answer = self.script.pop(0) if self.script else 200
        if answer == "stall":
            await self.release.wait()
            return web.Response(status=500)
        if not ok:
            return web.json_response({"error": "bad signature"}, status=401)
        status, headers = answer if isinstance(answer, tuple) else (int(answer), {})
        return web.json_response({"status": status}, status=status, headers=headers)


@pytest.fixture
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    """A loopback webhook receiver that records requests and verifies their HMAC."""
    sink = WebhookSink()
    app = web.Application()
    app.router.add_post("/{path:.*}", sink.handle)
    runner, port = await _serve(app)
    sink.url = f"http://127.0.0.1:{port}/hooks/alerts"
    try:
        yield sink
    finally:
        sink.release.set()
        await runner.cleanup()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port on which nothing listens (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port
