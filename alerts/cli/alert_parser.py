"""``alerts alert …``: the arguments of every alert command, each with its help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from alerts.cli.textio import row_id
from alerts.core.channels import ALL, CONTACT_ADDRESSED
from alerts.core.states import AlertStatus, ContactKind

_CHANNELS = [c.value for c in ALL]
_KINDS = [k.value for k in ContactKind]
_AS = "who does it (default: the first active admin)"
_JSON = "one JSON document on stdout, for scripts"


def _id(s: argparse.ArgumentParser) -> None:
    s.add_argument("id", type=row_id, metavar="ID", help="the alert's id (as `alert list` shows it)")


def _as(s: argparse.ArgumentParser, *, required: bool = False, help_: str = _AS) -> None:
    s.add_argument("--as", dest="as_user", required=required, metavar="USER", help=help_)


def _form(s: argparse.ArgumentParser) -> None:
    """--channel, --audience, --language: which rendered form of the alert."""
    s.add_argument(
        "--audience", default="authority", choices=_KINDS, help="the kind of reader (default: authority)"
    )
    s.add_argument("--language", default="en", metavar="LANG", help="the language (default: en)")


def alert_parsers(sub: Any) -> None:
    alert = sub.add_parser("alert", help="draft, approve, send and track alerts").add_subparsers(
        dest="alert_cmd", required=True, metavar="COMMAND"
    )
    s = alert.add_parser("list", help="alerts, newest first: id, state, date, template, languages, title")
    s.add_argument("--state", choices=[a.value for a in AlertStatus], help="only alerts in this state")
    s.add_argument("--limit", type=row_id, default=50, metavar="N", help="at most N alerts (default 50)")
    s.add_argument("--json", action="store_true", help=_JSON)
    _as(s)
    s.set_defaults(handler="alert_list")

    s = alert.add_parser("create", help="draft an alert from a template family and case data; prints its id")
    s.add_argument("--template", required=True, metavar="FAMILY", help="urgent-appeal, update, closure")
    s.add_argument("--data", required=True, type=Path, metavar="CASE.toml", help="the case data")
    _as(s, help_="the author (default: the first active admin)")
    s.add_argument("--title", help="the alert's title (default: from the case: defender (country))")
    s.add_argument(
        "--list", dest="lists", action="append", default=[], metavar="L", help="send to list L (repeatable)"
    )
    s.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        default=[],
        choices=_KINDS,
        help="only contacts of this kind (repeatable; with --list, both must match)",
    )
    s.add_argument(
        "--channel",
        dest="channels",
        action="append",
        default=[],
        choices=_CHANNELS,
        help="send on this channel (repeatable; default: every configured channel)",
    )
    s.add_argument(
        "--language",
        dest="languages",
        action="append",
        default=[],
        metavar="LANG",
        help="a language the alert is written in (repeatable; default: en)",
    )
    s.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="list in the public archive (default: when the audience includes the public)",
    )
    s.add_argument("--parent", type=row_id, metavar="ID", help="the alert this one updates (threaded below)")
    s.add_argument("--embargo", metavar="ISO-8601", help="press embargo time (naive times are UTC)")
    s.add_argument("--fallback-email", action="store_true", help="email those whose Telegram delivery fails")
    s.add_argument(
        "--attach",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a PDF or image sent with the press release (repeatable)",
    )
    s.set_defaults(handler="alert_create")

    s = alert.add_parser("edit", help="change an alert's case data or title: a new version, back to review")
    _id(s)
    s.add_argument("--data", type=Path, metavar="CASE.toml", help="the new case data")
    s.add_argument("--title", help="the new title")
    _as(s)
    s.set_defaults(handler="alert_edit")

    s = alert.add_parser("audience", help="who the alert reaches, and who is left out and why")
    _id(s)
    s.add_argument("--json", action="store_true", help=_JSON)
    _as(s)
    s.set_defaults(handler="alert_audience")

    s = alert.add_parser("preview", help="show the rendered alert for one audience, channel and language")
    _id(s)
    s.add_argument("--channel", default="email", choices=_CHANNELS, help="the channel (default: email)")
    _form(s)
    s.add_argument("--json", action="store_true", help=_JSON)
    s.set_defaults(handler="alert_preview")

    s = alert.add_parser("consent", help="record the defender's consent")
    _id(s)
    s.add_argument(
        "--as",
        "--recorded-by",
        dest="as_user",
        metavar="USER",
        help="the user who records it (default: the first active admin)",
    )
    s.add_argument(
        "--scope",
        required=True,
        choices=["public", "restricted"],
        help="public: the public may be told; restricted: never the public (unsent public deliveries "
        "are withdrawn)",
    )
    s.add_argument("--note", default="", help="how consent was given (who, when, by which means)")
    s.set_defaults(handler="alert_consent")

    s = alert.add_parser("submit", help="draft -> in_review; reviewers are notified")
    _id(s)
    _as(s)
    s.set_defaults(handler="alert_submit")

    s = alert.add_parser(
        "approve", help="approve (a reviewer other than the author): all languages, or the --language ones"
    )
    _id(s)
    _as(s, required=True, help_="the reviewer who approves")
    s.add_argument(
        "--language",
        dest="languages",
        action="append",
        metavar="LANG",
        help="approve only this language (repeatable; default: every language of the alert)",
    )
    s.set_defaults(handler="alert_approve")

    s = alert.add_parser("test", help="send the rendered alert to one address only")
    _id(s)
    s.add_argument("--to", required=True, metavar="ADDRESS", help="the email address or Telegram chat id")
    s.add_argument(
        "--channel",
        default="email",
        choices=[c.value for c in CONTACT_ADDRESSED],
        help="the channel (default: email)",
    )
    _form(s)
    _as(s)
    s.set_defaults(handler="alert_test")

    s = alert.add_parser("send", help="publish now (or --at a time); --wait shows live progress")
    _id(s)
    s.add_argument("--at", metavar="ISO-8601", help="send at this time instead of now (naive times are UTC)")
    s.add_argument(
        "--wait", action="store_true", help="send from this process and wait until every delivery is final"
    )
    _as(s)
    s.set_defaults(handler="alert_send")

    for name, help_ in (
        ("pause", "stop sending the alert's remaining deliveries"),
        ("resume", "continue a paused alert"),
        ("resend-failed", "new attempt for failed deliveries only"),
        ("close", "close the case: cancel its pending follow-ups, drafted updates and unsent deliveries"),
    ):
        s = alert.add_parser(name, help=help_)
        _id(s)
        _as(s)
        s.set_defaults(handler="alert_control", action=name)

    s = alert.add_parser("status", help="counts by channel and state")
    _id(s)
    s.add_argument("--json", action="store_true", help=_JSON)
    s.set_defaults(handler="alert_status")

    s = alert.add_parser("respond", help="record that an authority (or anyone) answered")
    _id(s)
    s.add_argument(
        "--from",
        dest="contact",
        required=True,
        metavar="CONTACT",
        help="who answered: a contact's id, email or name links that contact; anyone else is kept as written",
    )
    s.add_argument("--summary", required=True, help="what they answered, in a sentence or two")
    _as(s)
    s.set_defaults(handler="alert_respond")
