"""A very large audience: fan-out time, peak memory and whether the send rate holds.

    python bench/million.py [--n 1000000] [--postgres URL] [--connections 16] [--fanout-only]

Against the low-CPU SMTP sink (bench/smtp_sink.py) in its own process: inserts N contacts,
times the fan-out of one alert into N outbox rows, then sends them all through the real
dispatcher (claim → build → pooled SMTP → batched tracking) and prints the send rate over the
first and the last 10% of the messages, and this process's peak RSS during the fan-out and
the send (the high-water mark is reset after the contacts are inserted: that set-up is the
bench's, not the service's). Run it at 100,000 and at 1,000,000: the difference of the two
peaks is what the extra 900,000 recipients cost in memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench
from alerts.app import channel_concurrency
from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, Settings
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_read_sessionmaker, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert
from bench.fanout import CpuMeter, make_database, prepare, rss_mb, start_server
from channels.email import EmailChannel


class Clocked:
    """An EmailChannel that notes when each hundredth of the messages has been accepted
    (101 numbers, whatever N: the measurement must not grow with the audience)."""

    def __init__(self, channel: EmailChannel, n: int) -> None:
        self.channel = channel
        self.name = channel.name
        self.step = max(1, n // 100)
        self.sent = 0
        self.marks = [time.perf_counter()]

    async def open(self) -> None:
        await self.channel.open()

    async def close(self) -> None:
        await self.channel.close()

    async def send(self, message: RenderedMessage) -> Outcome:
        outcome = await self.channel.send(message)
        if outcome.kind is OutcomeKind.SENT:
            self.sent += 1
            if self.sent % self.step == 0:
                self.marks.append(time.perf_counter())
        return outcome

    def rate(self, first: int, last: int) -> float:
        """Messages per second between the first-th and the last-th hundredth."""
        return (last - first) * self.step / (self.marks[last] - self.marks[first])


def peak_rss_mb() -> float:
    """This process's resident high-water mark (VmHWM), in MB: unlike getrusage's, resettable."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return rss_mb()


def reset_peak_rss() -> bool:
    """Start a new high-water mark from the current RSS (Linux: writing 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def run(args: argparse.Namespace) -> None:
    sink, port = start_server("smtp_sink.py")
    url, drop = await make_database(args.postgres)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        started = time.perf_counter()
        alert_id = await prepare(sessions, args.n, ("email",))
        print(f"{args.n:,} contacts inserted in {time.perf_counter() - started:.1f} s", flush=True)
        # the bench's own set-up (a million ORM objects) is not the service's memory: measure
        # the fan-out and the send from here, from what the process holds now
        setup_peak = peak_rss_mb()
        reset = reset_peak_rss()
        started = time.perf_counter()
        async with sessions.begin() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            created = await publish(session, alert, now=utcnow())
        fanout = time.perf_counter() - started
        assert created == args.n, created
        print(
            f"fan-out into the outbox on {'postgresql' if args.postgres else 'sqlite'}: {fanout:.1f} s",
            flush=True,
        )
        if args.fanout_only:
            return
        settings = Settings().replace("email", port=port, pool_size=args.connections)
        email = Clocked(EmailChannel(settings.email), args.n)
        await email.open()
        dispatcher = Dispatcher(
            sessions=sessions,
            reads=make_read_sessionmaker(engine),
            channels={"email": email},  # type: ignore[dict-item]
            builder=MessageBuilder(Renderer(), public_url="http://127.0.0.1:8080", domain="localhost"),
            settings=DispatcherSettings(),
            concurrency=channel_concurrency(settings),
            alert_id=alert_id,
            publish_scheduled=False,
        )
        meter = CpuMeter(url)
        await meter.start()
        started = email.marks[0] = time.perf_counter()
        await dispatcher.run_until_done(alert_id)
        elapsed = time.perf_counter() - started
        own, db = await meter.stop()
        await email.close()
        assert email.sent == args.n, email.sent
        first, last = email.rate(0, 10), email.rate(90, 100)
        print(f"sent {args.n:,} in {elapsed:.0f} s: {args.n / elapsed:,.0f} messages/s")
        print(
            f"send rate, first 10%: {first:,.0f}/s; last 10%: {last:,.0f}/s (last/first {last / first:.0%})"
        )
        print(
            f"CPU per 1,000 delivered: {(own + db) * 1000 / args.n:.3f} s "
            f"(database backends {db * 1000 / args.n:.3f} s)"
        )
        if reset:
            print(
                f"peak RSS during fan-out and send: {peak_rss_mb():.0f} MB "
                f"(set-up of the contacts: {setup_peak:.0f} MB)"
            )
        else:
            print(f"peak RSS: {rss_mb():.0f} MB (set-up included: no /proc/self/clear_refs)")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        await engine.dispose()
        sink.terminate()
        sink.wait()
        await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="URL", help="a fresh database on this PostgreSQL server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fanout-only", action="store_true", help="stop after the fan-out")
    bench.run(run(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
