"""The pages' languages: English, French and Spanish, from Babel message catalogues.

The catalogues are ``locales/{fr,es}/LC_MESSAGES/messages.po`` beside this module (shipped in
the wheel as package data); each is compiled in memory the first time it is needed, so there is
no build step and no compiled file to keep in step. English is the msgids themselves.

A page's language is, in order: ``?hl=xx`` in its URL (the switch on every page; it also sets
the ``hl`` cookie), the ``hl`` cookie (this browser's choice), then the signed-in officer's
setting (their account), then the browser's ``Accept-Language`` (Babel's ``negotiate_locale``),
then — on a page a subscriber's link opens — the language they receive alerts in, then English.
(A subscriber's language is that of their alerts, not a page setting: the browser's comes first.)

Templates use ``_("...")``, ``ngettext`` and ``{% trans %}`` (jinja2's ``i18n`` extension,
new-style: ``_("%(n)s sent", n=3)``); both page environments call ``install`` and render inside
``use(language)``. Python code marks strings it hands to a template with ``N_`` so that
``pybabel extract`` finds them; the template translates them with ``_``.

Messages made below the web (errors, the audience's reasons) carry a msgid marked with
``alerts.core.msgids.N_`` and their values; ``said`` shows one in the page's language.
"""

from __future__ import annotations

import functools
import gettext as gettext_module
import io
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web
from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from alerts.core.errors import AlertsError
from alerts.core.languages import PAGE_LANGUAGES
from alerts.core.msgids import N_ as N_  # the pages' modules take it from here
from alerts.core.msgids import Joined, Text

LOCALES_DIR = Path(__file__).parent / "locales"
#: The pages' languages, English first (the fallback).
LANGUAGES = PAGE_LANGUAGES
#: Each language's name in itself, for the switch.
NATIVE_NAMES = {"en": "English", "fr": "Français", "es": "Español"}
COOKIE = "hl"
COOKIE_MAX_AGE = 365 * 24 * 3600

_current: ContextVar[str] = ContextVar("page_language", default="en")


@functools.cache
def translations(language: str) -> gettext_module.NullTranslations:
    """The compiled catalogue of ``language`` (English: the msgids)."""
    po = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.is_file():
        return gettext_module.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext_module.GNUTranslations(buf)


def gettext(message: str) -> str:
    """``message`` in the language of the page being rendered."""
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural of a message in the page's language."""
    return translations(_current.get()).ngettext(singular, plural, n)


def translate(language: str, message: str, **values: object) -> str:
    """``message`` (a msgid) in ``language``, its ``%(name)s`` slots filled from ``values``."""
    text = translations(language if language in LANGUAGES else "en").gettext(message)
    return text % values if values else text


def said(error: AlertsError, language: str | None = None) -> str:
    """An error's message in ``language`` (default: the page's): translated when it was made
    with ``AlertsError.said``, its English message otherwise."""
    if error.msgid is None:
        return error.message
    return shown(Text(error.msgid, error.values), language)


def shown(text: Text | Joined | str, language: str | None = None) -> str:
    """A text made below the web (``alerts.core.msgids``) in ``language`` (default: the page's),
    its slots filled (texts in them translated too); a value whose slot is named ``state``,
    ``channel``, ``channels``, ``kind`` or ``role`` is shown by its readable name."""
    with use(language or _current.get()):
        return _shown(text)


def _shown(text: Text | Joined | str) -> str:
    if isinstance(text, str):
        return text
    if isinstance(text, Joined):
        return text.separator.join(_shown(part) for part in text.parts)
    values = {name: _value(name, v) for name, v in text.values.items()}
    translated = gettext(text.msgid)
    return translated % values if values else translated


def _value(name: str, value: Any) -> Any:
    if isinstance(value, Text | Joined):
        return _shown(value)
    return _VALUE_NAMES[name](value) if name in _VALUE_NAMES else value


def current() -> str:
    """The language of the page being rendered."""
    return _current.get()


@contextmanager
def use(language: str) -> Iterator[None]:
    """Render in ``language`` inside this block."""
    token = _current.set(language if language in LANGUAGES else "en")
    try:
        yield
    finally:
        _current.reset(token)


