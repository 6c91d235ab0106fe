"""A running service seen as an operator sees it: a worker's metrics listener scraped while it
sends (the counts move, parsed by prometheus-client's own parser), and the JSON log of a full
send through ``alerts serve`` (every line a JSON object; request, alert and delivery ids where
known; no address, token or secret anywhere)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from alerts.accounts import users
from alerts.core import logs
from alerts.core.clock import utcnow
from alerts.core.config import EmailSettings, Settings
from alerts.service import run_service
from alerts.store.models import Contact
from tests.factories import add_contacts, approved_alert, make_users, published_alert
from tests.scrape import samples, value
from tests.smtpd import SMTPTestServer

SECRET = "observability-secret-0123456789"
NOISY = ("aiosqlite", "asyncio", "mail.log", "apscheduler", "alembic", "httpx", "httpcore")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_settings(db_url: str, smtpd_settings: EmailSettings, **sections: dict[str, Any]) -> Settings:
    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("server", secret_key=SECRET, port=free_port(), public_url="https://alerts.test")
        .replace("email", host=smtpd_settings.host, port=smtpd_settings.port, pool_size=1, timeout=10.0)
        .replace("metrics", listen=f"127.0.0.1:{free_port()}")
    )
    for name, values in sections.items():
        settings = settings.replace(name, **values)
    return settings


@asynccontextmanager
async def running(settings: Settings, *, web_ui: bool) -> AsyncIterator[None]:
    """``alerts serve`` (web_ui) or ``alerts worker`` in this process until the block ends."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_service(settings, web_ui=web_ui, stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what stopped it
    assert ready.is_set(), "the service did not start"
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@contextmanager
def json_log(settings: Settings) -> Iterator[io.StringIO]:
    """Everything logged meanwhile, at DEBUG, as ``[logging] format = "json"`` writes it."""
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logs.make_handler(format="json", secrets=logs.secrets_of(settings), stream=stream)
    levels = {name: logging.getLogger(name).level for name in (*NOISY, "")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.smtpd_options(stall=0.15)
async def test_a_workers_metrics_move_while_it_sends(
    db_url: str, smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    n = 6
    settings = service_settings(db_url, smtpd_settings)
    await published_alert_at(settings, n)
    listener = f"http://{settings.metrics.listen}"
    seen: list[float] = []
    async with running(settings, web_ui=False), aiohttp.ClientSession() as http:
        async with http.get(f"{listener}/livez") as r:
            assert r.status == 200 and r.headers["X-Request-Id"]
        async with http.get(f"{listener}/readyz") as r:
            assert (r.status, await r.json()) == (
                200,
                {"status": "ok", "checks": {"database": "ok", "schema": "ok", "dispatcher": "ok"}},
            )
        first = None
        for _ in range(400):  # every 25 ms, at most 10 s: the relay answers each message in 0.15 s
            async with http.get(f"{listener}/metrics") as r:  # no token on the private listener
                assert r.status == 200 and r.content_type == "text/plain"
                figures = samples(await r.text())
            first = first or figures
            seen.append(value(figures, "alerts_deliveries_total", channel="email", state="sent") or 0.0)
            if seen[-1] == n:
                break
            await asyncio.sleep(0.025)
    assert seen[-1] == n, seen
    assert any(0 < s < n for s in seen), f"never scraped mid-send: {seen}"  # the counts moved
    assert seen == sorted(seen)
    assert value(first, "alerts_queue_depth") == n  # before: the whole alert waited
    assert value(figures, "alerts_claimed_total", channel="email") == n
    assert value(figures, "alerts_send_latency_seconds_count", channel="email") == n
    latency = value(figures, "alerts_send_latency_seconds_sum", channel="email")
    assert latency is not None and latency >= n * 0.15 * 0.9
    assert value(figures, "alerts_send_latency_seconds_bucket", channel="email", le="0.1") == 0
    assert value(figures, "process_cpu_seconds_total")
    assert len(smtpd_server.messages()) == n


async def test_a_worker_whose_metrics_port_is_taken_still_sends(
    db_url: str, smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = service_settings(db_url, smtpd_settings, metrics={"listen": f"127.0.0.1:{port}"})
        await published_alert_at(settings, 2)
        async with running(settings, web_ui=False):
            for _ in range(400):
                if len(smtpd_server.messages()) == 2:
                    break
                await asyncio.sleep(0.025)
    assert len(smtpd_server.messages()) == 2
    assert any(
        r.levelname == "ERROR" and f"[metrics] listen 127.0.0.1:{port}" in r.getMessage()
        for r in caplog.records
    )


async def test_the_json_log_of_a_full_send_names_ids_and_never_an_address_or_secret(
    db_url: str, smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    n = 3
    settings = service_settings(db_url, smtpd_settings)
    async with sessions_of(settings) as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, n)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        _, api_token = await users.create_user(
            session, name="sender", role="officer", with_token=True, now=utcnow()
        )
        alert_id = alert.id
        await session.commit()
        contacts = (await session.scalars(select(Contact))).all()
    assert api_token is not None
    base = f"http://127.0.0.1:{settings.server.port}"
    with json_log(settings) as stream:
        async with running(settings, web_ui=True), aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {api_token}"}
            async with http.post(f"{base}/api/v1/alerts/{alert_id}/send", headers=auth, json={}) as r:
                assert r.status in (200, 202), await r.text()
                request_id = r.headers["X-Request-Id"]
            for _ in range(400):
                async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=auth) as r:
                    stats = await r.json()
                if stats["channels"].get("email", {}).get("sent") == n:
                    break
                await asyncio.sleep(0.025)
            assert stats["channels"]["email"]["sent"] == n, stats
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]  # one JSON object per line
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    fan_out = [line for line in lines if "fan-out wrote" in line["message"]]
    assert fan_out and fan_out[0]["request_id"] == request_id and fan_out[0]["alert_id"] == alert_id
    sends = [line for line in lines if line["logger"] == "alerts.delivery.dispatch" and "delivery_id" in line]
    assert len({line["delivery_id"] for line in sends}) == n
    assert all(line["alert_id"] == alert_id and "request_id" not in line for line in sends)
    # nothing a reader of the log must not see: addresses, tokens, secrets
    forbidden = [SECRET, api_token, settings.email.from_.split("<")[1].rstrip(">")]
    for contact in contacts:
        forbidden += [contact.email or "", contact.token or ""]
    forbidden += [message.rcpt_tos[0] for message in smtpd_server.messages()]
    assert len(smtpd_server.messages()) == n
    for secret in filter(None, forbidden):
        assert secret not in text, secret


async def published_alert_at(settings: Settings, n: int) -> int:
    from alerts.app import open_app

    async with open_app(settings, channels={}, migrate=True) as app:
        return await published_alert(app.sessions, n)


@asynccontextmanager
async def sessions_of(settings: Settings) -> AsyncIterator[Any]:
    from alerts.app import open_app

    async with open_app(settings, channels={}, migrate=True) as app, app.sessions() as session:
        yield session


async def test_alerts_worker_writes_json_lines_and_serves_its_listener(db_url: str, tmp_path: Path) -> None:
    """The console script itself: ``[logging] format = "json"`` from the config, the listener
    on a free port (``:0``, logged with the real one), a clean stop on SIGTERM."""
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[metrics]\nlisten = "127.0.0.1:0"\n[logging]\nformat = "json"\n'
    )
    env = {**os.environ, "ALERTS_SERVER_SECRET_KEY": SECRET, "ALERTS_CONFIG": str(config)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alerts", "worker", env=env, stderr=asyncio.subprocess.PIPE, cwd=tmp_path
    )
    assert worker.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        while not any("dispatcher" in line["message"] and "running" in line["message"] for line in lines):
            raw = await asyncio.wait_for(worker.stderr.readline(), timeout=60)
            assert raw, f"the worker stopped: {lines}"
            lines.append(json.loads(raw))  # every line is one JSON object
        url = next(
            line["message"].split()[-1] for line in lines if "metrics and probes on" in line["message"]
        )
        async with aiohttp.ClientSession() as http:
            async with http.get(url.replace("/metrics", "/readyz")) as r:
                assert r.status == 200
            async with http.get(url) as r:
                assert "# TYPE alerts_deliveries_total counter" in await r.text()
    finally:
        worker.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(worker.stderr.read(), timeout=60)
        code = await worker.wait()
    lines += [json.loads(line) for line in rest.decode().splitlines()]
    assert code == 0 and lines[-1]["message"] == "shutting down"
    assert all(line["logger"].startswith(("alerts", "channels")) for line in lines)
