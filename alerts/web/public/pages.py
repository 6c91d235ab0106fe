"""Public pages, no sign-in: their shared state and page helpers (``alerts.web.public.table``
registers the routes). The handlers are in ``subscribe`` (subscribe with double opt-in,
confirm, unsubscribe with RFC 8058 one-click, preferences), ``archive`` (the archive of public
alerts, its Atom feed and CAP 1.2 output) and ``engagement`` (the opt-in tracking links).

Pages that carry a token in their URL are never cached and send no Referer, so the token
does not leak to another site.

``POST /subscribe`` is limited per client network (``SUBSCRIBE_LIMIT`` in ``SUBSCRIBE_WINDOW``,
then 429 with ``Retry-After``; the address as sign-in reads it, ``clients.client_address``), and
confirmation mails an hour per service, client network and recipient domain
(``CONFIRM_MAILS_PER_HOUR``, ``NETWORK_MAILS_PER_HOUR``, ``DOMAIN_MAILS_PER_HOUR``): past those,
subscribe answers 429 saying that nothing was sent (and logs a warning), so nobody can use the
form to mail-bomb strangers, burn the sending reputation or starve real subscribers. The counts
are in the database (``alerts.contacts.subscribe_limits``): they hold across processes and
restarts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from aiohttp import web

from alerts.app import App
from alerts.contacts.subscribe_limits import Limits
from alerts.core.errors import ValidationError
from alerts.web import i18n
from alerts.web.base import check_fields
from alerts.web.bodies import read_body
from alerts.web.i18n import N_

PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
i18n.install(PAGES)
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
PRIVATE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
#: Confirmation mails being sent in the background (a reference keeps each task alive).
CONFIRMATIONS = web.AppKey("confirmations", set[asyncio.Task[bool]])

#: Subscribe requests per client network (IPv4 /24, IPv6 /64) in SUBSCRIBE_WINDOW seconds.
SUBSCRIBE_LIMIT = 5
SUBSCRIBE_WINDOW = 10 * 60
#: Confirmation mails per hour for the whole service, per client network, per recipient domain.
CONFIRM_MAILS_PER_HOUR = 200
NETWORK_MAILS_PER_HOUR = 5
DOMAIN_MAILS_PER_HOUR = 50

#: The subscribe limits (counted in the database: ``alerts.contacts.subscribe_limits``).
SUBSCRIBE_LIMITS = web.AppKey("subscribe_limits", Limits)


def render_page(
    request: web.Request,
    name: str,
    *,
    status: int = 200,
    private: bool = False,
    subscriber_language: str | None = None,
    **context: Any,
) -> web.Response:
    """A page of ``templates/`` in the visitor's language (``subscriber_language``: the language
    of the subscriber whose link opened it, after the browser's), with the security headers
    (``private``: never cached)."""
    language = i18n.choose(request, fallback=subscriber_language)
    with i18n.use(language):
        text = PAGES.get_template(name).render(
            hl=language, switch=i18n.switch(request, language), countries_list=i18n.countries, **context
        )
    response = web.Response(
        text=text, status=status, content_type="text/html", headers=PRIVATE if private else SECURITY_HEADERS
    )
    i18n.remember(request, response)
    return response


#: A line of a message page: a msgid, or a msgid and the values of its ``%(name)s`` slots.
Line = str | tuple[str, dict[str, Any]]


def message_page(
    request: web.Request,
    title: str,
    *lines: Line,
    status: int = 200,
    action: str = "",
    button: str = "",
    subscriber_language: str | None = None,
) -> web.Response:
    """A short page of a title and lines (with an optional button), never cached; the title,
    lines and button are msgids (marked with ``N_``), translated here."""
    with i18n.use(i18n.choose(request, fallback=subscriber_language)):
        shown = [
            i18n.gettext(line) if isinstance(line, str) else i18n.gettext(line[0]) % line[1] for line in lines
        ]
        title, button = i18n.gettext(title), i18n.gettext(button) if button else ""
    return render_page(
        request,
        "message.html",
        status=status,
        private=True,
        title=title,
        lines=shown,
        action=action,
        button=button,
        subscriber_language=subscriber_language,
    )


def not_found(request: web.Request) -> web.Response:
    """The one answer for an unknown, forged or expired link."""
    return message_page(
        request,
        N_("Link not valid"),
        N_("This link is not valid or has expired."),
        N_("If you want to subscribe, please start again from the subscribe page."),
        status=404,
    )


async def read_form(request: web.Request) -> dict[str, list[str]]:
    """The url-encoded form of a POST, at most ``MAX_FORM_BYTES`` (413 past that)."""
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("the form could not be read") from None
    check_fields((name, value) for name, values in form.items() for value in values)
    return form


def form_value(form: dict[str, list[str]], name: str, default: str = "") -> str:
    """The first value of a form field, or ``default``."""
    return (form.get(name) or [default])[0]


def chosen_countries(form: dict[str, list[str]]) -> list[str]:
    """The countries of the form: the codes picked from the list (``country``, repeated) and,
    as before, any comma-separated ones of the ``countries`` text field; blanks and repeats
    (whatever their case) dropped."""
    picked = [c.strip() for c in form.get("country", []) if c.strip()]
    typed = [c.strip() for c in form_value(form, "countries").split(",") if c.strip()]
    unique: dict[str, str] = {}
    for country in picked + typed:
        unique.setdefault(country.casefold(), country)
    return list(unique.values())


def form_choices(app: App) -> dict[str, Any]:
    """The alert kinds (template families) and languages a subscriber can choose from."""
    families = app.renderer.families()
    codes = sorted({lang for f in families for lang in app.renderer.family(f).languages} | {"en"})
    return {"families": families, "languages": [(c, i18n.NATIVE_NAMES.get(c, c)) for c in codes]}


def add_state(webapp: web.Application) -> None:
    """The public pages' state in ``webapp``: confirmation tasks and the subscribe limits
    (read here, at start-up, so a test may lower ``CONFIRM_MAILS_PER_HOUR``)."""
    webapp[CONFIRMATIONS] = set()
    webapp[SUBSCRIBE_LIMITS] = Limits(
        requests=SUBSCRIBE_LIMIT,
        request_window=SUBSCRIBE_WINDOW,
        service_mails=CONFIRM_MAILS_PER_HOUR,
        network_mails=NETWORK_MAILS_PER_HOUR,
        domain_mails=DOMAIN_MAILS_PER_HOUR,
    )
