"""kill -9 a worker in the middle of a fan-out, restart it, count repeats per recipient.

    python bench/crash.py [--n 5000] [--kill-after 1.0]

A recording SMTP server in this process sees every message. The worker (`alerts worker`, a
real process) is killed with SIGKILL mid-send; a second one is started and finishes the
alert once the dead worker's leases expire. Prints: recipients lost (must be 0), repeats,
and the bound DESIGN.md allows — messages in flight at the kill (the SMTP pool) plus what
was sent since the last batched flush of outcomes (rate × flush interval).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench
from alerts.cli.capture import CaptureServer
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert
from tests.factories import add_contacts, approved_alert, make_users


async def prepare(url: str, n: int) -> int:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, n)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())
        alert_id = alert.id
    await engine.dispose()
    return alert_id


async def alert_status(url: str, alert_id: int) -> str:
    engine = create_engine(url)
    async with make_sessionmaker(engine)() as session:
        alert = await session.get(Alert, alert_id)
        status = alert.status if alert else "missing"
    await engine.dispose()
    return status


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kill-after", type=float, default=1.0, help="seconds of sending before SIGKILL")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="alerts-crash-")
    url = f"sqlite+aiosqlite:///{folder}/crash.db"
    alert_id = await prepare(url, args.n)
    async with CaptureServer(limit=args.n * 2) as smtp:
        env = {
            **os.environ,
            "ALERTS_DATABASE_URL": url,
            "ALERTS_EMAIL_PORT": str(smtp.port),
            "ALERTS_DISPATCHER_LEASE_SECONDS": "3",
            "ALERTS_SERVER_SECRET_KEY": "bench-secret-0123456789abcdef",
            "ALERTS_EMAIL_POOL_SIZE": "16",
        }

        async def worker() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alerts",
                "worker",
                cwd=folder,
                env=env,
                stderr=asyncio.subprocess.DEVNULL,
            )

        first = await worker()
        while not smtp.messages():
            await asyncio.sleep(0.01)
        await asyncio.sleep(args.kill_after)
        before_kill = len(smtp.messages())
        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed_at = time.monotonic()
        second = await worker()
        while await alert_status(url, alert_id) != "sent":
            await asyncio.sleep(0.2)
        recovered = time.monotonic() - killed_at
        second.send_signal(signal.SIGTERM)
        await second.wait()
        counts = collections.Counter(m.rcpt_tos[0] for m in smtp.messages())
    lost = args.n - len(counts)
    repeats = sum(c - 1 for c in counts.values())
    rate = before_kill / args.kill_after
    print(f"recipients {args.n:,}; killed after {before_kill:,} messages ({rate:,.0f}/s)")
    print(f"lost: {lost}; repeated: {repeats}; finished {recovered:.1f} s after the kill (lease 3 s)")
    print(
        f"target bound: 16 in flight + 100 ms of sending ({rate * 0.1:.0f}) = {16 + rate * 0.1:.0f} repeats"
    )


if __name__ == "__main__":
    bench.run(main())
