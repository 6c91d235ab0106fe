"""The service's own links, written once: officers' pages and public pages under ``public_url``.

Every message, page, feed and notice that points back at the service builds its link here,
so a route that moves is changed in one place (the route tables register the same paths:
``alerts.web.ui.pages`` under ``OFFICE``, ``alerts.web.public.pages`` at the root).

Each function takes ``[server] public_url`` as configured (a trailing ``/`` is ignored) and
returns an absolute URL. Tokens are passed in already signed: this module only places them.
"""

from __future__ import annotations

#: Where the officers' pages live (the public pages are at the root).
OFFICE = "/office"


def base(public_url: str) -> str:
    """``public_url`` without a trailing ``/``: the prefix of every absolute link."""
    return public_url.rstrip("/")


def office_alert(public_url: str, alert_id: int) -> str:
    """The officers' page of an alert (status, review, actions): behind sign-in."""
    return f"{base(public_url)}{OFFICE}/alerts/{alert_id}"


def public_alert(public_url: str, alert_id: int | str, *, language: str | None = None) -> str:
    """An alert in the public archive (``language``: that translation)."""
    url = f"{base(public_url)}/alerts/{alert_id}"
    return f"{url}?lang={language}" if language else url


def cap_document(public_url: str, alert_id: int | str) -> str:
    """A public alert as a CAP 1.2 document (every language in one)."""
    return f"{base(public_url)}/alerts/{alert_id}.cap.xml"


def unsubscribe(public_url: str, token: str) -> str:
    """The one-click unsubscribe page of a contact's link token (RFC 8058 posts to it)."""
    return f"{base(public_url)}/unsubscribe/{token}"


def preferences(public_url: str, token: str) -> str:
    """A subscriber's preferences page (language, channels, topics) for a link token."""
    return f"{base(public_url)}/preferences/{token}"


def confirm(public_url: str, token: str) -> str:
    """The double opt-in confirmation page for a signed confirmation token."""
    return f"{base(public_url)}/subscribe/confirm/{token}"


def open_pixel(public_url: str, token: str) -> str:
    """The opt-in open-tracking pixel for a signed tracking token."""
    return f"{base(public_url)}/t/o/{token}.gif"


def tracked_click(public_url: str, token: str) -> str:
    """The opt-in click-tracking redirect for a signed tracking token."""
    return f"{base(public_url)}/t/c/{token}"
