"""End-to-end fan-out benchmark: N recipients through the real service pipeline.

    python bench/fanout.py [--n 10000] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                           [--telegram N] [--telegram-rate-check]

In one run, against local servers in their own processes (bench/smtp_sink.py, a low-CPU
SMTP sink; bench/botapi_server.py, a local Bot API server), it measures:
- fan-out: expanding the audience into N outbox rows (one transaction);
- email end to end: claim → render (cached) → per-recipient build → pooled SMTP → batched
  durable tracking, until every delivery is final;
- the raw transport limit: the same number of SMTP connections sending the same messages
  with plain aiosmtplib and no database — and the ratio of the two;
- our own transport alone (EmailChannel, same connections, no database), which does less per
  message than aiosmtplib's ``sendmail`` and so is the stricter comparison;
- peak RSS of this process after the end-to-end run;
- Telegram (with --telegram N): messages/s with allow_paid_broadcast against the local Bot
  API server, the busiest 1 s window and the smallest gap between two messages to one chat;
  with --telegram-rate-check, how precisely the default 25/s is held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench
from alerts.app import channel_concurrency
from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, Settings
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import Claimed, MessageBuilder
from alerts.delivery.publish import load_alert_info, publish
from alerts.store.db import create_engine, make_read_sessionmaker, make_sessionmaker
from alerts.store.migrate import upgrade
from bench.raw_smtp import channel_send, raw_send
from channels.email import EmailChannel
from channels.telegram import TelegramChannel
from tests.factories import add_contacts, approved_alert, make_users


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU-seconds (user + system) a process has used, from /proc/<pid>/stat; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def loop_cpu() -> float:
    """CPU-seconds of this thread (the event loop's), without aiosqlite's or other threads."""
    return time.thread_time()


def own_cpu() -> float:
    """CPU-seconds of this process, all threads (aiosqlite's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving the run's database (none on SQLite)."""
    if not url.startswith("postgresql"):
        return []
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        name = dsn.rsplit("/", 1)[1]
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


class CpuMeter:
    """CPU-seconds of this process plus the database's backends between start() and stop()."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.before: dict[int, float] = {}
        self.own = 0.0

    async def start(self) -> None:
        self.before = {pid: proc_cpu(pid) for pid in await backend_pids(self.url)}
        self.own = own_cpu()

    async def stop(self) -> tuple[float, float]:
        """(this process's CPU-seconds, the backends' CPU-seconds) since start()."""
        own = own_cpu() - self.own
        backends = 0.0
        for pid in await backend_pids(self.url):
            backends += max(0.0, proc_cpu(pid) - self.before.get(pid, 0.0))
        return own, backends


def start_server(script: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    return proc, int(line[1])


async def make_database(postgres: str | None) -> tuple[str, Any]:
    if postgres:
        import asyncpg

        name = f"alerts_bench_{uuid.uuid4().hex[:8]}"
        dsn = postgres.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

        async def drop() -> None:
            c = await asyncpg.connect(dsn)
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await c.close()

        return postgres.rsplit("/", 1)[0] + "/" + name, drop
    folder = tempfile.mkdtemp(prefix="alerts-bench-")

    async def nothing() -> None:
        return None

    return f"sqlite+aiosqlite:///{folder}/bench.db", nothing


async def prepare(sessions: Any, n: int, channels: tuple[str, ...]) -> int:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        step = 5_000  # the same batches at every N: the setup must not set the peak RSS
        for start in range(0, n, step):
            await add_contacts(session, min(step, n - start), start=start, telegram="telegram" in channels)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=channels)
        alert_id = alert.id
    async with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # what autovacuum does within a minute of a bulk import on a real server (the test
            # server runs without it): the planner gets row counts instead of its guesses, which
            # for a million fresh contacts pick a nested loop over them (seconds slower)
            await session.execute(text("ANALYZE"))
    return alert_id


async def bench_email(args: argparse.Namespace, url: str, smtp_port: int) -> dict[str, float]:
    settings = Settings().replace("email", port=smtp_port, pool_size=args.connections)
    engine = create_engine(url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    alert_id = await prepare(sessions, args.n, ("email",))
    started = time.perf_counter()
    async with sessions.begin() as session:
        from alerts.store.models import Alert

        alert = await session.get(Alert, alert_id)
        assert alert is not None
        created = await publish(session, alert, now=utcnow())
    fanout_s = time.perf_counter() - started
    assert created == args.n, created
    renderer = Renderer()
    builder = MessageBuilder(renderer, public_url="http://127.0.0.1:8080", domain="localhost")
    email = EmailChannel(settings.email)
    await email.open()
    dispatcher = Dispatcher(
        sessions=sessions,
        reads=make_read_sessionmaker(engine),  # as the service's: polls never queue for the write lock
        channels={"email": email},
        builder=builder,
        settings=DispatcherSettings(),
        concurrency=channel_concurrency(settings),
        alert_id=alert_id,
        publish_scheduled=False,
    )
    meter = CpuMeter(url)
    await meter.start()
    loop_before = loop_cpu()
    profiler = None
    spy = None
    if args.py_spy:
        # py-spy attached to this process for the end-to-end send only (all threads: aiosqlite's too)
        spy = subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(os.getpid()),
                "--threads",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                args.py_spy,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
        )
        await asyncio.sleep(1.0)  # py-spy attaches
    if args.profile:
        import cProfile

        # the event loop thread's CPU time: waiting for a core on a loaded machine is not counted
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
    started = time.perf_counter()
    await dispatcher.run_until_done(alert_id)
    e2e_s = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait()
    own_cpu_s, db_cpu_s = await meter.stop()
    loop_cpu_s = loop_cpu() - loop_before
    peak = rss_mb()
    async with sessions() as session:
        from alerts.delivery.tracking import figures

        states = (await figures(session, alert_id))[0]["email"]
        info = await load_alert_info(session, alert_id)
    assert states["sent"] == args.n, states
    # the raw limit, measured now: same connections, same messages, no database
    sample = min(args.n, 20_000)
    messages = []
    for i in range(sample):
        item = Claimed(
            id=i,
            alert_id=alert_id,
            contact_id=i + 1,
            channel="email",
            audience="authority",
            language="en",
            address=f"person{i}@example.org",
            attempts=1,
            unknown_outcomes=0,
            from_state="queued",
            name=f"Person {i}",
            token="t" * 32,
        )
        messages.append(email.build(builder.build(item, info))[1])
    await email.close()
    before = own_cpu()
    raw = await raw_send("127.0.0.1", smtp_port, messages, connections=args.connections)
    raw_cpu = (own_cpu() - before) * 1000 / sample
    # and our own transport alone (EmailChannel over its pool, no database): stricter than the
    # raw limit, because the channel does less per message than aiosmtplib's sendmail
    before = own_cpu()
    channel = await channel_send("127.0.0.1", smtp_port, sample, connections=args.connections)
    channel_cpu = (own_cpu() - before) * 1000 / sample
    await engine.dispose()
    return {
        "fanout_s": fanout_s,
        "e2e_rate": args.n / e2e_s,
        "e2e_s": e2e_s,
        "raw_rate": raw,
        "channel_rate": channel,
        "peak_rss_mb": peak,
        "raw_cpu_per_1000": raw_cpu,
        "channel_cpu_per_1000": channel_cpu,
        "cpu_per_1000": (own_cpu_s + db_cpu_s) * 1000 / args.n,
        "own_cpu_per_1000": own_cpu_s * 1000 / args.n,
        "loop_cpu_per_1000": loop_cpu_s * 1000 / args.n,
        "db_cpu_per_1000": db_cpu_s * 1000 / args.n,
    }


async def bench_telegram(n: int, paid: bool) -> dict[str, Any]:
    proc, port = start_server("botapi_server.py")
    try:
        settings = Settings().replace(
            "telegram", token="123:bench", base_url=f"http://127.0.0.1:{port}/bot", allow_paid_broadcast=paid
        )
        channel = TelegramChannel(settings.telegram)
        await channel.open()
        renderer = Renderer()
        content = renderer.render(
            "urgent-appeal",
            renderer.example("urgent-appeal"),
            audience="public",
            channel="telegram",
            language="en",
            extra={"alert_title": "Bench"},
        )
        from alerts.core.types import Recipient, RenderedMessage

        def message(i: int) -> RenderedMessage:
            return RenderedMessage(
                delivery_id=i,
                alert_id=1,
                content=content,
                message_id=f"<b{i}@x>",
                recipient=Recipient(
                    contact_id=i, name="", address=str(100000 + i), language="en", kind="public"
                ),
            )

        sem = asyncio.Semaphore(settings.telegram.concurrency * 4)

        async def one(i: int) -> None:
            async with sem:
                await channel.send(message(i))

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
        await channel.close()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/stats") as resp:
            stats = await resp.json()
        return {
            "rate": n / elapsed,
            "configured": 1000.0 if paid else settings.telegram.rate_per_second,
            **stats,
        }
    finally:
        proc.terminate()
        proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="recipients (default 10,000)")
    parser.add_argument("--connections", type=int, default=16, help="SMTP connections (default 16)")
    parser.add_argument("--postgres", metavar="URL", help="run on a fresh database on this PostgreSQL server")
    parser.add_argument(
        "--telegram", type=int, default=0, metavar="N", help="also N Telegram messages (paid broadcast)"
    )
    parser.add_argument(
        "--telegram-rate-check", action="store_true", help="also 250 messages at the default 25/s"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the end-to-end send into FILE")
    parser.add_argument(
        "--py-spy", metavar="FILE", help="sample the end-to-end send with py-spy into FILE (raw, all threads)"
    )
    args = parser.parse_args()
    sink, smtp_port = start_server("smtp_sink.py")
    url, drop = await make_database(args.postgres)
    try:
        result: dict[str, Any] = {"n": args.n, "database": "postgresql" if args.postgres else "sqlite"}
        result.update(await bench_email(args, url, smtp_port))
        result["ratio"] = result["e2e_rate"] / result["raw_rate"]
        if args.telegram:
            result["telegram_paid"] = await bench_telegram(args.telegram, paid=True)
        if args.telegram_rate_check:
            result["telegram_default"] = await bench_telegram(250, paid=False)
    finally:
        sink.terminate()
        sink.wait()
        await drop()
    if args.json:
        print(json.dumps(result))
        return
    print(f"recipients: {args.n:,} on {result['database']}")
    print(f"fan-out into the outbox: {result['fanout_s']:.2f} s")
    e2e, raw = result["e2e_rate"], result["raw_rate"]
    print(f"email end to end with durable tracking: {e2e:,.0f} messages/s ({result['e2e_s']:.1f} s)")
    print(f"raw aiosmtplib limit, same run ({args.connections} connections): {raw:,.0f} messages/s")
    print(f"ratio end-to-end / raw: {result['ratio']:.0%}")
    channel = result["channel_rate"]
    print(
        f"EmailChannel alone, no database, same run: {channel:,.0f} messages/s "
        f"(end to end / channel alone: {e2e / channel:.0%})"
    )
    print(f"peak RSS: {result['peak_rss_mb']:.0f} MB")
    print(
        f"CPU per 1,000 delivered: {result['cpu_per_1000']:.3f} s "
        f"(service {result['own_cpu_per_1000']:.3f} s, of which the event loop's thread "
        f"{result['loop_cpu_per_1000']:.3f} s, + database backends {result['db_cpu_per_1000']:.3f} s)"
    )
    print(f"CPU per 1,000 with raw aiosmtplib (no database, no build): {result['raw_cpu_per_1000']:.3f} s")
    print(f"CPU per 1,000 with EmailChannel alone (no database): {result['channel_cpu_per_1000']:.3f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    for key in ("telegram_paid", "telegram_default"):
        if key in result:
            t = result[key]
            print(
                f"telegram ({key}): {t['rate']:,.0f} messages/s against a limit of {t['configured']:,.0f}/s; "
                f"busiest 1 s window {t.get('max_rate_1s')}, smallest gap to one chat {t.get('min_chat_gap')}"
            )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    bench.run(main())
