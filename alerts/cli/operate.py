"""``alerts doctor`` and ``alerts backup FILE``: the operator's commands (``alerts.ops``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.core.errors import ConfigError

if TYPE_CHECKING:  # the parsers are built for every command, --help included: nothing heavy
    from alerts.core.config import Settings


def add_parsers(sub: Any) -> None:
    """The ``doctor`` and ``backup`` subcommands."""
    s = sub.add_parser(
        "doctor",
        help="is this deployment ready: config, database, relay, bot, DKIM, public URL, secret, disk "
        "(exit 0 ok, 1 a warning, 2 a failure)",
    )
    s.add_argument("--json", action="store_true", help="one JSON object per check instead of lines")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds for each network check (default 10)")
    s.set_defaults(handler="doctor")
    s = sub.add_parser(
        "backup", help="a consistent copy of the SQLite database while the service runs (PostgreSQL: pg_dump)"
    )
    s.add_argument("file", type=Path, metavar="FILE", help="the backup to write (must not exist)")
    s.set_defaults(handler="backup")


async def doctor(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Every check, one line each (a bad config is the first and only one); exit by the worst."""
    from alerts.ops.doctor import examine, format_finding, worst
    from alerts.ops.findings import Finding, Level, Probes

    try:
        from alerts.core.config import load_settings

        settings = settings or load_settings(args.config)
    except ConfigError as exc:
        findings = [
            Finding(check="config", level=Level.FAIL, detail=exc.message,
                    fix="correct it (config.example.toml documents every key); nothing else was checked")
        ]  # fmt: skip
    else:
        findings = [Finding(check="config", level=Level.OK, detail=f"{settings.source}: valid")]
        findings += await examine(settings, Probes(timeout=args.timeout))
    for finding in findings:
        if args.json:
            print(json.dumps({"check": finding.check, "level": finding.level.name.lower(),
                              "detail": finding.detail, "fix": finding.fix}))  # fmt: skip
        else:
            print(format_finding(finding))
    return int(worst(findings))


async def backup(args: argparse.Namespace, settings: Settings) -> int:
    """SQLite: write FILE and say what it holds. PostgreSQL: print the pg_dump command."""
    from alerts.ops.backup import backup_sqlite, pg_dump_command
    from alerts.store.db import is_sqlite

    url = settings.database.url
    if not is_sqlite(url):
        print("# PostgreSQL is backed up with its own tool; run (the password from PGPASSWORD or ~/.pgpass):")
        print(pg_dump_command(url, args.file))
        return 0
    done = await backup_sqlite(url, args.file)
    print(f"{done.path}: {done.size:,} bytes, {done.alerts} alert(s), {done.contacts} contact(s)")
    return 0