def install(env: jinja2.Environment) -> None:
    """Give ``env`` the i18n extension and the helpers every page uses."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["country_name"] = country_name
    env.globals["language_name"] = language_name
    env.globals["kind_name"] = kind_name
    env.globals["contact_kind_name"] = contact_kind_name
    env.globals["channel_name"] = channel_name
    env.globals["state_name"] = state_name
    env.globals["role_name"] = role_name
    env.globals["followup_kind_name"] = followup_kind_name
    env.globals["said"] = said
    env.globals["script_texts"] = script_texts
    env.globals["shown"] = shown
    env.filters["channel_name"] = channel_name
    env.filters["contact_kind_name"] = contact_kind_name


def accepted(header: str) -> list[str]:
    """The languages of an ``Accept-Language`` header, most wanted first (q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and quality > 0:
            weighted.append((-quality, index, tag.strip().replace("-", "_")))
    return [tag for _, _, tag in sorted(weighted)]


def choose(request: web.Request, setting: str | None = None, *, fallback: str | None = None) -> str:
    """The language of a page for ``request`` (see the module's docstring): ``setting``, the
    signed-in user's; ``fallback``, the language of the subscriber whose link opened the page."""
    for asked in (request.query.get(COOKIE, ""), request.cookies.get(COOKIE, ""), setting or ""):
        if asked in LANGUAGES:
            return asked
    found = negotiate_locale(accepted(request.headers.get("Accept-Language", "")), list(LANGUAGES), sep="_")
    if found:
        return found.split("_")[0]
    return fallback if fallback in LANGUAGES else "en"


def remember(request: web.Request, response: web.StreamResponse) -> None:
    """Keep the language chosen with ``?hl=`` in the ``hl`` cookie."""
    asked = request.query.get(COOKIE, "")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(COOKIE, asked, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True, path="/")


def forget(response: web.StreamResponse) -> None:
    """Drop this browser's choice (the ``hl`` cookie): a stored setting just saved applies."""
    response.del_cookie(COOKIE, path="/")


def switch(request: web.Request, language: str) -> list[dict[str, Any]]:
    """The language switch: each language with its link to this page (``?hl=``, the page's
    other query parameters kept; a query-only link, so the page's path is not repeated)."""
    return [
        {
            "code": code,
            "name": NATIVE_NAMES[code],
            "href": "?"
            + urlencode([*((k, v) for k, v in request.query.items() if k != COOKIE), (COOKIE, code)]),
            "current": code == language,
        }
        for code in LANGUAGES
    ]


@functools.cache
def _territories(language: str) -> dict[str, str]:
    return {
        code: name
        for code, name in Locale.parse(language).territories.items()
        if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    }


#: Babel's territories that are not ISO 3166 countries (unions, pseudo-regions, unassigned).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "XK", "ZZ"})


def country_name(code: str) -> str:
    """An ISO 3166 alpha-2 code's name in the page's language (the code itself if unknown)."""
    return _territories(_current.get()).get(code.upper(), code)


def countries() -> list[tuple[str, str]]:
    """The ISO 3166 countries as (English name, name in the page's language), by the latter.

    The value is the English name because cases name their country in English and a
    subscriber's country topic is matched against it (``alerts.delivery.audience``).
    """
    english, local = _territories("en"), _territories(_current.get())
    return sorted(((english[c], local.get(c, english[c])) for c in english), key=lambda p: _fold(p[1]))


def split_countries(stored: list[str] | tuple[str, ...]) -> tuple[list[str], str]:
    """A subscriber's countries as (those of the list, the others comma-separated): names
    stored before the list existed, or not in ISO 3166, stay editable as text."""
    known = {name.casefold(): name for name in _territories("en").values()}
    listed = [known[c.casefold()] for c in stored if c.casefold() in known]
    others = [c for c in stored if c.casefold() not in known]
    return listed, ", ".join(others)


def _fold(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold()


def language_name(code: str) -> str:
    """A language's name in the page's language (``fr`` → "French" / "francés")."""
    name = Locale.parse(_current.get()).languages.get(code)
    return name[:1].upper() + name[1:] if name else code


#: Readable names of the shipped alert kinds (template families) and of the contact kinds.
KIND_NAMES = {
    "urgent-appeal": N_("Urgent appeal"),
    "update": N_("Update"),
    "closure": N_("Case closed"),
}
#: Alert statuses and delivery states as the pages show them.
STATE_NAMES = {
    "draft": N_("draft"),
    "in_review": N_("in review"),
    "approved": N_("approved"),
    "scheduled": N_("scheduled"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "closed": N_("closed"),
    "queued": N_("queued"),
    "delivered": N_("delivered"),
    "deferred": N_("deferred"),
    "failed": N_("failed"),
    "bounced": N_("bounced"),
    "suppressed": N_("suppressed"),
    "cancelled": N_("cancelled"),
    "active": N_("active"),
    "pending": N_("pending"),
    "unsubscribed": N_("unsubscribed"),
    "erased": N_("erased"),
    "fired": N_("fired"),
    "retrying": N_("retrying"),
}
#: Follow-up kinds as the pages show them.
FOLLOWUP_NAMES = {
    "reminder": N_("Reminder"),
    "update": N_("Update alert"),
    "send": N_("Scheduled send"),
    "digest": N_("Digest"),
}
ROLE_NAMES = {
    "admin": N_("administrator"),
    "officer": N_("officer"),
    "reviewer": N_("reviewer"),
    "viewer": N_("viewer"),
}
CHANNEL_NAMES = {
    "email": N_("Email"),
    "telegram": N_("Telegram"),
    "press": N_("Press mailing"),
    "webhook": N_("Webhook"),
}
CONTACT_KIND_NAMES = {
    "authority": N_("Authority"),
    "media": N_("Media"),
    "press": N_("Press"),
    "partner": N_("Partner"),
    "public": N_("Public"),
}


def kind_name(family: str) -> str:
    """An alert kind's readable name (a family the service does not ship: its name, spaced)."""
    if family in KIND_NAMES:
        return gettext(KIND_NAMES[family])
    spaced = family.replace("-", " ").replace("_", " ")
    return spaced[:1].upper() + spaced[1:]


def contact_kind_name(kind: str) -> str:
    """A contact kind's readable name in the page's language."""
    return gettext(CONTACT_KIND_NAMES[kind]) if kind in CONTACT_KIND_NAMES else kind


def channel_name(channel: str) -> str:
    """A channel's readable name in the page's language."""
    return gettext(CHANNEL_NAMES[channel]) if channel in CHANNEL_NAMES else channel


def state_name(state: str) -> str:
    """An alert status, a delivery state or a contact status in the page's language."""
    return gettext(STATE_NAMES[state]) if state in STATE_NAMES else state.replace("_", " ")


def followup_kind_name(kind: str) -> str:
    """A follow-up kind's readable name in the page's language."""
    return gettext(FOLLOWUP_NAMES[kind]) if kind in FOLLOWUP_NAMES else kind


def role_name(role: str) -> str:
    """A user's role in the page's language."""
    return gettext(ROLE_NAMES[role]) if role in ROLE_NAMES else role


#: What the pages' script (``ui/static/ui.js``) writes itself, by key: handed to it translated in a
#: JSON block of every page (``script_texts``), its ``%(name)s`` slots filled by the script.
SCRIPT_TEXTS = {
    "progress": N_("%(done)s of %(total)s"),
    "still_to_send": N_("%(n)s still to send"),
    "all_final": N_("all final"),
    "preview_failed": N_("preview failed"),
    "network_error": N_("preview failed: network error"),
    "no_subject": N_("(none)"),
    "count_failed": N_("Counting failed: open the count to try again."),
}


def script_texts() -> dict[str, Any]:
    """The texts the pages' script shows, in the page's language: ``SCRIPT_TEXTS`` and the
    readable names of the states and channels it updates live."""
    return {
        **{key: gettext(msgid) for key, msgid in SCRIPT_TEXTS.items()},
        "states": {state: gettext(msgid) for state, msgid in STATE_NAMES.items()},
        "channels": {channel: gettext(msgid) for channel, msgid in CHANNEL_NAMES.items()},
    }


def _readable(name: Any) -> Any:
    def shown(value: Any) -> Any:
        return name(value) if isinstance(value, str) else value

    return shown


def _channel_names(channels: str) -> str:
    return ", ".join(channel_name(c) for c in channels.split(", "))


#: The slots of a message whose value is shown by its readable name (``shown``).
_VALUE_NAMES = {
    "state": _readable(state_name),
    "target_state": _readable(state_name),
    "channel": _readable(channel_name),
    "channels": _readable(_channel_names),
    "kind": _readable(contact_kind_name),
    "role": _readable(role_name),
}
