"""/healthz (public: ok/degraded per part, nothing more) and /metrics (Prometheus text format,
for a bearer token of a user allowed to "view")."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy import func, select, text

from alerts.accounts import users
from alerts.core.errors import AlertsError
from alerts.store.models import Delivery

logger = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """Database reachable, dispatcher alive, scheduler running: "ok" or "degraded" each.

    Anyone can ask, so the answer says nothing more; the reason of a degraded part is logged.
    """
    from alerts.web.base import APP

    app = request.app[APP]
    checks: dict[str, str] = {}
    try:
        async with app.reads() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        logger.warning("health check: the database is not reachable: %s", type(exc).__name__)
        checks["database"] = "degraded"
    dispatcher = app.extras.get("dispatcher")
    if dispatcher is not None:
        alive = time.monotonic() - dispatcher.alive_at < 10
        if not alive:
            logger.warning("health check: the dispatcher has stalled")
        checks["dispatcher"] = "ok" if alive else "degraded"
    scheduler = app.extras.get("scheduler")
    if scheduler is not None:
        # a follower waiting for the PostgreSQL leader lock is healthy too
        if not scheduler.scheduler.running:
            logger.warning("health check: the scheduler has stopped")
        checks["scheduler"] = "ok" if scheduler.scheduler.running else "degraded"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "degraded", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Deliveries by channel and state, queue depth, dispatcher counters (bearer token: "view")."""
    from alerts.web.api.routes import authenticate
    from alerts.web.base import APP, error_response

    try:
        users.check(await authenticate(request), "view")
    except AlertsError as exc:
        response = error_response(exc.http_status, exc.code, exc.message, exc.details)
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    app = request.app[APP]
    lines = [
        "# HELP alerts_deliveries Deliveries by channel and state.",
        "# TYPE alerts_deliveries gauge",
    ]
    async with app.reads() as session:
        rows = (
            await session.execute(
                select(Delivery.channel, Delivery.state, func.count()).group_by(
                    Delivery.channel, Delivery.state
                )
            )
        ).all()
    depth = 0
    for channel, state, n in rows:
        lines.append(f'alerts_deliveries{{channel="{channel}",state="{state}"}} {n}')
        if state in ("queued", "deferred", "sending"):
            depth += n
    lines += [
        "# HELP alerts_queue_depth Deliveries not yet final.",
        "# TYPE alerts_queue_depth gauge",
        f"alerts_queue_depth {depth}",
    ]
    dispatcher = app.extras.get("dispatcher")
    if dispatcher is not None:
        c = dispatcher.counters
        lines += [
            "# HELP alerts_dispatcher_sends_total Sends attempted by this process, by outcome.",
            "# TYPE alerts_dispatcher_sends_total counter",
            f'alerts_dispatcher_sends_total{{outcome="sent"}} {c.sent}',
            f'alerts_dispatcher_sends_total{{outcome="failed"}} {c.failed}',
            f'alerts_dispatcher_sends_total{{outcome="deferred"}} {c.deferred}',
            "# HELP alerts_send_seconds_total Time spent in channel sends.",
            "# TYPE alerts_send_seconds_total counter",
            f"alerts_send_seconds_total {c.send_seconds:.3f}",
            "# HELP alerts_send_latency_seconds Time from handing a message to its channel to its answer.",
            "# TYPE alerts_send_latency_seconds histogram",
        ]
        for channel, histogram in sorted(c.latency.items()):
            lines += histogram.lines("alerts_send_latency_seconds", f'channel="{channel}"')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")


def setup(webapp: web.Application) -> None:
    """Add the operations routes."""
    webapp.router.add_get("/healthz", healthz)
    webapp.router.add_get("/metrics", metrics)
