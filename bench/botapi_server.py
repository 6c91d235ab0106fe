"""A low-overhead local Telegram Bot API for benchmarks, run in its own process.

    python bench/botapi_server.py --port 0        # prints "ready <port>" once listening

Answers ``POST /bot<token>/sendMessage`` (form or JSON body, any token) at once with a real
``Message`` result, and ``getMe``. It records each call's arrival time per chat, so that:

- ``GET /stats`` returns ``{"calls", "chats", "first", "last", "mean_rate", "max_rate_1s",
  "min_chat_gap"}``: ``max_rate_1s`` is the most calls seen in any 1-second window (sliding,
  not bucketed), ``min_chat_gap`` the shortest time between two calls to one chat (null if no
  chat got two);
- ``POST /reset`` forgets everything recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}


class Recorder:
    """Arrival times of sendMessage calls, overall and per chat."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every call recorded."""
        self.times: list[float] = []
        self.last_by_chat: dict[str, float] = {}
        self.message_ids: dict[str, int] = {}
        self.min_chat_gap: float | None = None

    def record(self, chat_id: str) -> int:
        now = time.monotonic()
        self.times.append(now)
        previous = self.last_by_chat.get(chat_id)
        if previous is not None:
            gap = now - previous
            if self.min_chat_gap is None or gap < self.min_chat_gap:
                self.min_chat_gap = gap
        self.last_by_chat[chat_id] = now
        self.message_ids[chat_id] = message_id = self.message_ids.get(chat_id, 0) + 1
        return message_id

    def stats(self) -> dict[str, Any]:
        times = self.times
        best = start = 0
        for end, t in enumerate(times):  # times are in arrival order, so sorted
            while t - times[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return {
            "calls": len(times),
            "chats": len(self.last_by_chat),
            "first": times[0] if times else None,
            "last": times[-1] if times else None,
            "mean_rate": (len(times) - 1) / span if span else None,
            "max_rate_1s": best,
            "min_chat_gap": self.min_chat_gap,
        }


def make_app(recorder: Recorder) -> web.Application:
    """The aiohttp application answering the Bot API calls and the stats endpoints."""

    async def bot_method(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        raw = await request.read()
        if request.content_type == "application/json":
            params = json.loads(raw)
        else:
            params = dict(parse_qsl(raw.decode()))
        chat_id = str(params.get("chat_id", ""))
        message_id = recorder.record(chat_id)
        chat_number = int(chat_id) if chat_id.lstrip("-").isdigit() else -1001
        result = {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": {"id": chat_number, "type": "private", "first_name": "Bench"},
            "date": int(time.time()),
            "text": params.get("text", ""),
        }
        return web.json_response({"ok": True, "result": result})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(recorder.stats())

    async def reset(request: web.Request) -> web.Response:
        recorder.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", bot_method)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


async def serve(host: str, port: int) -> None:
    """Serve until cancelled; print "ready <port>" once listening."""
    runner = web.AppRunner(make_app(Recorder()), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"ready {runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
