"""/metrics needs a bearer token of a user allowed to view; /healthz tells anyone ok/degraded only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from alerts.accounts import users
from alerts.core.clock import utcnow
from tests.web.conftest import Site


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
