"""How fast the CLI starts: ``alerts --help`` and ``alerts alert status ID`` against ``python -c pass``.

    python bench/cli_start.py [--runs 15] [--code DIR] [--postgres URL]

Each command runs ``--runs`` times in a fresh interpreter (after one warm-up run that writes
the bytecode to a temporary cache: an installed package has its .pyc files, and this checkout's
may not be written, e.g. with PYTHONDONTWRITEBYTECODE). Printed per command: the median and
p95 wall time and the median CPU time (user + system, the figure a busy machine disturbs least),
beside the yardstick ``python -c pass`` measured in the same run. ``status`` reads a real alert
in a fresh SQLite file (or, with ``--postgres``, a fresh PostgreSQL database).

``--code DIR``: run the CLI from another checkout (``git archive main | tar -x -C DIR``), for a
before/after comparison under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from tests.factories import add_contacts, approved_alert, make_users


async def make_database(postgres: str | None, folder: str) -> tuple[str, int]:
    """A fresh database with one approved alert; returns its URL and the alert's id."""
    if postgres:
        import asyncpg

        name = f"alerts_clistart_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(postgres.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = postgres.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite+aiosqlite:///{folder}/cli.db"
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine).begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 3)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            return url, alert.id
    finally:
        await engine.dispose()


async def drop_database(postgres: str, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres.replace("postgresql+asyncpg://", "postgresql://"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


def measure(command: list[str], runs: int, env: dict[str, str], cwd: str) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run (the first, warm-up run is not counted)."""
    walls, cpus = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode().strip()}")
        if i:
            walls.append(wall)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def line(label: str, walls: list[float], cpus: list[float]) -> str:
    ordered = sorted(walls)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"  {label:<28} wall p50 {statistics.median(walls) * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms"
        f"   CPU p50 {statistics.median(cpus) * 1000:6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--code", help="run the CLI from this checkout instead")
    parser.add_argument("--postgres", help="status against a fresh PostgreSQL database on this server")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="alerts-clistart-")
    url, alert_id = asyncio.run(make_database(args.postgres, folder))
    env = {**os.environ, "ALERTS_DATABASE_URL": url, "PYTHONPYCACHEPREFIX": f"{folder}/pycache"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("ALERTS_CONFIG", None)
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    load = os.getloadavg()
    print(f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.runs} runs each; {url.split(':')[0]}")
    python = [sys.executable]
    for label, command in (
        ("python -c pass (yardstick)", [*python, "-c", "pass"]),
        ("alerts --help", [*python, "-m", "alerts", "--help"]),
        (f"alerts alert status {alert_id}", [*python, "-m", "alerts", "alert", "status", str(alert_id)]),
    ):
        print(line(label, *measure(command, args.runs, env, folder)), flush=True)
    if args.postgres:
        asyncio.run(drop_database(args.postgres, url))


if __name__ == "__main__":
    main()
