"""/metrics needs a bearer token of a user allowed to view and parses with prometheus-client's own
parser; /healthz, /livez and /readyz tell anyone ok/degraded only; every response has a request
id that a client cannot choose (a trusted proxy can)."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.app import open_app
from alerts.core import logs
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.delivery.publish import publish
from alerts.store.models import Delivery, Followup
from alerts.web import make_web_app
from tests.factories import add_contacts, approved_alert
from tests.scrape import samples, value
from tests.web.conftest import Site, site_settings


async def test_metrics_need_a_token_of_an_active_user(site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic dmVyYTp4"}):
        status, body = await site.call("GET", "/metrics", headers=headers)
        assert status == 401, headers
        assert body["error"]["code"] == "unauthorized"
    status, body = await site.call("GET", "/metrics", user="vera")
    assert status == 200 and "# TYPE alerts_queue_depth gauge" in body
    async with site.app.sessions.begin() as session:
        vera = await users.get_user(session, "vera")
        await users.set_active(session, vera, False, by=await users.get_user(session, "ada"), now=utcnow())
    status, body = await site.call("GET", "/metrics", user="vera")
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_health_says_ok_or_degraded_and_nothing_more(site: Site) -> None:
    status, body = await site.call("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok", "checks": {"database": "ok"}})

    class Broken:
        def __call__(self) -> Any:
            raise OSError("secret detail: /var/lib/alerts/alerts.db is not writable")

    reads = site.app.reads
    site.app.reads = Broken()  # type: ignore[assignment]
    site.app.extras["dispatcher"] = SimpleNamespace(alive_at=0.0)
    site.app.extras["scheduler"] = SimpleNamespace(scheduler=SimpleNamespace(running=False))
    try:
        status, body = await site.call("GET", "/healthz")
    finally:
        site.app.reads = reads
        site.app.extras.clear()
    assert status == 503
    assert body == {
        "status": "degraded",
        "checks": {"database": "degraded", "dispatcher": "degraded", "scheduler": "degraded"},
    }


async def test_livez_and_readyz(site: Site) -> None:
    assert await site.call("GET", "/livez") == (200, {"status": "ok"})
    status, body = await site.call("GET", "/readyz")
    assert (status, body) == (200, {"status": "ok", "checks": {"database": "ok", "schema": "ok"}})
    site.app.extras["dispatcher"] = SimpleNamespace(alive_at=0.0)  # stalled
    try:
        status, body = await site.call("GET", "/readyz")
    finally:
        site.app.extras.clear()
    assert status == 503 and body["checks"]["dispatcher"] == "degraded"
    assert await site.call("GET", "/livez") == (200, {"status": "ok"})  # alive all the same


async def test_readyz_refuses_a_database_not_migrated(tmp_path: Path) -> None:
    settings = Settings().replace("database", url=f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    async with open_app(settings, channels={}) as app:  # never migrated
        server = TestServer(make_web_app(app))
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(server.make_url("/readyz")) as r:
                    assert r.status == 503
                    assert await r.json() == {
                        "status": "degraded",
                        "checks": {"database": "ok", "schema": "degraded"},
                    }
                async with http.get(server.make_url("/livez")) as r:
                    assert r.status == 200
        finally:
            await server.close()


async def _published(site: Site, n: int) -> int:
    """An alert fanned out to n contacts, by the site's own officer and reviewer."""
    async with site.app.sessions.begin() as session:
        officer = await users.get_user(session, "olga")
        reviewer = await users.get_user(session, "rafael")
        await add_contacts(session, n)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())
        return alert.id


