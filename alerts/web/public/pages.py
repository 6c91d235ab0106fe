"""Public pages, no sign-in: the routes (``setup``), their shared state and page helpers.
The handlers are in ``subscribe`` (subscribe with double opt-in, confirm, unsubscribe with
RFC 8058 one-click, preferences) and ``archive`` (the archive of public alerts, its Atom feed
and CAP 1.2 output).

Pages that carry a token in their URL are never cached and send no Referer, so the token
does not leak to another site.

``POST /subscribe`` is limited per client address (``SUBSCRIBE_LIMIT`` in ``SUBSCRIBE_WINDOW``,
then 429 with ``Retry-After``; the address as sign-in reads it, ``auth.client_address``), and
the service mails at most ``CONFIRM_MAILS_PER_HOUR`` confirmations: past that, subscribe
answers the same page but sends nothing (and logs a warning), so nobody can use the form to
mail-bomb strangers or burn the sending reputation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from aiohttp import web

from alerts.app import App
from alerts.core.errors import ValidationError
from alerts.core.ids import ID_PATTERN
from alerts.web import auth

PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
MAX_FORM_BYTES = 16 * 1024
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
PRIVATE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
#: Confirmation mails being sent in the background (a reference keeps each task alive).
CONFIRMATIONS = web.AppKey("confirmations", set[asyncio.Task[bool]])

#: Subscribe requests per client address in SUBSCRIBE_WINDOW seconds; more get 429.
SUBSCRIBE_LIMIT = 5
SUBSCRIBE_WINDOW = 10 * 60
#: Confirmation mails per hour for the whole service; more are not sent.
CONFIRM_MAILS_PER_HOUR = 200


@dataclass
class SubscribeLimits:
    """Sliding windows (in memory, per process): requests per address, confirmation mails."""

    addresses: auth.LoginLimiter
    mails: auth.LoginLimiter


SUBSCRIBE_LIMITS = web.AppKey("subscribe_limits", SubscribeLimits)


def _page(name: str, *, status: int = 200, private: bool = False, **context: Any) -> web.Response:
    return web.Response(
        text=PAGES.get_template(name).render(**context),
        status=status,
        content_type="text/html",
        headers=PRIVATE if private else SECURITY_HEADERS,
    )


def _message(title: str, *lines: str, status: int = 200, action: str = "", button: str = "") -> web.Response:
    return _page(
        "message.html", status=status, private=True, title=title, lines=lines, action=action, button=button
    )


def not_found() -> web.Response:
    """The one answer for an unknown, forged or expired link."""
    return _message(
        "Link not valid",
        "This link is not valid or has expired.",
        "If you want to subscribe, please start again from the subscribe page.",
        status=404,
    )


def _base(app: App) -> str:
    return app.settings.server.public_url.rstrip("/")


async def _form(request: web.Request) -> dict[str, list[str]]:
    from alerts.web.api.routes import read_body

    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("the form could not be read") from None


def _first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0]


def _countries(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _choices(app: App) -> dict[str, Any]:
    families = app.renderer.families()
    codes = sorted({lang for f in families for lang in app.renderer.family(f).languages} | {"en"})
    return {"families": families, "languages": [(c, LANGUAGE_NAMES.get(c, c)) for c in codes]}


def setup(webapp: web.Application) -> None:
    """Add the public routes."""
    from alerts.web.public import archive, subscribe

    webapp[CONFIRMATIONS] = set()
    webapp[SUBSCRIBE_LIMITS] = SubscribeLimits(
        addresses=auth.LoginLimiter(limit=SUBSCRIBE_LIMIT, window=SUBSCRIBE_WINDOW),
        mails=auth.LoginLimiter(limit=CONFIRM_MAILS_PER_HOUR, window=3600),
    )
    webapp.on_shutdown.append(subscribe._drain_confirmations)
    r = webapp.router
    r.add_get("/subscribe", subscribe.subscribe_form)
    r.add_post("/subscribe", subscribe.subscribe)
    r.add_get("/subscribe/confirm/{token}", subscribe.confirm_page)
    r.add_post("/subscribe/confirm/{token}", subscribe.confirm)
    r.add_get("/unsubscribe/{token}", subscribe.unsubscribe_page)
    r.add_post("/unsubscribe/{token}", subscribe.unsubscribe)
    r.add_get("/preferences/{token}", subscribe.preferences_page)
    r.add_post("/preferences/{token}", subscribe.save_preferences)
    r.add_get("/alerts", archive.archive)
    r.add_get("/alerts/cap.atom", archive.cap_feed)
    r.add_get("/alerts/{id:" + ID_PATTERN + "}.cap.xml", archive.cap_document)
    r.add_get("/alerts/{id:" + ID_PATTERN + "}", archive.alert_page)
    r.add_get("/feed.atom", archive.feed)
