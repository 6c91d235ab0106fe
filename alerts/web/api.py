"""JSON API under /api/v1 (bearer tokens)."""

from __future__ import annotations

from aiohttp import web

from alerts import drafts, tracking, users
from alerts.errors import Unauthorized, ValidationError
from alerts.models import User


async def authenticate(request: web.Request) -> User:
    """The user named by the request's bearer token."""
    from alerts.web import APP

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an API token is required: Authorization: Bearer <token>.")
    async with request.app[APP].sessions() as session:
        return await users.authenticate_token(session, token.strip())


def _int(request: web.Request, name: str, default: int, *, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise ValidationError(f"{name}: must be a whole number up to {maximum}.", details={"field": name})
    return int(raw)


async def alert_stats(request: web.Request) -> web.Response:
    """GET /api/v1/alerts/{id}/stats"""
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "view")
    async with request.app[APP].sessions() as session:
        alert = await drafts.get_alert(session, int(request.match_info["id"]))
        return web.json_response(await tracking.stats(session, alert))


async def alert_deliveries(request: web.Request) -> web.Response:
    """GET /api/v1/alerts/{id}/deliveries?state=&channel="""
    from alerts.web import APP

    user = await authenticate(request)
    users.check(user, "view")
    async with request.app[APP].sessions() as session:
        alert = await drafts.get_alert(session, int(request.match_info["id"]))
        rows = await tracking.deliveries(
            session, alert.id, state=request.query.get("state") or None, channel=request.query.get("channel") or None,
            limit=_int(request, "limit", 100, maximum=1000), offset=_int(request, "offset", 0, maximum=10**9),
        )
    return web.json_response({"deliveries": rows})


def setup(webapp: web.Application) -> None:
    """Add the API routes."""
    webapp.router.add_get(r"/api/v1/alerts/{id:\d+}/stats", alert_stats)
    webapp.router.add_get(r"/api/v1/alerts/{id:\d+}/deliveries", alert_deliveries)
