"""Faults around a real `alerts worker`: SMTP down, 4xx, slow; Telegram 429 storms and 500s;
PostgreSQL restarted mid-send (a private instance, never the shared server).

After each fault clears, every delivery must end ``sent`` (or correctly ``failed``), none may
stay ``sending`` once the leases expire, and no recipient may be lost.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.cli.capture import CaptureServer, RecordingHandler
from alerts.store.db import create_engine
from alerts.store.migrate import upgrade
from alerts.store.models import DeliveryEvent
from tests.botapi import BotApiServer
from tests.reliability.conftest import DB, Services, copies, free_port, wait_for


async def _all_final(db: DB, alert_id: int, n: int, timeout: float = 120) -> dict[str, int]:
    async def done() -> bool:
        return await db.alert_status(alert_id) == "sent"

    await wait_for(done, timeout=timeout, what=f"alert {alert_id} complete", interval=0.25)
    states = dict(await db.states(alert_id))
    assert sum(states.values()) == n
    assert "sending" not in states and "queued" not in states and "deferred" not in states, states
    return states


async def _events(db: DB, alert_id: int) -> dict[str, int]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(DeliveryEvent.type, func.count())
            .where(DeliveryEvent.alert_id == alert_id)
            .group_by(DeliveryEvent.type)
        )
        return dict(rows.all())


class FlakyHandler(RecordingHandler):
    """Answers RCPT with ``reply`` until ``until`` (monotonic), optionally slow at DATA."""

    def __init__(
        self, *, reply: str = "451 4.3.0 Try again later", until: float = 0.0, delay: float = 0.0
    ) -> None:
        super().__init__(limit=100_000)
        self.reply, self.until, self.delay = reply, until, delay
        self.refused = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if time.monotonic() < self.until:
            self.refused += 1
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


#: FAST_ENV's 0.2-1 s backoff can spend the default 8 attempts within a few seconds of outage;
#: these tests are about recovering once the server is back, so every delivery outlasts it.
OUTLAST = {"ALERTS_DISPATCHER_MAX_ATTEMPTS": "100"}


async def test_smtp_server_down_then_back(services: Services, db: DB) -> None:
    n = 300
    alert_id = await db.prepare(n)
    port = free_port()
    services.use_smtp(port)
    worker = await services.worker(env=OUTLAST)
    # nothing listens: every attempt is refused at connect and deferred
    await wait_for(
        lambda: _deferred(db, alert_id), timeout=60, what="deferrals while SMTP is down", proc=worker
    )
    down_for = 3.0
    await asyncio.sleep(down_for)
    assert (await db.states(alert_id)).get("sent", 0) == 0
    back = time.monotonic()
    async with CaptureServer(port=port, handler=RecordingHandler(limit=10_000)) as smtp:
        states = await _all_final(db, alert_id, n)
        recovered = time.monotonic() - back
        per = copies(smtp.handler)
    assert states == {"sent": n}
    assert len(per) == n and set(per.values()) == {1}
    events = await _events(db, alert_id)
    print(
        f"SMTP down {down_for:.0f}+ s: {events.get('deferred', 0)} deferrals; all {n} sent {recovered:.1f} s "
        "after it came back"
    )
    assert await worker.stop() == 0


async def _deferred(db: DB, alert_id: int) -> bool:
    return (await db.states(alert_id)).get("deferred", 0) > 0


async def test_smtp_answers_4xx_for_a_while(services: Services, db: DB) -> None:
    n = 300
    alert_id = await db.prepare(n)
    handler = FlakyHandler(until=time.monotonic() + 1e9)
    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        worker = await services.worker(env=OUTLAST)
        await wait_for(lambda: handler.refused > n, timeout=60, what="451 answers", proc=worker)
        handler.until = time.monotonic() + 2.0
        states = await _all_final(db, alert_id, n)
        per = copies(handler)
    assert states == {"sent": n}
    assert len(per) == n and set(per.values()) == {1}
    print(f"4xx: {handler.refused} refusals (451), then all {n} sent once")
    assert await worker.stop() == 0


async def test_slow_smtp_and_stalls_past_the_timeout(services: Services, db: DB) -> None:
    """A slow server: all sent. Answers slower than the client timeout: outcome UNKNOWN, retried
    once after the grace period with the same Message-ID, never in a loop."""
    n = 200
    alert_id = await db.prepare(n)
    handler = FlakyHandler(delay=0.15)
    async with CaptureServer(handler=handler) as smtp:
        services.use_smtp(smtp.port)
        services.write_config(email={"timeout": 1.0})
        worker = await services.worker()
        await wait_for(lambda: handler.count >= n // 2, timeout=60, what="half sent", proc=worker)
        handler.delay = 1.5  # past the 1 s timeout: the client gives up after DATA
        await asyncio.sleep(2.0)
        handler.delay = 0.0
        states = await _all_final(db, alert_id, n)
        per = copies(handler)
        ids = {m.headers.get("message-id") for m in handler.messages() if per[m.rcpt_tos[0]] > 1}
    events = await _events(db, alert_id)
    assert len(per) == n, "a recipient was lost"
    assert max(per.values()) <= 2, "an UNKNOWN outcome was retried more than once"
    assert states.get("sent", 0) + states.get("failed", 0) == n
    assert events.get("unknown", 0) >= 1
    repeated = [r for r, c in per.items() if c > 1]
    assert len(ids) == len(repeated)  # a repeat carries the same Message-ID as the first copy
    print(
        f"slow SMTP: {events.get('unknown', 0)} unknown outcomes, {len(repeated)} recipients got a second copy "
        f"(same Message-ID), states {states}"
    )
    assert await worker.stop() == 0


async def test_telegram_429_storm_and_500s(services: Services, db: DB, botapi: BotApiServer) -> None:
    n = 300
    alert_id = await db.prepare(n, channels=("telegram",), telegram=True)
    services.env.update(
        {
            "ALERTS_TELEGRAM_TOKEN": botapi.token,
            "ALERTS_TELEGRAM_BASE_URL": botapi.base_url,
            "ALERTS_TELEGRAM_RATE_PER_SECOND": "500",
        }
    )
    botapi.default = "retry_after=1"
    worker = await services.worker()
    await wait_for(lambda: len(botapi.calls) >= 20, timeout=60, what="429 answers", proc=worker)
    await asyncio.sleep(2.0)
    botapi.default = "server_error"
    await asyncio.sleep(1.5)
    botapi.default = "ok"
    started = time.monotonic()
    states = await _all_final(db, alert_id, n)
    answers: dict[str, int] = {}
    for _, _, behaviour in botapi.answered:
        answers[behaviour] = answers.get(behaviour, 0) + 1
    ok_chats = [chat for _, chat, b in botapi.answered if b == "ok"]
    assert states == {"sent": n}
    assert len(set(ok_chats)) == n and len(ok_chats) == n, "a chat got the alert twice"
    print(
        f"Telegram storm: answers {answers}; all {n} sent once, {time.monotonic() - started:.1f} s after it ended"
    )
    assert await worker.stop() == 0


# -- PostgreSQL restarted mid-send (a private server in tmp_path) ------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """initdb + pg_ctl on a free port, run as the ``postgres`` user when we are root."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pgdata"
        self.sock = root / "pgsock"
        self.port = free_port()
        self.log = root / "pg.log"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root and runuser is missing: cannot run initdb")
            self.prefix = ["runuser", "-u", "postgres", "--"]
            for path in (root,):
                shutil.chown(path, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-o",
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def setup(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"{PG_BIN / 'initdb'} not found")
        self.sock.mkdir()
        if self.prefix:
            shutil.chown(self.sock, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run(
            str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "alerts"
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/alerts"


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    # not under pytest's tmp_path: that is private to root, and initdb runs as postgres
    root = Path(tempfile.mkdtemp(prefix="alerts-privatepg-"))
    os.chmod(root, 0o755)
    try:
        pg = PrivatePostgres(root)
        try:
            pg.setup()
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"cannot run a private PostgreSQL: {exc} {detail.decode(errors='replace')[-300:]}")
        try:
            yield pg
        finally:
            subprocess.run(
                [*pg.prefix, str(PG_BIN / "pg_ctl"), "-D", str(pg.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def pg_db(private_pg: PrivatePostgres) -> AsyncIterator[DB]:
    engine = create_engine(private_pg.url)
    await upgrade(engine)
    await engine.dispose()
    handle = DB(private_pg.url)
    yield handle
    await handle.close()


async def test_postgres_restarted_mid_send(
    tmp_path: Path, private_pg: PrivatePostgres, pg_db: DB, request: pytest.FixtureRequest
) -> None:
    n = 3000
    alert_id = await pg_db.prepare(n)
    services = Services(tmp_path, private_pg.url)
    handler = FlakyHandler(delay=0.01)
    try:
        async with CaptureServer(handler=handler) as smtp:
            services.use_smtp(smtp.port)
            worker = await services.worker()
            await wait_for(lambda: handler.count >= n // 4, timeout=60, what="a quarter sent", proc=worker)
            at_restart = handler.count
            down = time.monotonic()
            await asyncio.to_thread(private_pg.stop, "immediate")  # a crash, not a polite shutdown
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_pg.start)
            await pg_db.engine.dispose()  # our own pooled connections died with the server
            states = await _all_final(pg_db, alert_id, n, timeout=180)
            recovered = time.monotonic() - down
            per = copies(handler)
            assert worker.running(), "the worker died with the database"
            assert await worker.stop() == 0
    finally:
        services.kill_all()
        for p in services.procs:
            await asyncio.wait_for(p.process.wait(), 10)
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(services.report())
    lost = n - len(per)
    repeats = sum(c - 1 for c in per.values())
    assert states == {"sent": n}
    assert lost == 0
    print(
        f"PostgreSQL crashed+restarted after {at_restart} sends: lost {lost}, repeats {repeats}, "
        f"complete {recovered:.1f} s after the crash"
    )
    assert repeats <= 200, f"{repeats} repeats"
