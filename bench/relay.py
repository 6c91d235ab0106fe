"""Through a real relay: Debian's Postfix on loopback, delivering to a Maildir.

    python bench/relay.py [--n 5000] [--connections 8] [--postgres URL]

Configures and starts a private Postfix instance (as tests/test_postfix_relay.py does: its own
configuration and queue in a temporary folder, smtpd on a free loopback port, every address
at inbox.test delivered to one Maildir), then, in the same run:
- raw aiosmtplib: N messages over ``--connections`` reused sessions, no database;
- our service end to end: N contacts, one alert fanned out and sent by the dispatcher
  (claim → build → pooled SMTP → durable tracking) until every delivery is final;
and prints both rates and their ratio, and checks that Postfix delivered every message into
the Maildir. Needs root (Postfix's master) and the postfix package (apt-get install postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, update

import bench
from alerts.app import channel_concurrency
from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, Settings
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_read_sessionmaker, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert, Contact
from bench.fanout import CpuMeter, make_database, prepare
from bench.raw_smtp import _sample, raw_send
from channels.email import EmailChannel
from tests.test_postfix_relay import POSTFIX, configure, free_port, why_postfix_cannot_run

DOMAIN = "inbox.test"


def delivered(mail: Path) -> int:
    """Messages Postfix has written into the Maildir so far."""
    return sum(1 for _ in (mail / "inbox" / "new").glob("*")) if (mail / "inbox" / "new").exists() else 0


async def wait_delivered(mail: Path, count: int, timeout: float = 300) -> float:
    """Seconds until the Maildir holds ``count`` messages (SystemExit after ``timeout``)."""
    started = time.perf_counter()
    while delivered(mail) < count:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"Postfix delivered {delivered(mail)} of {count} messages in {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def ours(args: argparse.Namespace, port: int) -> tuple[float, float]:
    """Messages/s end to end through the service, and CPU-seconds per 1,000."""
    url, drop = await make_database(args.postgres)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        alert_id = await prepare(sessions, args.n, ("email",))
        async with sessions.begin() as session:
            at = func.replace(Contact.email, "@example.org", f"@{DOMAIN}")
            await session.execute(update(Contact).values(email=at, email_key=at))
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            assert await publish(session, alert, now=utcnow()) == args.n
        settings = Settings().replace(
            "email", port=port, pool_size=args.connections, from_="alerts@alerts.example.org"
        )
        email = EmailChannel(settings.email)
        await email.open()
        dispatcher = Dispatcher(
            sessions=sessions,
            reads=make_read_sessionmaker(engine),
            channels={"email": email},
            builder=MessageBuilder(
                Renderer(), public_url="http://127.0.0.1:8080", domain="alerts.example.org"
            ),
            settings=DispatcherSettings(),
            concurrency=channel_concurrency(settings),
            alert_id=alert_id,
            publish_scheduled=False,
        )
        meter = CpuMeter(url)
        await meter.start()
        started = time.perf_counter()
        await dispatcher.run_until_done(alert_id)
        elapsed = time.perf_counter() - started
        own, db = await meter.stop()
        await email.close()
        return args.n / elapsed, (own + db) * 1000 / args.n
    finally:
        await engine.dispose()
        await drop()


async def run(args: argparse.Namespace) -> None:
    reason = why_postfix_cannot_run()
    if reason is not None:
        raise SystemExit(reason)
    root = Path(tempfile.mkdtemp(prefix="alerts-relay-bench-"))
    root.chmod(0o755)
    relay = configure(root, smtp_port=free_port(), lmtp_port=free_port())
    (root / "cfg" / "mailboxes").write_text(f"@{DOMAIN} inbox/\n")  # every address, one Maildir
    cfg = str(root / "cfg")
    started = subprocess.run([POSTFIX, "-c", cfg, "start"], capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        raise SystemExit(f"Postfix could not start: {started.stderr.strip()}")
    try:
        await asyncio.sleep(1.0)
        messages = [_sample(i) for i in range(args.n)]
        raw = await raw_send("127.0.0.1", relay.smtp_port, messages, args.connections, f"raw@{DOMAIN}")
        raw_drain = await wait_delivered(relay.mail, args.n)
        e2e, cpu = await ours(args, relay.smtp_port)
        e2e_drain = await wait_delivered(relay.mail, 2 * args.n)
    finally:
        subprocess.run([POSTFIX, "-c", cfg, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.n:,} messages through Postfix on loopback, {args.connections} connections")
    print(f"raw aiosmtplib: {raw:,.0f} messages/s accepted (Maildir complete {raw_drain:.1f} s later)")
    where = "postgresql" if args.postgres else "sqlite"
    print(
        f"our service end to end ({where}): {e2e:,.0f} messages/s (Maildir complete {e2e_drain:.1f} s later)"
    )
    print(f"ratio end-to-end / raw: {e2e / raw:.0%}; CPU per 1,000 (ours, with the database): {cpu:.3f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--postgres", metavar="URL", help="a fresh database on this PostgreSQL server")
    bench.run(run(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
