"""The web app: health, metrics, API stats/deliveries with bearer tokens, signed unsubscribe links."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from alerts.accounts import users
from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.web import make_web_app
from tests.factories import published_alert
from tests.scrape import samples, value


@pytest.fixture
async def server(db_url: str):  # type: ignore[no-untyped-def]
    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        srv = TestServer(make_web_app(app))
        await srv.start_server()
        yield app, srv
        await srv.close()


async def test_health_metrics_api_and_page(server) -> None:  # type: ignore[no-untyped-def]
    app, srv = server
    alert_id = await published_alert(app.sessions, 3)
    async with app.sessions.begin() as session:
        _, token = await users.create_user(session, name="vera", role="viewer", with_token=True, now=utcnow())
    base = str(srv.make_url(""))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200 and (await r.json())["checks"]["database"] == "ok"
        async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
            figures = samples(await r.text())
            assert value(figures, "alerts_deliveries_open", channel="email", state="queued") == 3
            assert value(figures, "alerts_queue_depth") == 3
        async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats") as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "unauthorized"
        async with http.get(
            f"{base}/api/v1/alerts/{alert_id}/stats", headers={"Authorization": "Bearer forged"}
        ) as r:
            assert r.status == 401
        auth = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/api/v1/alerts/{alert_id}/stats", headers=auth) as r:
            doc = await r.json()
            assert doc["id"] == alert_id and doc["channels"]["email"]["queued"] == 3
        async with http.get(
            f"{base}/api/v1/alerts/{alert_id}/deliveries?state=queued&channel=email", headers=auth
        ) as r:
            assert len((await r.json())["deliveries"]) == 3
        async with http.get(f"{base}/api/v1/alerts/{alert_id}/deliveries?state=bogus", headers=auth) as r:
            assert r.status == 422
            assert (await r.json())["error"]["message"] == (
                "state: 'bogus' is not one of queued, sending, sent, delivered, deferred, failed, bounced, "
                "suppressed, cancelled."
            )
        async with http.get(f"{base}/api/v1/alerts/999/stats", headers=auth) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_unsubscribe_links_in_messages_are_signed(server) -> None:  # type: ignore[no-untyped-def]
    from alerts.contacts.subscriptions import Signer
    from alerts.delivery.messages import Claimed
    from alerts.delivery.publish import load_alert_info

    app, _ = server
    alert_id = await published_alert(app.sessions, 1)
    async with app.sessions() as session:
        info = await load_alert_info(session, alert_id)
    item = Claimed(
        id=1,
        alert_id=alert_id,
        contact_id=1,
        channel="email",
        audience="authority",
        language="en",
        address="person0@example.org",
        attempts=1,
        unknown_outcomes=0,
        from_state="queued",
        token="abcdefghijklmnopqrstuvwxyz012345",
    )
    url = app.builder.build(item, info).recipient.unsubscribe_url
    token = url.rsplit("/", 1)[1]
    signer = Signer(app.signing)
    assert token != item.token and signer.read_link(token) == item.token
    assert signer.read_link(token[:-2] + "xx") is None  # a forged signature is refused


async def test_metrics_report_send_latency_and_health_reports_parts(server) -> None:  # type: ignore[no-untyped-def]
    from alerts.followups.scheduler import start_scheduler
    from alerts.service import make_dispatcher
    from channels.memory import MemoryChannel

    app, srv = server
    alert_id = await published_alert(app.sessions, 4)
    app.channels["email"] = MemoryChannel()
    dispatcher = make_dispatcher(app)
    app.extras["dispatcher"] = dispatcher
    await dispatcher.run_until_done(alert_id, timeout=10)
    scheduler = await start_scheduler(app)
    app.extras["scheduler"] = scheduler
    base = str(srv.make_url(""))
    async with app.sessions.begin() as session:
        _, token = await users.create_user(session, name="vera", role="viewer", with_token=True, now=utcnow())
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
                text = await r.text()
            async with http.get(f"{base}/healthz") as r:
                health = await r.json()
    finally:
        await scheduler.stop()
    figures = samples(text)
    assert value(figures, "alerts_send_latency_seconds_count", channel="email") == 4
    assert value(figures, "alerts_send_latency_seconds_bucket", channel="email", le="+Inf") == 4
    assert value(figures, "alerts_deliveries_total", channel="email", state="sent") == 4
    assert value(figures, "alerts_claimed_total", channel="email") == 4
    assert value(figures, "alerts_claim_latency_seconds_count", channel="email")
    assert value(figures, "alerts_queue_depth") == 0
    assert health == {"status": "ok", "checks": {"database": "ok", "dispatcher": "ok", "scheduler": "ok"}}


async def test_the_deliveries_api_gives_the_page_its_limit_and_offset_ask_for(server) -> None:  # type: ignore[no-untyped-def]
    app, srv = server
    alert_id = await published_alert(app.sessions, 3)
    async with app.sessions.begin() as session:
        _, token = await users.create_user(session, name="vera", role="viewer", with_token=True, now=utcnow())
    url = f"{srv.make_url('')}/api/v1/alerts/{alert_id}/deliveries"
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=auth) as r:
            every = [d["id"] for d in (await r.json())["deliveries"]]
        async with http.get(f"{url}?limit=1&offset=1", headers=auth) as r:
            page = [d["id"] for d in (await r.json())["deliveries"]]
    assert len(every) == 3 and every == sorted(every)
    assert page == every[1:2]
