"""Where a PostgreSQL fan-out's time goes: each statement's duration, and its plan.

    python bench/fanout_probe.py --postgres URL --db NAME [--n 200000] [--explain] [--runs 1] [--drop]

Creates (once) the database NAME on the server of URL with N contacts and one approved
alert (bench/fanout.py's set-up), then runs the fan-out ``--runs`` times, each in a
transaction that is rolled back (the tables are then truncated and vacuumed, so every run
starts from the same empty outbox), printing every statement's wall time. ``--explain``: the
slowest statement again under EXPLAIN (ANALYZE, BUFFERS), rolled back too — its per-node
times and its triggers (foreign keys) show whether the time is the audience query, the
writes, the index maintenance or the checks. Keep NAME between runs to skip the set-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert
from bench.fanout import prepare


async def ensure_database(server: str, name: str, n: int) -> tuple[str, int]:
    dsn = server.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if not exists:
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = server.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    await upgrade(engine)  # a kept database gets the migrations written since
    if exists:
        await engine.dispose()
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        alert_id = await conn.fetchval("SELECT max(id) FROM alerts")
        await conn.close()
        return url, int(alert_id)
    started = time.perf_counter()
    alert_id = await prepare(make_sessionmaker(engine), n, ("email",))
    print(f"{n:,} contacts inserted in {time.perf_counter() - started:.1f} s", flush=True)
    await engine.dispose()
    return url, alert_id


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend on this machine has used (0 if it is elsewhere): on a
    shared machine steadier than the wall time, which waits for the cores."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def reset(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute("TRUNCATE deliveries, delivery_events")
    await conn.execute("VACUUM ANALYZE alerts, deliveries, delivery_events")
    await conn.execute("CHECKPOINT")
    await conn.close()


async def run(args: argparse.Namespace) -> None:
    url, alert_id = await ensure_database(args.postgres, args.db, args.n)
    engine = create_engine(url)
    timings: list[tuple[float, str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info["probe_started"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        timings.append((time.perf_counter() - conn.info.pop("probe_started"), statement, params))

    sessions = make_sessionmaker(engine)
    for run_number in range(args.runs):
        await reset(url)
        timings.clear()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        async with sessions() as session:
            async with session.begin():
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                cpu = backend_cpu(pid)
                alert = await session.get(Alert, alert_id)
                assert alert is not None
                created = await publish(session, alert, now=utcnow())
                inside = time.perf_counter() - started
                cpu = backend_cpu(pid) - cpu
                await session.rollback()
        print(
            f"run {run_number + 1}: {created:,} deliveries in {inside:.2f} s, "
            f"backend CPU {cpu:.2f} s (load {load:.1f})"
        )
        for seconds, statement, _ in sorted(timings, key=lambda t: -t[0])[:5]:
            print(f"  {seconds:7.3f} s  {' '.join(statement.split())[:150]}")
    if args.explain:
        await reset(url)
        slowest = max(timings, key=lambda t: t[0])
        async with engine.connect() as conn:
            transaction = await conn.begin()
            await conn.exec_driver_sql(f"SET LOCAL work_mem = '{args.work_mem}'")
            for setting in args.set or ():
                await conn.exec_driver_sql(f"SET LOCAL {setting}")
            plan = await conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, WAL, TIMING on) " + slowest[1], slowest[2]
            )
            print("\n".join(row[0] for row in plan))
            await transaction.rollback()
    await engine.dispose()
    if args.drop:
        conn = await asyncpg.connect(args.postgres.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True, metavar="URL")
    parser.add_argument("--db", required=True, help="the bench database's name (kept unless --drop)")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--work-mem", default="64MB")
    parser.add_argument("--set", action="append", help="another SET LOCAL for the EXPLAIN, e.g. 'x = y'")
    parser.add_argument("--drop", action="store_true")
    bench.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
