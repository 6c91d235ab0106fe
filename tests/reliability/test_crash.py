"""kill -9 at several points of a fan-out; restart; nobody lost, repeats bounded, alert completes.

A recording SMTP server in this process counts every copy each recipient gets. The worker is
a real ``alerts worker`` process (lease 2 s). The bound DESIGN.md allows: the messages that
were in flight at the kill — the SMTP pool (16) plus what was sent since the recorder's last
flush (its batch was lost with the process).
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from alerts.cli.capture import CaptureServer
from tests.reliability.conftest import DB, KillingHandler, Proc, Services, copies, wait_for

N = 10_000
POOL = 16
FLUSH = 0.05


async def _finish(services: Services, db: DB, alert_id: int, n: int, *, timeout: float = 120) -> float:
    """A fresh worker completes the alert; seconds it took."""
    started = time.monotonic()
    worker = await services.worker(name="worker-restarted")
    await wait_for(
        lambda: _sent(db, alert_id), timeout=timeout, what=f"alert {alert_id} sent", proc=worker, interval=0.2
    )
    states = await db.states(alert_id)
    assert states == {"sent": n}, states
    await worker.stop()
    return time.monotonic() - started


async def _sent(db: DB, alert_id: int) -> bool:
    return await db.alert_status(alert_id) == "sent"


def _check(handler: KillingHandler, n: int, *, may_repeat: int) -> tuple[int, int]:
    per = copies(handler)
    lost = n - len(per)
    repeats = sum(c - 1 for c in per.values())
    assert lost == 0, f"{lost} recipients never received the alert"
    assert max(per.values()) <= 2, f"a recipient got {max(per.values())} copies"
    assert repeats <= may_repeat, f"{repeats} repeats; bound {may_repeat}"
    return lost, repeats


async def test_kill_during_fan_out_then_publish_again(services: Services, db: DB) -> None:
    """kill -9 `alerts alert send` while its INSERT … SELECT runs: all or nothing, then all once."""
    alert_id = await db.prepare(N, publish_now=False)
    async with CaptureServer(handler=KillingHandler()) as smtp:
        services.use_smtp(smtp.port)
        seen: list[float] = []

        def on_line(proc: Proc, line: str) -> None:
            # SQLAlchemy logs the statement just before executing it: the kill lands inside
            # the fan-out transaction, before its COMMIT
            if "INSERT INTO deliveries" in line and not seen:
                seen.append(time.monotonic())
                proc.kill()

        send = await services.start(
            "alert",
            "send",
            str(alert_id),
            "--as",
            "olga",  # the officer of ``services.prepare`` (there is no admin to default to)
            name="send-killed",
            env={"ALERTS_DATABASE_ECHO": "true"},
            on_line=on_line,
        )
        code = await send.wait(60)
        assert seen, "the fan-out INSERT never started:\n" + send.output()[-2000:]
        assert code == -9
        assert "COMMIT" not in send.output().split("INSERT INTO deliveries", 1)[1]
        # nothing half-written: the transaction died with the process
        assert await db.states(alert_id) == {}
        assert await db.alert_status(alert_id) == "approved"
        code, out = await services.run("alert", "send", str(alert_id), "--as", "olga", name="send-again")
        assert code == 0, out
        assert await db.states(alert_id) == {"queued": N}
        await _finish(services, db, alert_id, N)
        _check(smtp.handler, N, may_repeat=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [0.3])
async def test_kill_worker_mid_send(services: Services, db: DB, fraction: float) -> None:
    """kill -9 the worker when the SMTP server has received ``fraction`` of the messages."""
    alert_id = await db.prepare(N)
    handler = KillingHandler()
    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        first = await services.worker(name="worker-killed")
        handler.victim, handler.kill_at = first, int(N * fraction)
        await wait_for(handler.killed.is_set, timeout=120, what="the kill point", proc=first)
        rate = handler.rate()
        await first.wait()
        await asyncio.sleep(0.2)  # what the dead worker had fully written still arrives
        received = handler.count
        recorded = (await db.states(alert_id))["sent"]
        in_flight = received - recorded
        recovery = await _finish(services, db, alert_id, N)
        bound = POOL + math.ceil(rate * FLUSH) + (received - handler.killed_at_count)  # type: ignore[operator]
        lost, repeats = _check(handler, N, may_repeat=max(in_flight, 0))
        print(
            f"mid-send kill at {handler.killed_at_count}: rate {rate:.0f}/s, unrecorded {in_flight}, "
            f"repeats {repeats} (design bound {bound}), recovered in {recovery:.1f} s"
        )
        assert repeats <= bound * 2, f"{repeats} repeats, far above pool + one flush interval ({bound})"


async def test_kill_worker_while_recording(services: Services, db: DB) -> None:
    """kill -9 the worker while the recorder's batch UPDATE is being written."""
    alert_id = await db.prepare(N)
    handler = KillingHandler()
    killed: list[int] = []

    def on_line(proc: Proc, line: str) -> None:
        # the recorder's UPDATE is the only statement that sets provider_id
        if (
            not killed
            and handler.count >= N // 2
            and "UPDATE deliveries SET" in line
            and "provider_id" in line
        ):
            proc.kill()
            killed.append(handler.count)
            handler.killed_at_count = handler.count
            handler.killed.set()

    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        first = await services.worker(
            name="worker-killed", env={"ALERTS_DATABASE_ECHO": "true"}, on_line=on_line
        )
        await wait_for(
            handler.killed.is_set, timeout=120, what="a recorder UPDATE after half the sends", proc=first
        )
        rate = handler.rate()
        await first.wait()
        await asyncio.sleep(0.2)
        received = handler.count
        recorded = (await db.states(alert_id))["sent"]
        recovery = await _finish(services, db, alert_id, N)
        lost, repeats = _check(handler, N, may_repeat=max(received - recorded, 0))
        print(
            f"recording kill at {killed[0]}: rate {rate:.0f}/s, unrecorded {received - recorded}, "
            f"repeats {repeats}, recovered in {recovery:.1f} s"
        )
