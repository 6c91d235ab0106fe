"""Latency under load: the API and the officers' pages while `alerts serve` sends a large alert.

    python bench/latency.py [--n 100000] [--postgres URL] [--flood N]

Starts `alerts serve` (web and dispatcher in one process, as deployed) on a fresh database
with N contacts, the low-CPU SMTP sink (bench/smtp_sink.py) as its relay, then sends the
alert with `alerts alert send` and, until every delivery is final, polls back to back:
GET /healthz, GET /api/v1/alerts/{id}/stats (a bearer token) and the officers' page of the
alert, /office/alerts/{id} (signed in): for ``--idle`` seconds before the send and after it
(what the reads cost with no send running), and during it. Prints n, p50, p95 and max of
each (goal: p95 < 50 ms during the send). ``--flood N`` adds N clients that read the stats
API with no pause during the send: the senders give way to every officer's or API read
(alerts/delivery/give_way.py), and the send rate printed shows what such a flood leaves of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.accounts import users
from alerts.core.clock import utcnow
from bench.fanout import make_database, start_server
from tests.reliability.conftest import DB, Services
from tests.web import PASSWORD, Client


async def poll(
    fetch: aiohttp.ClientSession | Client,
    url: str,
    headers: dict[str, str],
    stop: asyncio.Event,
    pause: float = 0.02,
) -> list[float]:
    """Latencies (s) of GET ``url`` back to back (``pause`` apart) until ``stop``; non-200 raises."""
    samples: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        if isinstance(fetch, Client):
            status, body = await fetch.get(url)
        else:
            async with fetch.get(url, headers=headers) as resp:
                body = await resp.text()
                status = resp.status
        samples.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"GET {url} answered {status} during the send: {body[:300]}")
        await asyncio.sleep(pause)
    return samples


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000
    return (
        f"{name:34} n={len(ordered):5d} p50={statistics.median(ordered) * 1000:6.1f} ms "
        f"p95={p95:6.1f} ms max={ordered[-1] * 1000:7.1f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    sink, smtp_port = start_server("smtp_sink.py")
    url, drop = await make_database(args.postgres)
    folder = Path(tempfile.mkdtemp(prefix="alerts-latency-"))
    db = DB(url)
    services = Services(folder, url)
    try:
        from alerts.store.migrate import upgrade

        await upgrade(db.engine)
        alert_id = await db.prepare(args.n, publish_now=False)
        if args.postgres:  # the statistics an import leaves (alerts/contacts/batch.py analyzes as it goes)
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE contacts, list_members, lists"))
        async with db.sessions.begin() as session:
            _, token = await users.create_user(
                session, name="watcher", role="viewer", with_token=True, now=utcnow()
            )
            await users.create_user(session, name="officer2", role="officer", password=PASSWORD, now=utcnow())
        services.use_smtp(smtp_port)
        serve = await services.serve()
        base = f"http://127.0.0.1:{services.http_port}"
        api = f"{base}/api/v1/alerts/{alert_id}/stats"
        page = f"/office/alerts/{alert_id}"
        headers = {"Authorization": f"Bearer {token}"}
        browser = Client(base)
        await browser.sign_in("officer2")
        async with aiohttp.ClientSession() as http:
            for _ in range(3):  # warm up: routes, templates, pooled connections
                await http.get(api, headers=headers)
                await browser.get(page)
            targets: list[tuple[aiohttp.ClientSession | Client, str, dict[str, str]]] = [
                (http, f"{base}/healthz", {}),
                (http, api, headers),
                (browser, page, {}),
            ]

            async def for_a_while() -> list[list[float]]:
                """The same polls for ``--idle`` seconds: what the reads cost with no send running."""
                quiet = asyncio.Event()
                tasks = [asyncio.create_task(poll(f, u, h, quiet)) for f, u, h in targets]
                await asyncio.sleep(args.idle)
                quiet.set()
                return list(await asyncio.gather(*tasks))

            before = await for_a_while()
            stop = asyncio.Event()
            pollers = [asyncio.create_task(poll(f, u, h, stop)) for f, u, h in targets]
            flooding = aiohttp.ClientSession()  # its own connections: the pollers never queue behind it
            flood = [
                asyncio.create_task(poll(flooding, api, headers, stop, pause=0)) for _ in range(args.flood)
            ]
            started = time.perf_counter()
            code, out = await services.run("alert", "send", str(alert_id), "--as", "olga", name="send")
            if code != 0:
                raise SystemExit(f"alert send failed: {out}")
            while await db.alert_status(alert_id) != "sent":
                if not serve.running():
                    raise SystemExit(f"alerts serve stopped:\n{serve.output()[-2000:]}")
                await asyncio.sleep(0.5)
            elapsed = time.perf_counter() - started
            stop.set()
            during = await asyncio.gather(*pollers)
            flooded = sum(len(samples) for samples in await asyncio.gather(*flood))
            await flooding.close()
            async with http.get(f"{base}/metrics", headers=headers) as r:
                held = {
                    line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                    for line in (await r.text()).splitlines()
                    if line.startswith("alerts_senders_held_total{")
                }
            after = await for_a_while()
        await browser.close()
        await serve.stop()
        where = "postgresql" if args.postgres else "sqlite"
        print(
            f"{args.n:,} recipients on {where}, sent by `alerts serve` in {elapsed:.0f} s "
            f"({args.n / elapsed:,.0f}/s)"
            + (f", flooded by {args.flood} clients: {flooded / elapsed:,.0f} reads/s" if args.flood else "")
        )
        if held:  # alerts_senders_held_total: the senders gave way to the reads (give_way.py)
            print(
                f"the senders gave way {sum(held.values()):,.0f} times, "
                f"{held.get('limit', 0):,.0f} of them for the whole hold (reads kept coming)"
            )
        names = ("GET /healthz", "GET /api/v1/alerts/{id}/stats", "GET /office/alerts/{id} (signed in)")
        for title, phase in (
            (f"before the send ({args.idle:.0f} s; {args.n:,} contacts, no delivery yet):", before),
            ("during the send:", during),
            (f"after the send ({args.idle:.0f} s; {args.n:,} deliveries sent):", after),
        ):
            print(title)
            for name, samples in zip(names, phase, strict=True):
                print("  " + summary(name, samples))
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        services.kill_all()
        await db.close()
        sink.terminate()
        sink.wait()
        await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL", help="a fresh database on this PostgreSQL server")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of polls before and after the send")
    parser.add_argument(
        "--flood",
        type=int,
        default=0,
        metavar="N",
        help="N more clients reading the stats API back to back, without a pause, during the send "
        "(the senders give way to every read: what is left of the send rate)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
