"""The first message in a blink: from a send request to the first message at the SMTP server.

    python bench/first_message.py [--sends 20] [--contacts 5]
                                  [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                                  [--skip-sqlite] [--code DIR]

For SQLite (a fresh file) and PostgreSQL (a fresh database per run): ``alerts serve`` runs in
its own process, mailing a recording SMTP sink on loopback that runs in this process
(bench/smtp_sink.py, with the arrival time of every message). ``--sends`` approved alerts are
sent one after another through the API (``POST /api/v1/alerts/ID/send``), then as many through
the CLI (``alerts alert send ID``), each once the previous one's messages have all arrived.
Printed, p50 / p95 / max in milliseconds:

- API: request sent → first message at the sink (and the request's own duration, and the
  response → first message: the dispatcher's part once the send is committed);
- CLI: command started → first message (including the CLI's start-up), and the action's
  time (``published_at``, stamped in the sending transaction) → first message: what the
  wake-up itself costs from another process;
- the yardstick: plain aiosmtplib delivering one message to the same sink, on an open
  connection and with a new connection.

``--code DIR``: run ``alerts serve`` and the CLI from another checkout (``git archive main |
tar -x -C DIR``) for a before/after comparison in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.accounts.users import new_token
from alerts.core.clock import utcnow
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert
from bench.fanout import make_database
from bench.smtp_sink import SinkProtocol, SinkStats
from tests.factories import add_contacts, approved_alert, make_users

SECRET = "bench-first-message-secret-0123456789"


@dataclass
class TimedStats(SinkStats):
    """The sink's counters, and when each message arrived (monotonic and wall clock)."""

    arrivals: list[tuple[float, float]] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "messages" and value:
            self.arrivals.append((time.monotonic(), time.time()))
        super().__setattr__(name, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"p50 {statistics.median(ms):7.1f}  p95 {pct(ms, 0.95):7.1f}  max {max(ms):7.1f} ms"


async def prepare(url: str, alerts: int, contacts: int) -> tuple[str, list[int]]:
    """Users, contacts, ``alerts`` approved alerts; returns the officer's API token and the ids."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine).begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, contacts)
            ids = []
            for _ in range(alerts):
                ids.append((await approved_alert(session, author=officer, reviewer=reviewer)).id)
            token = await new_token(session, officer, now=utcnow())
        return token, ids
    finally:
        await engine.dispose()


async def prepare_with(code: str, url: str, alerts: int, contacts: int) -> tuple[str, list[int]]:
    """``prepare`` run by another checkout's code (its models and migrations), in a child process."""
    script = "\n".join(
        [
            "import asyncio, json, sys",
            "sys.path[:0] = [sys.argv[1]]",
            "from alerts.accounts.users import new_token",
            "from alerts.core.clock import utcnow",
            "from alerts.store.db import create_engine, make_sessionmaker",
            "from alerts.store.migrate import upgrade",
            "from tests.factories import add_contacts, approved_alert, make_users",
            inspect.getsource(prepare),
            "print(json.dumps(asyncio.run(prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))))",
        ]
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(Path(code).resolve()),
        url,
        str(alerts),
        str(contacts),
        cwd=str(Path(code).resolve()),
        env={**os.environ, "PYTHONPATH": str(Path(code).resolve())},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    assert child.returncode == 0, "preparing the database with the other checkout failed"
    token, ids = json.loads(out.decode().strip().splitlines()[-1])
    return str(token), [int(i) for i in ids]


async def published_at(url: str, alert_id: int) -> datetime:
    engine = create_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None and alert.published_at is not None
            return alert.published_at
    finally:
        await engine.dispose()


async def wait_for(stats: TimedStats, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stats.messages < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink has {stats.messages} messages, waiting for {count}")
        await asyncio.sleep(0.002)


async def yardstick(port: int, sends: int) -> tuple[list[float], list[float]]:
    """aiosmtplib alone: one message on an open connection, and with a connection of its own."""
    message = b"Subject: yardstick\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\nOne message.\r\n"
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench", timeout=30)
    await client.connect()
    warm: list[float] = []
    for _ in range(sends):
        started = time.perf_counter()
        await client.sendmail("a@example.org", ["b@example.org"], message)
        warm.append(time.perf_counter() - started)
    await client.quit()
    cold: list[float] = []
    for _ in range(sends):
        started = time.perf_counter()
        one = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench", timeout=30)
        await one.connect()
        await one.sendmail("a@example.org", ["b@example.org"], message)
        cold.append(time.perf_counter() - started)
        await one.quit()
    return warm, cold


async def one_database(label: str, postgres: str | None, args: argparse.Namespace) -> None:
    url, drop = await make_database(postgres)
    stats = TimedStats()
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(lambda: SinkProtocol(stats), "127.0.0.1", 0)
    sink_port = sink.sockets[0].getsockname()[1]
    web_port = free_port()
    folder = tempfile.mkdtemp(prefix="alerts-first-serve-")
    env = {
        **os.environ,
        "ALERTS_DATABASE_URL": url,
        "ALERTS_EMAIL_PORT": str(sink_port),
        "ALERTS_SERVER_HOST": "127.0.0.1",
        "ALERTS_SERVER_PORT": str(web_port),
        "ALERTS_SERVER_SECRET_KEY": SECRET,
    }
    env.pop("ALERTS_CONFIG", None)
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    serve: asyncio.subprocess.Process | None = None
    try:
        if args.code:  # that checkout's migrations: its serve refuses a schema it does not know
            token, ids = await prepare_with(args.code, url, 2 * args.sends, args.contacts)
        else:
            token, ids = await prepare(url, 2 * args.sends, args.contacts)
        serve = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alerts",
            "serve",
            cwd=folder,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{web_port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(300):
                try:
                    async with http.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("alerts serve did not become ready within 30 s")
            await asyncio.sleep(2.0)  # idle: the dispatcher waits at its longest poll
            api_first, api_request = [], []
            for alert_id in ids[: args.sends]:
                seen = stats.messages
                started = time.monotonic()
                async with http.post(f"{base}/api/v1/alerts/{alert_id}/send", json={}) as response:
                    assert response.status == 202, await response.text()
                api_request.append(time.monotonic() - started)
                await wait_for(stats, seen + args.contacts)
                api_first.append(stats.arrivals[seen][0] - started)
                await asyncio.sleep(args.pause)
        cli_first, cli_action, cli_command = [], [], []
        for alert_id in ids[args.sends :]:
            seen = stats.messages
            started = time.monotonic()
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alerts",
                "alert",
                "send",
                str(alert_id),
                "--as",
                "olga",
                cwd=folder,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, errors = await cli.communicate()
            assert cli.returncode == 0, f"alerts alert send {alert_id} failed: {errors.decode()}"
            cli_command.append(time.monotonic() - started)
            await wait_for(stats, seen + args.contacts)
            cli_first.append(stats.arrivals[seen][0] - started)
            at = await published_at(url, alert_id)
            cli_action.append(stats.arrivals[seen][1] - at.timestamp())
            await asyncio.sleep(args.pause)
        warm, cold = await yardstick(sink_port, args.sends)
        print(f"{label}: {args.sends} sends each, {args.contacts} recipients per alert")
        print(f"  API  request → first message          {summary(api_first)}")
        print(f"       (the request itself               {summary(api_request)})")
        after_reply = [first - request for first, request in zip(api_first, api_request, strict=True)]
        print(f"       response → first message          {summary(after_reply)}")
        print(f"  CLI  command start → first message    {summary(cli_first)}")
        print(f"       sending transaction → first msg   {summary(cli_action)}")
        print(f"       (the command itself               {summary(cli_command)})")
        print(f"  yardstick: aiosmtplib, open connection {summary(warm)}")
        print(f"             aiosmtplib, new connection  {summary(cold)}")
    finally:
        if serve is not None and serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            await serve.wait()
        sink.close()
        await drop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=5, help="recipients per alert")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between two sends")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--code", help="run serve and the CLI from this checkout instead")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if not args.skip_sqlite:
        await one_database("SQLite", None, args)
    if not args.skip_postgres:
        await one_database("PostgreSQL", args.postgres, args)


if __name__ == "__main__":
    asyncio.run(main())