async def test_metrics_parse_and_the_database_is_asked_at_most_once_per_interval(site: Site) -> None:
    alert_id = await _published(site, 3)
    status, text = await site.call("GET", "/metrics", user="vera")
    assert status == 200
    figures = samples(text)  # prometheus-client's own parser: the exposition is well formed
    assert value(figures, "alerts_deliveries_open", channel="email", state="queued") == 3
    assert value(figures, "alerts_queue_depth") == 3
    assert value(figures, "alerts_scheduler_lag_seconds") == 0
    assert value(figures, "alerts_queue_oldest_due_seconds") is not None
    assert value(figures, "process_resident_memory_bytes")  # process metrics
    assert site.app.gauges.queries == 1
    async with site.app.sessions.begin() as session:  # the queue empties meanwhile
        await session.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="sent"))
    for _ in range(3):  # scraped again within the interval: the cached figures, no query
        _, text = await site.call("GET", "/metrics", user="vera")
    assert site.app.gauges.queries == 1 and value(samples(text), "alerts_queue_depth") == 3
    site.app.gauges.ttl = 0.0  # the interval has passed
    _, text = await site.call("GET", "/metrics", user="vera")
    figures = samples(text)
    assert site.app.gauges.queries == 2 and value(figures, "alerts_queue_depth") == 0
    # an emptied queue leaves no stale per-channel figure behind
    assert value(figures, "alerts_deliveries_open", channel="email", state="queued") is None


async def test_scheduler_lag_is_how_late_the_most_overdue_followup_is(site: Site) -> None:
    alert_id = await _published(site, 1)
    async with site.app.sessions.begin() as session:
        session.add(Followup(alert_id=alert_id, kind="reminder", due_at=utcnow() - timedelta(minutes=10)))
        session.add(Followup(alert_id=alert_id, kind="reminder", due_at=utcnow() + timedelta(hours=1)))
    _, text = await site.call("GET", "/metrics", user="vera")
    lag = value(samples(text), "alerts_scheduler_lag_seconds")
    assert lag is not None and 600 <= lag < 700


async def test_scheduler_lag_leaves_out_followups_already_fired_or_cancelled(site: Site) -> None:
    """A reminder fired three hours ago and one cancelled two hours ago are done with: the
    scheduler is only as late as the follow-up still waiting (ten minutes overdue)."""
    alert_id = await _published(site, 1)
    now = utcnow()
    hours = timedelta(hours=1)
    async with site.app.sessions.begin() as session:
        session.add(
            Followup(alert_id=alert_id, kind="reminder", due_at=now - 3 * hours, fired_at=now - 3 * hours)
        )
        session.add(
            Followup(alert_id=alert_id, kind="reminder", due_at=now - 2 * hours, cancelled_at=now - 3 * hours)
        )
        session.add(Followup(alert_id=alert_id, kind="reminder", due_at=now - timedelta(minutes=10)))
    _, text = await site.call("GET", "/metrics", user="vera")
    lag = value(samples(text), "alerts_scheduler_lag_seconds")
    assert lag is not None and 600 <= lag < 700, lag


async def test_every_response_has_a_request_id_and_a_client_cannot_choose_it(site: Site) -> None:
    seen = set()
    for method, path, headers in (
        ("GET", "/healthz", {}),
        ("GET", "/no/such/page", {}),
        ("GET", "/api/v1/alerts", {}),  # 401 JSON error
        ("GET", "/metrics", site.auth("vera")),
        ("GET", "/healthz", {"X-Request-Id": "chosen-by-the-client-0001"}),  # not a trusted proxy
    ):
        async with site.http.request(method, site.base + path, headers=headers) as r:
            rid = r.headers["X-Request-Id"]
            assert re.fullmatch(r"[0-9a-f]{32}", rid), (path, rid)
            seen.add(rid)
    assert len(seen) == 5


async def test_a_trusted_proxys_sane_request_id_is_kept(db_url: str) -> None:
    async with open_app(site_settings(db_url, trusted_proxies="127.0.0.1"), channels={}) as app:
        server = TestServer(make_web_app(app))
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                for given, kept in (
                    ("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", True),
                    ("nginx:0123456789abcdef", True),
                    ("short", False),
                    ("x" * 129, False),
                    ("has spaces in it", False),
                    ('quote"and<tag>', False),
                ):
                    async with http.get(server.make_url("/livez"), headers={"X-Request-Id": given}) as r:
                        assert (r.headers["X-Request-Id"] == given) is kept, given
        finally:
            await server.close()


