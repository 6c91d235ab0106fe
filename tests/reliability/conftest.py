"""Real `alerts serve` / `alerts worker` / `alerts alert send` processes for reliability tests.

Every process is started with an ``alerts.toml`` written into the test's tmp_path plus
``ALERTS_*`` environment overrides, its output goes to a log file beside it (printed when a
test fails), and the ``services`` fixture kills whatever is still running at teardown —
SIGKILL to the whole process group, even when the test failed or timed out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alerts.cli.capture import RecordingHandler
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import Alert, Delivery
from tests.factories import add_contacts, approved_alert, make_users

ROOT = Path(__file__).resolve().parents[2]
PG = bool(os.environ.get("ALERTS_TEST_DATABASE_URL"))

#: Short leases and backoff so a crashed worker's deliveries come back within seconds.
FAST_ENV = {
    "ALERTS_DISPATCHER_LEASE_SECONDS": "2",
    "ALERTS_DISPATCHER_BACKOFF_BASE": "0.2",
    "ALERTS_DISPATCHER_BACKOFF_MAX": "1",
    "ALERTS_DISPATCHER_UNKNOWN_GRACE_SECONDS": "1",
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """One child process of the `alerts` command."""

    name: str
    args: tuple[str, ...]
    process: asyncio.subprocess.Process
    log: Path
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL (kill -9), no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def wait(self, timeout: float = 30) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self.reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.reader, 5)
        return code

    async def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for a graceful exit."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Services:
    """Starts `alerts` processes for one test; ``kill_all`` is the teardown."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.dir = tmp_path
        self.db_url = db_url
        self.procs: list[Proc] = []
        self.env: dict[str, str] = {**FAST_ENV}
        self.config = tmp_path / "alerts.toml"
        self.smtp_port = 8025
        self.http_port = free_port()
        self.write_config()

    def write_config(self, **sections: dict[str, Any]) -> None:
        """alerts.toml for the children; ``sections`` add or replace keys."""
        base: dict[str, dict[str, Any]] = {
            "database": {"url": self.db_url},
            "server": {
                "host": "127.0.0.1",
                "port": self.http_port,
                "public_url": f"http://127.0.0.1:{self.http_port}",
                "secret_key": "test-secret-key-reliability",
            },
            "email": {"host": "127.0.0.1", "port": self.smtp_port, "pool_size": 16, "timeout": 5.0},
        }
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        lines = []
        for name, values in base.items():
            lines.append(f"[{name}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml(value)}")
            lines.append("")
        self.config.write_text("\n".join(lines))

    def use_smtp(self, port: int) -> None:
        self.smtp_port = port
        self.write_config()

    async def start(
        self,
        *args: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        on_line: Callable[[Proc, str], None] | None = None,
    ) -> Proc:
        """Start ``python -m alerts --config alerts.toml ARGS…`` in its own process group."""
        full_env = {
            **os.environ,
            **self.env,
            **(env or {}),
            "ALERTS_CONFIG": str(self.config),
            "PYTHONUNBUFFERED": "1",
        }
        full_env.pop("ALERTS_DATABASE_URL", None)
        label = name or f"{args[0]}-{len(self.procs)}"
        log = self.dir / f"{label}.log"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alerts",
            *args,
            cwd=self.dir,
            env=full_env,
            start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        proc = Proc(label, tuple(args), process, log)
        proc.reader = asyncio.create_task(_pump(proc, on_line))
        self.procs.append(proc)
        return proc

    async def worker(self, **kw: Any) -> Proc:
        return await self.start("worker", **kw)

    async def serve(self, **kw: Any) -> Proc:
        proc = await self.start("serve", "--port", str(self.http_port), **kw)
        await wait_for(
            lambda: _port_open(self.http_port), timeout=60, what="alerts serve listening", proc=proc
        )
        return proc

    async def run(self, *args: str, timeout: float = 120, **kw: Any) -> tuple[int, str]:
        """Run a short command to completion; (exit code, output)."""
        proc = await self.start(*args, **kw)
        code = await proc.wait(timeout)
        return code, proc.output()

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.running():
                proc.kill()

    def report(self) -> str:
        return "\n".join(
            f"--- {p.name} {' '.join(p.args)} (exit {p.process.returncode}) ---\n{p.output()[-3000:]}"
            for p in self.procs
        )


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _pump(proc: Proc, on_line: Callable[[Proc, str], None] | None) -> None:
    assert proc.process.stdout is not None
    with proc.log.open("w", buffering=1) as fh:
        while True:
            raw = await proc.process.stdout.readline()
            if not raw:
                return
            line = raw.decode(errors="replace")
            fh.write(line)
            if on_line is not None:
                on_line(proc, line)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    proc: Proc | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if proc is not None and not proc.running():
            raise AssertionError(
                f"{what}: {proc.name} exited with {proc.process.returncode}:\n{proc.output()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
async def services(tmp_path: Path, db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """Real service processes for one test, always killed at teardown."""
    svc = Services(tmp_path, db_url)
    try:
        yield svc
    finally:
        svc.kill_all()
        for proc in svc.procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.process.wait(), 10)
            if proc.reader is not None:
                proc.reader.cancel()
                with contextlib.suppress(BaseException):
                    await proc.reader
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(svc.report())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


# -- database helpers (the test process reads the same database the children write) ---------


class DB:
    """Short-lived connections to the test database for setup and checks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    async def prepare(
        self,
        n: int,
        *,
        publish_now: bool = True,
        channels: tuple[str, ...] = ("email",),
        telegram: bool = False,
    ) -> int:
        """n contacts in one list, an approved alert to them (published unless told not to)."""
        async with self.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            for start in range(0, n, 5000):
                await add_contacts(
                    session, min(5000, n - start), start=start, telegram=telegram, email="email" in channels
                )
            alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=channels)
            if publish_now:
                await publish(session, alert, now=utcnow())
            return alert.id

    async def states(self, alert_id: int) -> collections.Counter[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Delivery.state, func.count())
                .where(Delivery.alert_id == alert_id)
                .group_by(Delivery.state)
            )
            return collections.Counter({state: n for state, n in rows.all()})

    async def alert_status(self, alert_id: int) -> str:
        async with self.sessions() as session:
            return str((await session.execute(select(Alert.status).where(Alert.id == alert_id))).scalar_one())

    async def close(self) -> None:
        await self.engine.dispose()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[DB]:
    handle = DB(db_url)
    yield handle
    await handle.close()


class KillingHandler(RecordingHandler):
    """Records every message; SIGKILLs ``victim`` when the ``kill_at``-th message arrives."""

    def __init__(self, *, limit: int = 200_000) -> None:
        super().__init__(limit=limit)
        self.victim: Proc | None = None
        self.kill_at: int | None = None
        self.killed_at_count: int | None = None
        self.killed = asyncio.Event()
        self.first_at: float | None = None

    def rate(self) -> float:
        """Messages per second since the first one arrived."""
        if self.first_at is None or self.count < 2:
            return 0.0
        return self.count / max(time.monotonic() - self.first_at, 1e-3)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.first_at is None:
            self.first_at = time.monotonic()
        if (
            self.victim is not None
            and self.kill_at is not None
            and self.count >= self.kill_at
            and self.killed_at_count is None
        ):
            self.victim.kill()
            self.killed_at_count = self.count
            self.killed.set()
        return reply


def copies(handler: RecordingHandler) -> collections.Counter[str]:
    """How many copies each recipient received."""
    return collections.Counter(m.rcpt_tos[0] for m in handler.messages())
