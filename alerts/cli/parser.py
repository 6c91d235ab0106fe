"""The ``alerts`` console script: one thin function per subcommand.

Every command exits non-zero with a one-line reason on stderr when it refuses; commands
meant for scripts print only their result on stdout (``alert create`` prints the new id).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts import __version__
from alerts.cli import operate, templates
from alerts.cli.alert_parser import alert_parsers
from alerts.cli.textio import row_id
from alerts.core.languages import PAGE_LANGUAGES

if TYPE_CHECKING:
    from alerts.core.config import Settings

# Only what describes the arguments is imported above: ``alerts --help`` and a mistyped command
# answer without loading the database layer, and each command imports what it needs (its
# handler's module, found in this order; tests/test_cli_start.py checks what --help loads).
HANDLER_MODULES = ("commands_read", "commands", "users", "commands_service", "templates", "operate")

Handler = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]


def find_handler(name: str) -> Handler:
    """The subcommand's handler, importing only the modules up to the one that holds it."""
    for module_name in HANDLER_MODULES:
        module = importlib.import_module(f"alerts.cli.{module_name}")
        if hasattr(module, name):
            handler: Handler = getattr(module, name)
            return handler
    raise LookupError(f"no CLI handler named {name!r} in alerts.cli.{{{','.join(HANDLER_MODULES)}}}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alerts",
        description="Urgent Alerts: draft, approve, fan out, track and follow up urgent alerts "
        "for human-rights defenders at risk.",
        epilog="Config: alerts.toml in the current folder, --config FILE or $ALERTS_CONFIG; "
        "ALERTS_<SECTION>_<KEY> environment variables override it. No config at all means "
        "embedded defaults (SQLite in this folder, email to a local capture server on port 8025).",
    )
    p.add_argument("--config", metavar="FILE", help="config file (default: ./alerts.toml or $ALERTS_CONFIG)")
    p.add_argument("--verbose", "-v", action="store_true", help="log at DEBUG level")
    p.add_argument("--version", action="version", version=f"alerts {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="create or upgrade the database; create the first admin")
    s.add_argument(
        "--admin", default="admin", metavar="NAME", help="name of the first admin (default: admin)"
    )
    s.add_argument("--password", help="the first admin's password (default: generated and printed once)")
    s.set_defaults(handler="init")

    s = sub.add_parser("serve", help="web UI + API + dispatcher + scheduler, in one process")
    s.add_argument("--host", help="listen address (default: [server] host)")
    s.add_argument("--port", type=int, help="listen port (default: [server] port)")
    s.set_defaults(handler="serve")

    s = sub.add_parser("worker", help="an extra dispatcher only (PostgreSQL deployments)")
    s.add_argument("--concurrency", type=int, help="senders per channel (default: from config)")
    s.set_defaults(handler="worker")

    s = sub.add_parser("demo", help="everything on embedded defaults with sample data; prints URL and logins")
    s.add_argument("--port", type=int, default=8080, help="web port (default 8080)")
    s.add_argument("--smtp-port", type=int, default=8025, help="local capture SMTP port (default 8025)")
    s.add_argument(
        "--database",
        default="sqlite+aiosqlite:///alerts-demo.db",
        help="database URL for the demo (default: %(default)s in this folder; never ALERTS_DATABASE_URL, "
        "so the sample data cannot land in a real service's database)",
    )
    s.set_defaults(handler="demo")

    _users_parsers(sub)

    contacts = sub.add_parser("contacts", help="contacts and lists").add_subparsers(
        dest="contacts_cmd", required=True
    )
    s = contacts.add_parser(
        "import", help="import contacts from CSV; exits 2 if any row was refused (each on stderr)"
    )
    s.add_argument(
        "file",
        metavar="FILE.csv",
        help="columns name, email and/or telegram, and optionally kind, language, organisation, country, "
        "lists, title, form_of_address; '-' reads stdin",
    )
    s.add_argument(
        "--list", dest="list_name", metavar="NAME", help="also add every imported contact to this list"
    )
    s.add_argument(
        "--kind",
        dest="default_kind",
        default="partner",
        choices=["authority", "media", "press", "partner", "public"],
        help="the kind of every contact when the file has no kind column (default: partner)",
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(handler="contacts_import")
    s = contacts.add_parser("export", help="everything held about one contact, as JSON")
    s.add_argument("contact", help="the contact's id, email or Telegram chat id")
    s.set_defaults(handler="contacts_export")
    s = contacts.add_parser("erase", help="erase one contact's personal data (keeps anonymous counts)")
    s.add_argument("contact", help="the contact's id, email or Telegram chat id")
    s.set_defaults(handler="contacts_erase")
    for s in contacts.choices.values():
        s.add_argument("--as", dest="as_user", metavar="USER", help="who does it (default: the first admin)")

    alert_parsers(sub)

    bounces = sub.add_parser("bounces", help="delivery status notifications").add_subparsers(
        dest="bounces_cmd", required=True
    )
    s = bounces.add_parser(
        "process", help="apply a bounce report (RFC 3464, or qmail/Exim/Yahoo-style) from FILE or stdin"
    )
    s.add_argument("file", nargs="?", default="-", help="the bounce message (default '-': stdin)")
    s.set_defaults(handler="bounces_process")
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_cmd", required=True)
    s = audit.add_parser("verify", help="check the audit log's hash chain; exit 2 at the first broken link")
    s.set_defaults(handler="audit_verify")
    _followup_parsers(sub)
    s = sub.add_parser(
        "completion",
        help='print a shell completion script: eval "$(alerts completion bash)" in ~/.bashrc',
    )
    s.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell to complete in")
    s.set_defaults(handler="completion")
    templates.add_parsers(sub)
    operate.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alerts`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":  # needs no config: it only describes the arguments
        import shtab

        print(shtab.complete(parser, shell=args.shell))
        return 0
    import logging

    from sqlalchemy.exc import SQLAlchemyError

    from alerts.core import logs, loop
    from alerts.core.config import load_settings
    from alerts.core.errors import AlertsError

    long_running = args.command in ("serve", "worker", "demo")
    level = logging.DEBUG if args.verbose else logging.INFO if long_running else logging.WARNING
    logs.configure(level=level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "mail.log", "asyncio", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "doctor":  # a bad config is one of its findings, not a refusal
            return loop.run(operate.doctor(args))
        settings = load_settings(args.config)
        logs.configure(level=level, format=settings.logging.format, secrets=logs.secrets_of(settings))
        return loop.run(find_handler(args.handler)(args, settings), settings.server.event_loop)
    except AlertsError as exc:
        print(f"alerts: {exc.message}", file=sys.stderr)
        return 2  # refused (DESIGN: exit codes): bad input, not found, conflict, not allowed
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file that cannot be read, a port in use…
        print(f"alerts: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # the database is unreachable, locked, or not migrated
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(
            f"alerts: database error: {reason} (is the database up? did `alerts init` run?)", file=sys.stderr
        )
        return 1


_USER = "the user's name"


def _users_parsers(sub: Any) -> None:
    """``alerts users add|passwd|disable|enable|unlock|set-language|token|2fa-reset|list``."""
    users = sub.add_parser("users", help="manage users").add_subparsers(dest="users_cmd", required=True)
    s = users.add_parser("add", help="add a user (asks for a password unless --no-password)")
    s.add_argument("name", help=_USER)
    s.add_argument(
        "--role",
        required=True,
        choices=["admin", "officer", "reviewer", "viewer"],
        help="officers write and send, reviewers approve, viewers read, admins do all and manage users",
    )
    s.add_argument("--email", help="where review requests and reminders are emailed")
    s.add_argument("--telegram", help="Telegram chat id for notifications")
    given = s.add_mutually_exclusive_group()
    given.add_argument("--password", help="password for the web UI, for scripts (or ALERTS_NEW_PASSWORD)")
    given.add_argument(
        "--no-password", action="store_true", help="no password: cannot sign in until one is set"
    )
    s.add_argument("--token", action="store_true", help="create an API token and print it once")
    s.add_argument("--read-only", action="store_true", help="with --token: the token may only read (GET)")
    s.set_defaults(handler="users_add")
    s = users.add_parser("passwd", help="set a user's password (asks for it; ends their sessions)")
    s.add_argument("name", help=_USER)
    s.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    s.set_defaults(handler="users_passwd")
    s = users.add_parser("disable", help="disable a user: their sessions and token are refused at once")
    s.add_argument("name", help=_USER)
    s.set_defaults(handler="users_active", active=False)
    s = users.add_parser("enable", help="enable a disabled user (they sign in again)")
    s.add_argument("name", help=_USER)
    s.set_defaults(handler="users_active", active=True)
    s = users.add_parser("unlock", help="lift the sign-in lock put on a user after too many failures")
    s.add_argument("name", help=_USER)
    s.set_defaults(handler="users_unlock")
    s = users.add_parser("set-language", help="the language of a user's pages, in every browser they use")
    s.add_argument("name", help=_USER)
    s.add_argument(
        "language",
        choices=[*PAGE_LANGUAGES, "auto"],
        help="en, fr or es; auto: their browser's (its switch or Accept-Language)",
    )
    s.set_defaults(handler="users_language")
    s = users.add_parser("token", help="issue a new API token (printed once), or revoke the user's tokens")
    s.add_argument("name", help=_USER)
    s.add_argument("--revoke", action="store_true", help="revoke all of the user's API tokens")
    s.add_argument("--read-only", action="store_true", help="the new token may only read (GET)")
    s.set_defaults(handler="users_token")
    s = users.add_parser(
        "2fa-reset", help="remove a user's lost second factor (their sessions end; they enrol again)"
    )
    s.add_argument("name", help=_USER)
    s.set_defaults(handler="users_2fa_reset")
    s = users.add_parser(
        "list",
        help="list users, a line each: id, name, role, active/disabled, password/no-password, "
        "token/read-only-token/-, 2fa/-",
    )
    s.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    s.set_defaults(handler="users_list")


def _followup_parsers(sub: Any) -> None:
    """``alerts followup add|list|cancel``."""
    followup = sub.add_parser("followup", help="reminders, update alerts, scheduled sends and weekly digests")
    cmds = followup.add_subparsers(dest="followup_cmd", required=True)
    s = cmds.add_parser("add", help="schedule a follow-up; prints its id")
    s.add_argument(
        "alert", metavar="ALERT_ID", help="the alert followed up ('-' for a digest, which covers all)"
    )
    when = s.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", metavar="ISO-8601", help="due time (naive times are UTC)")
    when.add_argument("--in", dest="in_", metavar="DURATION", help="due after 7d, 36h, 90m, 1w2d…")
    s.add_argument(
        "--kind",
        required=True,
        choices=["reminder", "update", "send", "digest"],
        help="reminder: tell the officers; update: send a drafted update; send: send the alert; "
        "digest: a weekly summary of open cases",
    )
    s.add_argument("--note", default="", help="what is to be done (shown in the reminder)")
    s.add_argument(
        "--data",
        type=Path,
        metavar="CASE.toml",
        help='update: the update\'s case data (family = "closure" for a closure)',
    )
    s.add_argument(
        "--if",
        dest="condition",
        choices=["no-response", "case-open"],
        help="reminder only if no response was recorded / the case is still open",
    )
    s.add_argument(
        "--kind-filter",
        dest="kind_filter",
        action="append",
        default=[],
        metavar="KIND",
        help="no-response: only responses from these contact kinds count (repeatable)",
    )
    s.add_argument("--as", dest="as_user", metavar="USER", help="who schedules it (default: the first admin)")
    s.set_defaults(handler="followup_add")
    s = cmds.add_parser("list", help="pending follow-ups (--all: fired and cancelled too)")
    s.add_argument("--alert", type=row_id, metavar="ID", help="only this alert's")
    s.add_argument("--all", action="store_true", help="include fired and cancelled follow-ups")
    s.add_argument("--json", action="store_true", help="one JSON document on stdout, for scripts")
    s.set_defaults(handler="followup_list")
    s = cmds.add_parser("cancel", help="cancel a pending follow-up (a scheduled send is unscheduled)")
    s.add_argument("id", type=row_id, metavar="FOLLOWUP_ID", help="as `followup list` shows it")
    s.add_argument(
        "--as", dest="as_user", metavar="USER", help="who cancels it (default: the first active admin)"
    )
    s.set_defaults(handler="followup_cancel")
