"""``alerts templates list`` and ``alerts templates check DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.core.errors import AlertsError

if TYPE_CHECKING:  # the parsers are built for every command, --help included: nothing heavy
    from alerts.core.config import Settings


def add_parsers(sub: Any) -> None:
    """The ``templates`` subcommands."""
    cmds = sub.add_parser("templates", help="alert template families").add_subparsers(
        dest="templates_cmd", required=True
    )
    s = cmds.add_parser("list", help="the families this config uses: shipped, and yours ([paths] templates)")
    s.set_defaults(handler="templates_list")
    s = cmds.add_parser(
        "check",
        help="check a folder of families (or one family) before use: variables, and the example "
        "rendered in every audience × channel × language",
    )
    s.add_argument(
        "folder", type=Path, metavar="DIR", nargs="?", help="default: every family this config uses"
    )
    s.set_defaults(handler="templates_check")


async def templates_list(args: argparse.Namespace, settings: Settings) -> int:
    """One line per family: name, where it comes from, languages, description."""
    from alerts.compose.render import Renderer

    own = settings.paths.templates
    renderer = Renderer(own_templates=Path(own) if own else None)
    names = renderer.families()
    width = max(map(len, names), default=0)
    for name in names:
        source = "own    " if renderer.is_own(name) else "shipped"
        try:
            info = renderer.family(name)
        except AlertsError as exc:
            print(f"{name:<{width}}  {source}  BROKEN: {exc.message} (see `alerts templates check`)")
            continue
        print(f"{name:<{width}}  {source}  {','.join(info.languages):<8}  {info.description}")
    return 0


async def templates_check(args: argparse.Namespace, settings: Settings) -> int:
    """Every problem as ``file:line: message``; exit 2 when there is any."""
    from alerts.compose.family_check import check_all, check_folder
    from alerts.compose.render import Renderer

    if args.folder is None:
        own = settings.paths.templates
        reports = check_all(Renderer(own_templates=Path(own) if own else None))
    else:
        reports = check_folder(args.folder)
    bad = 0
    for report in reports:
        if report.problems:
            bad += 1
            print(f"{report.name}: {len(report.problems)} problem(s)")
            for problem in report.problems:
                print(f"  {problem}")
        else:
            print(f"{report.name}: ok ({report.renders} forms rendered)")
    if bad:
        print(f"alerts: {bad} of {len(reports)} template families have problems", file=sys.stderr)
        return 2
    return 0
