"""The demo's mailbox: what its local capture SMTP server received, and each message opened —
its headers, its text, and its HTML in a sandboxed frame (no scripts, no requests of its own).
Only in ``alerts demo``, which puts the capture server in ``App.extras["capture"]``."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiohttp import web

from alerts.core.errors import NotFound
from alerts.web.ui.pages import ID, PREFIX, Ctx, page, path_id

SHOWN = 500
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")


def _capture(c: Ctx) -> Any:
    capture = c.app.extras.get("capture")
    if capture is None:
        raise NotFound("the mailbox exists only in `alerts demo`")
    return capture


@page("view")
async def mailbox(c: Ctx) -> web.Response:
    """GET /mailbox: the messages received, newest first."""
    messages = list(reversed(_capture(c).messages()))[:SHOWN]
    return c.render("mailbox.html", messages=messages)


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body((subtype,))
    return None if body is None else str(body.get_content())


@page("view")
async def message(c: Ctx) -> web.Response:
    """GET /mailbox/{n}: one message as its recipient's mail program would show it."""
    number = path_id(c.request)
    found = next((m for m in _capture(c).messages() if m.number == number), None)
    if found is None:
        raise NotFound(f"message {number} is not in the mailbox (it keeps the last {SHOWN} or so)")
    parsed = email.message_from_bytes(found.raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    headers = [(name, str(parsed[name])) for name in HEADERS if parsed[name] is not None]
    attachments = [
        (part.get_filename() or "(unnamed)", part.get_content_type()) for part in parsed.iter_attachments()
    ]
    return c.render(
        "message.html",
        m=found,
        headers=headers,
        text=_part(parsed, "plain"),
        html=_part(parsed, "html"),
        attachments=attachments,
    )


def setup(webapp: web.Application) -> None:
    """Add the mailbox and its message pages."""
    webapp.router.add_get(f"{PREFIX}/mailbox", mailbox)
    webapp.router.add_get(f"{PREFIX}/mailbox/{ID}", message)
