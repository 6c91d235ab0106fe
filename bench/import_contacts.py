"""Benchmark: import a generated contacts CSV (with invalid and duplicate rows) into a fresh database.

    .venv/bin/python bench/import_contacts.py --n 100000
    .venv/bin/python bench/import_contacts.py --n 100000 --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test

Prints rows/s, elapsed seconds, RSS before the import and peak RSS (ru_maxrss). The CSV is
written row by row, so the generator itself adds no memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.contacts.csv_import import import_csv
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade

KINDS = ("authority", "media", "press", "partner", "public")
LANGS = ("en", "fr", "es", "ar", "pt")


def generate(path: Path, n: int, seed: int = 7) -> None:
    """n rows: ~1% invalid, ~2% repeats of an earlier email (other case), a third with Telegram ids."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("name,email,telegram,kind,language,organisation,country,lists\n")
        for i in range(n):
            r = rng.random()
            if r < 0.01:
                out.write(f"Broken {i},broken{i}.example.org,,public,en,,,\n")
                continue
            j = rng.randrange(i) if r < 0.03 and i else i
            email = f"Person.{j}@Example.org" if j != i else f"person.{i}@example.org"
            telegram = str(100000 + i) if i % 3 == 0 else ""
            lists = "urgent-appeals;press" if i % 10 == 0 else f"region-{i % 20}"
            out.write(
                f"Person {i},{email},{telegram},{KINDS[i % 5]},{LANGS[i % 5]},Org {i % 997},"
                f"Country {i % 50},{lists}\n"
            )


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


async def run(url: str, path: Path, n: int, batch_size: int) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        before = rss_mb()
        started = time.perf_counter()
        report = await import_csv(sessions, path, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1000
        print(
            f"{url.split(':')[0]}: {n} rows in {elapsed:.2f} s = {n / elapsed:,.0f} rows/s; "
            f"RSS before {before:.0f} MB, peak {peak:.0f} MB"
        )
        print(f"  {report.summary()}")
    finally:
        await engine.dispose()


async def with_postgres(admin_url: str, path: Path, n: int, batch_size: int) -> None:
    import asyncpg

    name = f"bench_import_{uuid.uuid4().hex[:8]}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            await run(f"{admin_url.rpartition('/')[0]}/{name}", path, n, batch_size)
        finally:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--postgres", metavar="URL", help="also import into a new database on this server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        generate(path, args.n)
        print(f"generated {args.n} rows ({path.stat().st_size / 1e6:.1f} MB)")
        if args.postgres:
            asyncio.run(with_postgres(args.postgres, path, args.n, args.batch_size))
        else:
            asyncio.run(run(f"sqlite+aiosqlite:///{tmp}/bench.db", path, args.n, args.batch_size))


if __name__ == "__main__":
    main()
