"""Operations endpoints, on ``alerts serve``'s port and on each worker's ``[metrics] listen``.

- ``/livez``: the process answers (its event loop runs). Restart it when this fails.
- ``/readyz``: the database is reachable and at this version's schema, and the dispatcher is
  running. Send it work (traffic, a load balancer's pool) only when this passes.
- ``/healthz``: database, dispatcher and scheduler, "ok" or "degraded" each.
- ``/metrics``: this process's figures (``alerts.core.metrics``) in the Prometheus text
  format. On ``serve`` it needs a bearer token of a user allowed to "view"; on a worker's
  listener it needs none (bind it to loopback or a private network).

The probes are public, so they say ok/degraded per part and nothing more; the reason of a
failed part is logged.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from sqlalchemy import text

from alerts.accounts import users
from alerts.app import App
from alerts.core.errors import AlertsError
from alerts.core.metrics import CONTENT_TYPE
from alerts.store.migrate import current_revision, head_revision

logger = logging.getLogger(__name__)

#: The dispatcher's loops mark progress (a claim, a flush of outcomes, a housekeeping round:
#: each several times a second); this long without any is a stall. Housekeeping alone is not
#: enough: on SQLite it can wait seconds for the write lock behind a busy claimer and recorder
#: while the dispatcher sends at full speed (seen at 100,000 recipients: /healthz said 503).
DISPATCHER_STALL = 10.0


async def _database(app: App) -> str:
    try:
        async with app.reads() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        logger.warning("health check: the database is not reachable: %s", type(exc).__name__)
        return "degraded"
    return "ok"


def _dispatcher(app: App) -> str | None:
    dispatcher = app.extras.get("dispatcher")
    if dispatcher is None:
        return None
    if time.monotonic() - dispatcher.alive_at < DISPATCHER_STALL:
        return "ok"
    logger.warning("health check: the dispatcher has stalled")
    return "degraded"


async def _schema(app: App) -> str:
    try:
        current = await current_revision(app.engine)
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: the schema version cannot be read: %s", type(exc).__name__)
        return "degraded"
    if current != head_revision():
        logger.warning(
            "readiness: the database is at %s, this version needs %s (run `alerts init`)",
            current,
            head_revision(),
        )
        return "degraded"
    return "ok"


def _answer(checks: dict[str, str]) -> web.Response:
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "degraded", "checks": checks}, status=200 if ok else 503
    )


def _app(request: web.Request) -> App:
    from alerts.web.base import APP

    return request.app[APP]


async def livez(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Database reachable and migrated, dispatcher running: ready for work."""
    app = _app(request)
    checks = {"database": await _database(app)}
    checks["schema"] = await _schema(app) if checks["database"] == "ok" else "degraded"
    dispatcher = _dispatcher(app)
    if dispatcher is not None:
        checks["dispatcher"] = dispatcher
    return _answer(checks)


async def healthz(request: web.Request) -> web.Response:
    """Database reachable, dispatcher alive, scheduler running: "ok" or "degraded" each."""
    app = _app(request)
    checks = {"database": await _database(app)}
    dispatcher = _dispatcher(app)
    if dispatcher is not None:
        checks["dispatcher"] = dispatcher
    scheduler = app.extras.get("scheduler")
    if scheduler is not None:
        # a follower waiting for the PostgreSQL leader lock is healthy too
        if not scheduler.scheduler.running:
            logger.warning("health check: the scheduler has stopped")
        checks["scheduler"] = "ok" if scheduler.scheduler.running else "degraded"
    return _answer(checks)


async def _render(app: App) -> web.Response:
    try:
        await app.gauges.refresh()
    except Exception as exc:  # noqa: BLE001 - the process's own figures are still worth a scrape
        logger.warning("metrics: the database gauges could not be read: %s", type(exc).__name__)
    response = web.Response(body=app.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def metrics(request: web.Request) -> web.Response:
    """This process's figures (bearer token of a user allowed to "view")."""
    from alerts.web.api.routes import authenticate
    from alerts.web.base import error_response

    try:
        users.check(await authenticate(request), "view")
    except AlertsError as exc:
        response = error_response(exc.http_status, exc.code, exc.message, exc.details)
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return await _render(_app(request))


async def open_metrics(request: web.Request) -> web.Response:
    """This process's figures, without a token (a worker's private listener)."""
    return await _render(_app(request))


def setup(webapp: web.Application) -> None:
    """Add the operations routes (``/metrics`` behind a token)."""
    webapp.router.add_get("/healthz", healthz)
    webapp.router.add_get("/livez", livez)
    webapp.router.add_get("/readyz", readyz)
    webapp.router.add_get("/metrics", metrics)


def make_listener_app(app: App) -> web.Application:
    """A worker's metrics listener: the probes and ``/metrics`` without a token."""
    from alerts.web import request_ids
    from alerts.web.base import APP

    webapp = web.Application()
    webapp[APP] = app
    request_ids.setup(webapp)
    webapp.router.add_get("/healthz", healthz)
    webapp.router.add_get("/livez", livez)
    webapp.router.add_get("/readyz", readyz)
    webapp.router.add_get("/metrics", open_metrics)
    return webapp
