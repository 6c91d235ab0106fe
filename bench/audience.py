"""Who an approved alert will reach, in a large network: the count, and what the alert's page waits.

    python bench/audience.py [--n 1000000] [--postgres URL] [--runs 3]

Inserts N contacts in one list and one approved alert to all of them (bench/fanout.py's
set-up), then, each ``--runs`` times:
- the audience report alone (``overview.audience``: fan-out's own queries, each a scan of
  the network), worked out afresh;
- what the alert's page waits for it (``overview.audience_within`` with the page's
  ``REACH_WAIT``): the whole report if it comes within that, else the wait, after which the
  page shows without it;
- when the page's script has it: the page's wait, then its request for the count's own page,
  which takes up the count the page started (``delivery.audience_reports``).
Before the count was shared, the page waited for the whole report on every view.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench
from alerts.actions import overview
from alerts.app import open_app
from alerts.core.config import Settings
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import User
from alerts.web.ui.alerts import REACH_WAIT
from bench.fanout import make_database, prepare


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts (default 1,000,000)")
    parser.add_argument("--postgres", metavar="URL", help="run on a fresh database on this PostgreSQL server")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url, drop = await make_database(args.postgres)
    try:
        engine = create_engine(url)
        await upgrade(engine)
        started = time.perf_counter()
        alert_id = await prepare(make_sessionmaker(engine), args.n, ("email",))
        await engine.dispose()
        print(
            f"{args.n:,} contacts and an approved alert in {time.perf_counter() - started:.1f} s", flush=True
        )
        async with open_app(Settings().replace("database", url=url), channels={}) as app:
            async with app.reads() as session:
                actor = await session.scalar(select(User).where(User.role == "officer"))
            assert actor is not None
            alone, waited, filled = [], [], []
            for _ in range(args.runs):
                app.reports.keep = 0.0  # each run counts afresh
                t0 = time.perf_counter()
                report = await overview.audience(app, actor, alert_id)
                alone.append(time.perf_counter() - t0)
                assert report.deliveries == args.n, report.deliveries
                app.reports.keep = 10.0
                t0 = time.perf_counter()
                inline = await overview.audience_within(app, actor, alert_id, within=REACH_WAIT)
                waited.append(time.perf_counter() - t0)
                if inline is None:
                    await overview.audience(app, actor, alert_id)  # the page's request for the count
                filled.append(time.perf_counter() - t0)
                await app.reports.close()  # nothing kept for the next run
            print(f"audience report alone: {_ms(alone)}")
            print(f"the alert's page waits (REACH_WAIT {REACH_WAIT} s): {_ms(waited)}")
            print(f"the count on the page after: {_ms(filled)} (started {app.reports.started} counts)")
    finally:
        await drop()


def _ms(values: list[float]) -> str:
    return (
        ", ".join(f"{v * 1000:,.0f}" for v in values)
        + f" ms (median {statistics.median(values) * 1000:,.0f})"
    )


if __name__ == "__main__":
    bench.run(main())
