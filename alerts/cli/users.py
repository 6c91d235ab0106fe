"""``alerts users add|passwd|disable|enable|unlock|set-language|token|2fa-reset|list``: parse,
call an action, print.

The console operator holds the database and acts as the service itself (actor None). Passwords
are asked with getpass (twice) unless given for a script (``--password``/``ALERTS_NEW_PASSWORD``
for ``add``, ``--password-stdin`` for ``passwd``); without a terminal nothing is asked and the
command refuses. A new API token is printed once, alone on stdout; what happened goes to stderr.
Every refusal is one line on stderr and exit 2 (``parser.main``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from alerts.actions import accounts, two_factor
from alerts.app import open_app
from alerts.core.config import Settings
from alerts.core.errors import ValidationError

NO_PASSWORD = "user {name} cannot sign in until a password is set: alerts users passwd {name}"


def _ask(name: str) -> str:
    """The password, typed twice at the terminal."""
    if not sys.stdin.isatty():
        raise ValidationError(
            "no password given and no terminal to ask for one: pass --password-stdin "
            "(passwd), --password or ALERTS_NEW_PASSWORD (add), or --no-password (add)"
        )
    first = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise ValidationError("password: the two entries do not match; nothing changed")
    return first


def _say(text: str) -> None:
    print(text, file=sys.stderr)


async def users_add(args: argparse.Namespace, settings: Settings) -> int:
    password = None
    if not args.no_password:
        password = args.password or os.environ.get("ALERTS_NEW_PASSWORD") or _ask(args.name)
    async with open_app(settings, channels={}) as app:
        added = await accounts.add(
            app,
            None,
            name=args.name,
            role=args.role,
            email=args.email,
            telegram=args.telegram,
            password=password,
            with_token=args.token,
            read_only=args.read_only,
        )
    _say(f"user {added.account.name} ({added.account.role}) added")
    if not added.account.has_password:
        _say(NO_PASSWORD.format(name=added.account.name))
    if added.token:
        print(added.token)
    return 0


async def users_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else _ask(args.name)
    async with open_app(settings, channels={}) as app:
        done = await accounts.set_password(app, None, args.name, password)
    _say(f"password of {done.account.name} set; their sessions have ended")
    return 0


async def users_active(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings, channels={}) as app:
        done = await accounts.set_active(app, None, args.name, active=args.active)
    word = "enabled" if args.active else "disabled"
    if not done.changed:
        _say(f"user {done.account.name} was already {word}")
    elif args.active:
        _say(f"user {done.account.name} enabled")
    else:
        _say(f"user {done.account.name} disabled: their sessions have ended and their API token is revoked")
    return 0


async def users_unlock(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings, channels={}) as app:
        done = await accounts.unlock(app, None, args.name)
    _say(f"user {done.account.name} unlocked" if done.changed else f"user {done.account.name} was not locked")
    return 0


async def users_language(args: argparse.Namespace, settings: Settings) -> int:
    language = None if args.language == "auto" else args.language
    async with open_app(settings, channels={}) as app:
        done = await accounts.set_language(app, None, args.name, language)
    shown = done.account.language or "their browser's"
    verb = "is now" if done.changed else "was already"
    _say(f"the pages of {done.account.name}: the language {verb} {shown}")
    return 0


async def users_token(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings, channels={}) as app:
        if args.revoke:
            revoked = await accounts.revoke_tokens(app, None, args.name)
            _say(f"revoked {revoked.revoked} API token(s) of {revoked.account.name}")
            return 0
        issued = await accounts.issue_token(app, None, args.name, read_only=args.read_only)
    replaced = "; the previous one no longer works" if issued.replaced else ""
    scope = "read-only " if args.read_only else ""
    _say(f"new {scope}API token for {issued.account.name} (shown once){replaced}")
    print(issued.token)
    return 0


async def users_2fa_reset(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings, channels={}) as app:
        reset = await two_factor.reset(app, None, args.name)
    if reset:
        _say(f"second factor of {args.name} removed: their sessions have ended; they enrol again at sign-in")
    else:
        _say(f"user {args.name} had no second factor")
    return 0


async def users_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings, channels={}) as app:
        found = await accounts.list_accounts(app, None)
    if args.json:
        print(json.dumps([account.to_json() for account in found], indent=2, ensure_ascii=False))
        return 0
    for a in found:
        state = "active" if a.active else "disabled"
        password = "password" if a.has_password else "no-password"
        token = ("read-only-token" if a.token_read_only else "token") if a.has_token else "-"
        print(f"{a.id}\t{a.name}\t{a.role}\t{state}\t{password}\t{token}\t{'2fa' if a.two_factor else '-'}")
    return 0
