"""The officers' pages and the API in a large network, with no send running.

    python bench/pages.py [--n 1000000] [--postgres URL] [--runs 3]

Starts `alerts serve` on a fresh database with N contacts in one list, one alert fanned out to
all of them and its deliveries marked sent (what a network looks like after a large send),
one approved alert waiting to be sent, then times each page and API read ``--runs`` times
after one warm-up: the dashboard, the contacts list (first page, a page deep in it, a search),
a contact, the sent alert's page, its deliveries (first page, a page deep in it, a search),
the waiting alert's page, the follow-ups and audit pages, and the API's contacts, alerts,
deliveries (by offset and past an id), stats and lists; the public archive and feed. Prints
the median and the slowest of each, slowest first: what an officer waits for as the network
grows; then the time to export every delivery as CSV.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select, text, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench
from alerts.accounts import users
from alerts.core.clock import utcnow
from alerts.store.models import Alert, Delivery, User
from bench.fanout import make_database, start_server
from tests.factories import approved_alert
from tests.reliability.conftest import DB, Services
from tests.web import PASSWORD, Client


async def prepare(db: DB, n: int) -> tuple[int, int]:
    """(the sent alert, the approved one)."""
    sent = await db.prepare(n, publish_now=True)
    async with db.sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.alert_id == sent).values(state="sent"))
        await session.execute(update(Alert).where(Alert.id == sent).values(status="sent"))
        officer = await session.scalar(select(User).where(User.role == "officer"))
        reviewer = await session.scalar(select(User).where(User.role == "reviewer"))
        assert officer is not None and reviewer is not None
        waiting = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email",))
    return sent, waiting.id


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="contacts (default 1,000,000)")
    parser.add_argument("--postgres", metavar="URL", help="run on a fresh database on this PostgreSQL server")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sink, smtp_port = start_server("smtp_sink.py")
    url, drop = await make_database(args.postgres)
    services = Services(Path(tempfile.mkdtemp(prefix="alerts-pages-")), url)
    db = DB(url)
    try:
        from alerts.store.migrate import upgrade

        await upgrade(db.engine)
        started = time.perf_counter()
        sent, waiting = await prepare(db, args.n)
        if args.postgres:  # what autovacuum does within a minute of such writes
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        print(f"{args.n:,} contacts, a sent alert and a waiting one in {time.perf_counter() - started:.0f} s")
        async with db.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="api", role="admin", with_token=True, now=utcnow()
            )
            await users.create_user(session, name="officer2", role="admin", password=PASSWORD, now=utcnow())
        services.use_smtp(smtp_port)
        await services.serve()
        base = f"http://127.0.0.1:{services.http_port}"
        browser = Client(base)
        await browser.sign_in("officer2")
        async with db.sessions() as session:
            last = await session.scalar(select(func.max(Delivery.id)).where(Delivery.alert_id == sent)) or 0
        deep = max(1, args.n // 50 - 1)  # the contacts' and deliveries' pages hold 50
        middle = args.n // 2
        pages = [
            "/",
            "/office/contacts",
            f"/office/contacts?page={min(deep, 100_000)}",
            f"/office/contacts?q=person{middle}@",
            f"/office/contacts/{middle}",
            f"/office/alerts/{sent}",
            f"/office/alerts/{sent}/deliveries",
            f"/office/alerts/{sent}/deliveries?page={min(deep, 100_000)}",
            f"/office/alerts/{sent}/deliveries?q=person{middle}@",
            f"/office/alerts/{waiting}",
            "/office/followups",
            "/office/audit",
        ]
        api = [
            "/api/v1/contacts",
            f"/api/v1/contacts?offset={args.n - 50}",
            "/api/v1/alerts",
            f"/api/v1/alerts/{sent}/deliveries",
            f"/api/v1/alerts/{sent}/deliveries?offset={args.n - 50}",
            f"/api/v1/alerts/{sent}/deliveries?after={last - 50}",
            f"/api/v1/alerts/{sent}/stats",
            "/api/v1/lists",
            "/alerts",
            "/feed.atom",
        ]
        results: list[tuple[float, float, str]] = []
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:

            async def fetch(path: str) -> tuple[int, str]:
                if path in pages:
                    return await browser.get(path)
                async with http.get(base + path) as resp:
                    return resp.status, await resp.text()

            for path in pages + api:
                times = []
                for _ in range(args.runs + 1):
                    t0 = time.perf_counter()
                    status, body = await fetch(path)
                    times.append(time.perf_counter() - t0)
                    if status != 200:
                        raise SystemExit(f"GET {path}: {status} {body[:300]}")
                times = times[1:]  # the first warms up
                results.append((statistics.median(times), max(times), path))
                print(f"  {path}: {statistics.median(times) * 1000:,.0f} ms", flush=True)
            # every delivery as CSV, streamed in batches (once: it is long)
            t0 = time.perf_counter()
            status, body = await browser.get(f"/office/alerts/{sent}/deliveries.csv", html=False)
            took = time.perf_counter() - t0
            if status != 200:
                raise SystemExit(f"deliveries.csv: {status} {body[:300]}")
            rows = body.count("\n") - 1
            print(f"  deliveries.csv: {rows:,} rows in {took:.1f} s ({rows / took:,.0f} rows/s)", flush=True)
        await browser.close()
        print(f"\nslowest first, {args.runs} runs each (median, max):")
        for median, worst, path in sorted(results, reverse=True):
            print(f"{median * 1000:9,.0f} ms {worst * 1000:9,.0f} ms  {path}")
    finally:
        services.kill_all()
        await db.close()
        sink.terminate()
        sink.wait()
        await drop()


if __name__ == "__main__":
    bench.run(main())
