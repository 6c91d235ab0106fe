"""Throughput of one fan-out with 1 vs 3 `alerts worker` processes on PostgreSQL.

    python bench/scaleout.py [--n 20000] [--workers 1,3] [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

For each worker count: a fresh database on the server, n contacts, an approved alert; the
workers are started and idle; the alert is published and the clock runs until its status is
``sent``. Email goes to the low-CPU sink (bench/smtp_sink.py), so the figure
is the service's, not the SMTP server's. Prints one line per worker count, and checks that
the sink saw exactly n messages (nothing lost, nothing repeated). The sink runs in this
process (it parses nothing, so it costs little CPU).

On one 2-core machine the workers, PostgreSQL and the sink share the same two cores: expect
more workers to add little there; the benchmark shows that they share the work without
repeats, and how throughput scales where there are cores to spare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg
from sqlalchemy import func, select

import bench
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert, Delivery
from bench.smtp_sink import start_sink
from tests.factories import add_contacts, approved_alert, make_users


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def one_run(server: str, n: int, workers: int, sink_port: int) -> dict[str, float]:
    name = f"alerts_scaleout_{uuid.uuid4().hex[:8]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    url = f"{server.rpartition('/')[0]}/{name}"
    engine = create_engine(url)
    procs: list[asyncio.subprocess.Process] = []
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        async with sessions.begin() as session:
            officer, reviewer = await make_users(session)
            for start in range(0, n, 5000):
                await add_contacts(session, min(5000, n - start), start=start)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
        folder = tempfile.mkdtemp(prefix="alerts-scaleout-")
        env = {
            **os.environ,
            "ALERTS_DATABASE_URL": url,
            "ALERTS_EMAIL_PORT": str(sink_port),
            "ALERTS_SERVER_SECRET_KEY": "bench-secret-0123456789abcdef",
        }
        env.pop("ALERTS_CONFIG", None)
        for _ in range(workers):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "alerts",
                    "worker",
                    cwd=folder,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        await asyncio.sleep(3.0)  # every worker up and polling
        started = time.monotonic()
        async with sessions.begin() as session:
            alert = await session.get(Alert, alert.id)
            assert alert is not None
            await publish(session, alert, now=utcnow())
        published = time.monotonic() - started
        while True:
            async with sessions() as session:
                status = (
                    await session.execute(select(Alert.status).where(Alert.id == alert.id))
                ).scalar_one()
            if status == "sent":
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        async with sessions() as session:
            per_worker = (
                (
                    await session.execute(
                        select(func.count())
                        .group_by(Delivery.claimed_by)
                        .where(Delivery.alert_id == alert.id)
                    )
                )
                .scalars()
                .all()
            )
        return {
            "seconds": elapsed,
            "rate": n / elapsed,
            "fanout_seconds": published,
            "busiest_share": max(per_worker) / n,
        }
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            await p.wait()
        await engine.dispose()
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workers", default="1,3", help="comma-separated worker counts (default 1,3)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "ALERTS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    server, stats = await start_sink("127.0.0.1", 0)  # counts messages, parses nothing: low CPU
    port = server.sockets[0].getsockname()[1]
    try:
        for k in (int(x) for x in args.workers.split(",")):
            before = stats.messages
            r = await one_run(args.postgres, args.n, k, port)
            got = stats.messages - before
            print(
                f"{k} worker(s): {args.n:,} recipients in {r['seconds']:.1f} s = {r['rate']:,.0f} msg/s "
                f"(fan-out {r['fanout_seconds']:.2f} s; busiest worker {r['busiest_share']:.0%}); "
                f"sink received {got:,} (lost {max(args.n - got, 0)}, repeated {max(got - args.n, 0)})",
                flush=True,
            )
    finally:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    bench.run(main())
