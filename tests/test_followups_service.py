"""The real ``alerts serve`` process: follow-ups survive restarts and fire exactly once.

Each test writes an alerts.toml (the test's database, a free port, the SMTP capture server
running in the test), starts ``python -m alerts serve`` as a child process, talks to it over
HTTP and the CLI, and stops it with SIGTERM. Processes are always cleaned up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from alerts.accounts import users
from alerts.cli.capture import CaptureServer
from alerts.compose import drafts
from alerts.core.clock import utcnow
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import Followup
from tests.conftest import PG_ADMIN_URL
from tests.factories import RENDERER, add_contacts

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One ``alerts serve`` child process."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.proc: asyncio.subprocess.Process | None = None
        self.log = config.with_suffix(f".{port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ALERTS_SERVER_PORT": str(self.port)}
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alerts",
                "--config",
                str(self.config),
                "serve",
                env=env,
                cwd=self.config.parent,
                stdout=log,
                stderr=log,
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if self.proc.returncode is not None:
                    raise RuntimeError(f"serve exited early:\n{self.log.read_text()}")
                try:
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"serve did not become healthy:\n{self.log.read_text()}")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        assert proc.returncode == 0, self.log.read_text()


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alerts",
        "--config",
        str(config),
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    async with CaptureServer() as server:
        yield server


@pytest.fixture
async def setup(db_url: str, tmp_path: Path, capture: CaptureServer) -> AsyncIterator[tuple[Path, str, int]]:
    """alerts.toml, an officer's API token, and a draft alert to follow up."""
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[server]\npublic_url = "https://alerts.example.org"\nsecret_key = "service-test-secret-0123456789"\n'
        f'[email]\nhost = "127.0.0.1"\nport = {capture.port}\npool_size = 2\n'
        '[scheduler]\ntimezone = "Europe/Paris"\n'
    )
    engine = create_engine(db_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            officer, token = await users.create_user(
                session, name="olga", role="officer", email="olga@example.org", with_token=True, now=utcnow()
            )
            await add_contacts(session, 1)
            alert = await drafts.create_alert(
                session,
                author=officer,
                family="urgent-appeal",
                case_data=RENDERER.example("urgent-appeal"),
                audience=drafts.Audience(lists=("urgent-appeals",)),
                validate_case=RENDERER.validate_case,
                now=utcnow(),
            )
            alert_id = alert.id
    finally:
        await engine.dispose()
    assert token is not None
    yield config, token, alert_id


async def set_due(db_url: str, followup_id: int, minutes_ago: float) -> None:
    """Move a follow-up's due time into the past: as if it fell due while the service was down."""
    engine = create_engine(db_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await session.execute(
                update(Followup)
                .where(Followup.id == followup_id)
                .values(due_at=utcnow() - timedelta(minutes=minutes_ago))
            )
    finally:
        await engine.dispose()


async def results(db_url: str) -> dict[int, tuple[str | None, float | None]]:
    engine = create_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.execute(select(Followup.id, Followup.result, Followup.late_seconds))
            return {fid: (result, late) for fid, result, late in rows.all()}
    finally:
        await engine.dispose()


async def wait_messages(capture: CaptureServer, n: int, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if len(capture.messages()) >= n:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{len(capture.messages())} of {n} messages arrived")


async def test_reminder_due_while_down_fires_once_after_restart(
    setup: tuple[Path, str, int], db_url: str, capture: CaptureServer
) -> None:
    config, token, alert_id = setup
    service = Service(config, free_port())
    auth = {"Authorization": f"Bearer {token}"}
    try:
        await service.start()
        async with aiohttp.ClientSession(headers=auth) as http:
            base = f"{service.url}/api/v1"
            async with http.post(
                f"{base}/alerts/{alert_id}/followups",
                json={"kind": "reminder", "in": "1h", "note": "Call the ministry"},
            ) as r:
                assert r.status == 201, await r.text()
                late_one = (await r.json())["id"]
            async with http.post(
                f"{base}/alerts/{alert_id}/followups",
                json={"kind": "reminder", "in": "1h", "condition": "no-response"},
            ) as r:
                answered = (await r.json())["id"]
            async with http.post(
                f"{base}/alerts/{alert_id}/followups", json={"kind": "reminder", "in": "yesterday"}
            ) as r:
                assert r.status == 422
                assert (await r.json())["error"]["message"] == (
                    "in: not a duration such as 7d, 36h, 90m or 1w2d."
                )
            async with http.post(
                f"{base}/alerts/{alert_id}/responses", json={"summary": "The ministry called"}
            ) as r:
                assert r.status == 201, await r.text()
            async with http.get(f"{base}/alerts/{alert_id}/followups") as r:
                assert [f["status"] for f in (await r.json())["followups"]] == ["pending", "pending"]
        code, out, err = await cli(
            config, "followup", "add", str(alert_id), "--in", "1h", "--kind", "reminder", "--as", "olga"
        )
        assert code == 0, err
        cancelled = int(out.strip())
        await service.stop()
        # While it is down: one falls due, one is cancelled from the CLI.
        code, _, err = await cli(config, "followup", "cancel", str(cancelled), "--as", "olga")
        assert code == 0 and err.strip() == f"follow-up {cancelled} (reminder) cancelled", err
        code, _, err = await cli(config, "followup", "cancel", str(cancelled), "--as", "olga")
        assert code == 2 and err.startswith(f"alerts: follow-up {cancelled} was already cancelled at ")
        for fid in (late_one, answered, cancelled):
            await set_due(db_url, fid, minutes_ago=7)
        capture.handler.clear()
        await service.start()
        await wait_messages(capture, 1)
        await service.stop()
        await service.start()  # and again: nothing fires twice
        await asyncio.sleep(1.0)
        await service.stop()
    finally:
        await service.stop()
    [message] = capture.messages()
    text = message.raw.decode()
    assert message.rcpt_tos == ("olga@example.org",) and "Note: Call the ministry" in text
    assert "(late by 7 min: the service was down)" in text
    assert f"https://alerts.example.org/office/alerts/{alert_id}" in text
    done = await results(db_url)
    assert done[late_one][0] == "reminder sent; sent to olga" and (done[late_one][1] or 0) >= 420
    assert (done[answered][0] or "").startswith("skipped: a response was recorded on ")
    assert done[cancelled][0] == "cancelled by olga"
    code, out, _ = await cli(config, "followup", "list", "--all")
    # and the service gave olga (the only officer) her weekly digest, due next Monday 08:00
    assert code == 0 and [tuple(line.split("\t")[2:5]) for line in out.splitlines()] == [
        ("reminder", "alert " + str(alert_id), "fired"),
        ("reminder", "alert " + str(alert_id), "fired"),
        ("reminder", "alert " + str(alert_id), "cancelled"),
        ("digest", "all cases", "pending"),
    ]
    digest_due = out.splitlines()[-1].split("\t")[1]  # "YYYY-MM-DD 08:00 CET" (or CEST), a Monday
    assert digest_due[11:16] == "08:00" and date.fromisoformat(digest_due[:10]).weekday() == 0


@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL: set ALERTS_TEST_DATABASE_URL")
async def test_two_services_on_postgresql_fire_each_once_and_fail_over(
    setup: tuple[Path, str, int], capture: CaptureServer
) -> None:
    config, _, alert_id = setup
    first, second = Service(config, free_port()), Service(config, free_port())
    try:
        await first.start()
        await second.start()
        ids = []
        for _ in range(10):
            code, out, err = await cli(
                config, "followup", "add", str(alert_id), "--in", "2s", "--kind", "reminder", "--as", "olga"
            )
            assert code == 0, err
            ids.append(int(out))
        await wait_messages(capture, 10, timeout=15)
        await asyncio.sleep(1.0)
        assert len(capture.messages()) == 10
        assert "this process schedules follow-ups" in first.log.read_text()
        await first.stop()  # the leader goes: the other takes the lock
        code, out, _ = await cli(
            config, "followup", "add", str(alert_id), "--in", "1s", "--kind", "reminder", "--as", "olga"
        )
        await wait_messages(capture, 11, timeout=20)
        await asyncio.sleep(1.0)
    finally:
        await first.stop()
        await second.stop()
    assert len(capture.messages()) == 11
    assert len({m.headers["message-id"] for m in capture.messages()}) == 11
    assert "this process schedules follow-ups" in second.log.read_text()
