"""The API keeps answering while `alerts serve` sends a 10,000-recipient fan-out itself.

GET /healthz and GET /api/v1/alerts/{id}/stats are polled back to back during the whole
send; p50/p95/max latencies are printed (and recorded in docs/RELIABILITY.md). The limits
asserted are generous — this is a shared 2-core machine — but a stalled event loop (a
blocking call in the dispatcher, a long transaction holding the database) fails them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import aiohttp
import pytest

from alerts.accounts import users
from alerts.cli.capture import CaptureServer, RecordingHandler
from alerts.core.clock import utcnow
from tests.reliability.conftest import DB, Services, wait_for

N = 10_000


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered) * 1000,
        "p95": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "max": ordered[-1] * 1000,
    }


async def _poll(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    stop: asyncio.Event,
    samples: list[float],
    statuses: list[int],
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        async with session.get(url, headers=headers) as resp:
            await resp.read()
            statuses.append(resp.status)
        samples.append(time.monotonic() - started)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("n", [N])
async def test_healthz_and_stats_answer_during_fan_out(services: Services, db: DB, n: int) -> None:
    alert_id = await db.prepare(n, publish_now=False)
    async with db.sessions.begin() as session:
        _, token = await users.create_user(
            session, name="watcher", role="viewer", with_token=True, now=utcnow()
        )
    assert token
    handler = RecordingHandler(limit=n * 2)
    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        serve = await services.serve()
        base = f"http://127.0.0.1:{services.http_port}"
        headers = {"Authorization": f"Bearer {token}"}
        stop = asyncio.Event()
        health: list[float] = []
        stats: list[float] = []
        codes: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            # warm up (first request compiles routes, opens pooled connections)
            async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            pollers = [
                asyncio.create_task(_poll(http, f"{base}/healthz", {}, stop, health, codes)),
                asyncio.create_task(
                    _poll(http, f"{base}/api/v1/alerts/{alert_id}/stats", headers, stop, stats, codes)
                ),
            ]
            started = time.monotonic()
            code, out = await services.run("alert", "send", str(alert_id), "--as", "olga", name="send")
            assert code == 0, out
            try:
                await wait_for(
                    lambda: _sent(db, alert_id), timeout=300, what="alert sent", proc=serve, interval=0.25
                )
            finally:
                stop.set()
                await asyncio.gather(*pollers, return_exceptions=True)
            elapsed = time.monotonic() - started
            async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=headers) as resp:
                doc = await resp.json()
        assert await serve.stop() == 0
    loop = os.environ.get("ALERTS_SERVER_EVENT_LOOP", "uvloop")
    assert f"running on {loop}'s event loop" in serve.output()  # what ships: uvloop by default
    h, s = _summary(health), _summary(stats)
    print(f"\n{n:,} recipients sent by `alerts serve` in {elapsed:.1f} s ({n / elapsed:,.0f}/s)")
    print(
        "GET /healthz                 n={n:.0f} p50={p50:.1f} ms p95={p95:.1f} ms max={max:.1f} ms".format(
            **h
        )
    )
    print(
        "GET /api/v1/alerts/{{id}}/stats n={n:.0f} p50={p50:.1f} ms p95={p95:.1f} ms max={max:.1f} ms".format(
            **s
        )
    )
    assert set(codes) == {200}, f"non-200 answers during the send: {sorted(set(codes))}"
    assert doc["channels"]["email"]["sent"] == n
    assert h["n"] >= 20 and s["n"] >= 20
    assert h["p95"] < 500 and s["p95"] < 1000, (h, s)
    assert h["max"] < 3000 and s["max"] < 3000, (h, s)


async def _sent(db: DB, alert_id: int) -> bool:
    return await db.alert_status(alert_id) == "sent"
