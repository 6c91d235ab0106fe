"""Scale-out on PostgreSQL: three `alerts worker` + one `alerts serve` share one fan-out.

Every recipient must get exactly one copy: claims use ``FOR UPDATE SKIP LOCKED`` and the
workers never see each other's rows. Needs ALERTS_TEST_DATABASE_URL (skipped otherwise).
"""

from __future__ import annotations

import collections
import time

import pytest
from sqlalchemy import func, select

from alerts.cli.capture import CaptureServer, RecordingHandler
from alerts.store.models import Delivery
from tests.reliability.conftest import DB, PG, Services, copies, wait_for

pytestmark = pytest.mark.skipif(not PG, reason="scale-out needs PostgreSQL: set ALERTS_TEST_DATABASE_URL")


async def _scale_out(services: Services, db: DB, n: int) -> None:
    alert_id = await db.prepare(n, publish_now=False)
    handler = RecordingHandler(limit=n * 2)
    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        procs = [await services.serve()] + [await services.worker(name=f"worker-{i}") for i in range(3)]
        # let every worker come up and poll before there is anything to claim
        await wait_for(
            lambda: all("dispatcher" in p.output() and "running" in p.output() for p in procs),
            timeout=60,
            what="four dispatchers running",
        )
        started = time.monotonic()
        code, out = await services.run("alert", "send", str(alert_id), "--as", "olga", name="send")
        assert code == 0, out
        await wait_for(lambda: _done(db, alert_id), timeout=300, what="alert sent", interval=0.25)
        elapsed = time.monotonic() - started
        per = copies(handler)
        async with db.sessions() as session:
            workers = dict(
                (
                    await session.execute(
                        select(Delivery.claimed_by, func.count())
                        .where(Delivery.alert_id == alert_id)
                        .group_by(Delivery.claimed_by)
                    )
                ).all()
            )
        for p in procs:
            assert p.running(), f"{p.name} died:\n{p.output()[-2000:]}"
            assert await p.stop() == 0
    assert len(per) == n, f"{n - len(per)} recipients lost"
    assert collections.Counter(per.values()) == {1: n}, "some recipient got more than one copy"
    assert await db.states(alert_id) == {"sent": n}
    busy = [w for w, k in workers.items() if k > n // 20]
    print(
        f"scale-out {n:,}: {elapsed:.1f} s ({n / elapsed:,.0f}/s); deliveries per dispatcher: "
        f"{sorted(workers.values(), reverse=True)}"
    )
    assert len(busy) >= 3, f"the work was not shared: {workers}"


async def _done(db: DB, alert_id: int) -> bool:
    return await db.alert_status(alert_id) == "sent"


async def test_three_workers_and_serve_send_each_recipient_exactly_once(services: Services, db: DB) -> None:
    await _scale_out(services, db, 3_000)


@pytest.mark.slow
async def test_three_workers_and_serve_20000_recipients(services: Services, db: DB) -> None:
    await _scale_out(services, db, 20_000)