async def test_log_records_of_a_request_carry_its_id(site: Site) -> None:
    stream = io.StringIO()
    handler = logs.make_handler(format="json", stream=stream)
    logging.getLogger().addHandler(handler)

    class Broken:
        def __call__(self) -> Any:
            raise OSError("unreachable")

    reads = site.app.reads
    site.app.reads = Broken()  # type: ignore[assignment]
    try:
        async with site.http.get(site.base + "/healthz") as r:
            rid = r.headers["X-Request-Id"]
    finally:
        site.app.reads = reads
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    warning = next(line for line in lines if "database is not reachable" in line["message"])
    assert warning["request_id"] == rid and warning["level"] == "WARNING"
    assert warning["logger"] == "alerts.web.ops"


async def test_oldest_due_skips_paused_alerts_and_scheduler_lag_only_scheduled_ones(site: Site) -> None:
    """A paused alert's overdue rows are not the queue's fault; an alert that was scheduled and has
    gone out is no longer the scheduler's."""
    from alerts.store.models import Alert

    running = await _published(site, 1)
    async with site.app.sessions.begin() as session:
        officer = await users.get_user(session, "olga")
        reviewer = await users.get_user(session, "rafael")
        await add_contacts(session, 1, start=10)
        paused = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, paused, now=utcnow())
        now = utcnow()
        for alert_id, late in ((running, timedelta(minutes=10)), (paused.id, timedelta(hours=1))):
            await session.execute(
                update(Delivery).where(Delivery.alert_id == alert_id).values(next_attempt_at=now - late)
            )
        await session.execute(
            update(Alert).where(Alert.id == paused.id).values(paused=True, send_at=now - timedelta(hours=2))
        )
    _, text = await site.call("GET", "/metrics", user="vera")
    figures = samples(text)
    oldest = value(figures, "alerts_queue_oldest_due_seconds")
    assert oldest is not None and 600 <= oldest < 700
    assert value(figures, "alerts_scheduler_lag_seconds") == 0


async def test_open_deliveries_are_counted_per_channel_and_state(site: Site) -> None:
    """Each (channel, state) pair is its own figure: two channels, two states."""
    async with site.app.sessions.begin() as session:
        officer = await users.get_user(session, "olga")
        reviewer = await users.get_user(session, "rafael")
        await add_contacts(session, 3, telegram=True)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        await publish(session, alert, now=utcnow())
        deferred = await session.scalar(
            select(Delivery.id).where(Delivery.alert_id == alert.id, Delivery.channel == "email").limit(1)
        )
        await session.execute(update(Delivery).where(Delivery.id == deferred).values(state="deferred"))
    _, text = await site.call("GET", "/metrics", user="vera")
    figures = samples(text)
    assert value(figures, "alerts_deliveries_open", channel="email", state="queued") == 2
    assert value(figures, "alerts_deliveries_open", channel="email", state="deferred") == 1
    assert value(figures, "alerts_deliveries_open", channel="telegram", state="queued") == 3
    assert value(figures, "alerts_queue_depth") == 6


async def test_the_oldest_due_delivery_waiting_under_a_second_is_told_to_the_fraction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A queue served in time says so: 0.25 s, not a second it has not waited."""
    from alerts.core.metrics import Metrics
    from alerts.delivery.gauges import QueueGauges
    from tests.factories import published_alert

    alert_id = await published_alert(sessions, 1)
    now = utcnow()
    async with sessions.begin() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == alert_id)
            .values(next_attempt_at=now - timedelta(milliseconds=250))
        )
    metrics = Metrics(process=False)
    await QueueGauges(metrics, sessions, clock=lambda: now).refresh()
    figures = samples(metrics.render().decode())
    assert value(figures, "alerts_queue_oldest_due_seconds") == 0.25
