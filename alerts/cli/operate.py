"""``alerts doctor``, ``alerts backup FILE`` and ``alerts prune``: the operator's commands."""

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
    s = sub.add_parser(
        "prune",
        help="delete the deliveries and delivery events of alerts finished long ago, keeping their counts",
        description="Deletes the outbox rows and delivery events of alerts that are sent or closed, "
        "finished before the cut-off, have no follow-up due and whose case is closed; the counts by "
        "channel and state (and opens, clicks) stay on the alert's page, in status and in the API.",
    )
    s.add_argument(
        "--older-than", required=True, metavar="AGE", help="finished more than AGE ago, e.g. 180d or 26w"
    )
    s.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--as", dest="as_user", metavar="USER", help="who does it (default: the first admin)")
    s.set_defaults(handler="prune")


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


async def prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the rows of long-finished alerts (or, ``--dry-run``, count them); summary on stdout."""
    import sys

    from tqdm import tqdm

    from alerts.actions import retention
    from alerts.cli.acting import actor, quiet_app

    quiet = args.no_progress or not sys.stderr.isatty()
    bar = tqdm(file=sys.stderr, disable=quiet, unit="alerts", desc="prune")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        async with quiet_app(settings) as app:
            report = await retention.prune(
                app,
                await actor(app, args.as_user),
                older_than=args.older_than,
                dry_run=args.dry_run,
                progress=progress,
            )
    finally:
        bar.close()
    print(report.summary())
    return 0
