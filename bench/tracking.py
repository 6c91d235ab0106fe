"""The cost of durable tracking alone: claim and record N deliveries, no transport.

    python bench/tracking.py [--n 10000] [--postgres URL] [--batch 500] [--record-batch 100]

Claims the whole outbox in batches of ``--batch`` (as the dispatcher's claimer does) and records
a SENT outcome for each delivery in batches of ``--record-batch`` (as its recorder does every
flush interval), each batch in its own transaction. Prints the wall time and the CPU-seconds
per 1,000 deliveries of this process and of the PostgreSQL backends serving the database: the
part of ``bench/fanout.py``'s figure that the database path costs, without SMTP's noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome
from alerts.delivery.claim import claim_due
from alerts.delivery.publish import load_alert_info
from alerts.delivery.recorder import Result, record
from alerts.delivery.retry import RetryPolicy
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from bench.fanout import CpuMeter, make_database, prepare


async def run(args: argparse.Namespace) -> None:
    url, drop = await make_database(args.postgres)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        alert_id = await prepare(sessions, args.n, ("email",))
        from alerts.delivery.publish import publish
        from alerts.store.models import Alert

        async with sessions.begin() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            await publish(session, alert, now=utcnow())
            info = {alert_id: await load_alert_info(session, alert_id)}
        policy = RetryPolicy.from_settings(DispatcherSettings())
        meter = CpuMeter(url)
        await meter.start()
        claim_s = record_s = 0.0
        done = 0
        while True:
            started = time.perf_counter()
            async with sessions.begin() as session:
                items = await claim_due(
                    session, channel="email", limit=args.batch, worker="bench", lease=timedelta(minutes=5),
                    now=utcnow(), alert_id=alert_id,
                )  # fmt: skip
            claim_s += time.perf_counter() - started
            if not items:
                break
            started = time.perf_counter()
            for i in range(0, len(items), args.record_batch):
                now = utcnow()
                sent = Outcome.sent(provider_id="x", detail="250 OK")
                batch = items[i : i + args.record_batch]
                results = [Result(item=item, outcome=sent, message_id="<m>", at=now) for item in batch]
                async with sessions.begin() as session:
                    await record(session, results, worker="bench", policy=policy, alerts=info, now=now)
            record_s += time.perf_counter() - started
            done += len(items)
        own, db = await meter.stop()
        assert done == args.n, done
        print(f"deliveries: {args.n:,} on {'postgresql' if args.postgres else 'sqlite'}")
        print(
            f"claim: {claim_s * 1e6 / args.n:.0f} µs per delivery (wall); "
            f"record: {record_s * 1e6 / args.n:.0f} µs"
        )
        print(
            f"CPU per 1,000: {(own + db) * 1000 / args.n:.3f} s "
            f"(this process {own * 1000 / args.n:.3f} s + database backends {db * 1000 / args.n:.3f} s)"
        )
        print(f"load average: {os.getloadavg()[0]:.2f}")
    finally:
        await engine.dispose()
        await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--record-batch", type=int, default=100)
    bench.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
