"""The CLI starts with what the command needs: ``alerts --help`` loads no database layer, no
channel library and no web framework; ``alerts alert status`` no web app, Telegram, DKIM or
alembic. Checked on ``sys.modules`` in a fresh interpreter: deterministic, not timed (the times
are bench/cli_start.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.cli.parser import build_parser, find_handler

ROOT = Path(__file__).resolve().parent.parent

LOADED = """
import json, sys
from alerts.cli.parser import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.__stderr__)
"""


def loaded_by(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> set[str]:
    """Every module name in sys.modules after ``alerts ARGS`` ran in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


HEAVY_FOR_HELP = {"sqlalchemy", "aiohttp", "telegram", "httpx", "lxml", "jinja2", "aiosmtplib", "asyncio"}
HEAVY_FOR_STATUS = {"aiohttp", "telegram", "httpx", "lxml", "aiosmtplib", "dkim", "alembic", "rich"}


def test_help_loads_no_database_channel_or_web_library(tmp_path: Path) -> None:
    loaded = top_level(loaded_by(["--help"], tmp_path))
    assert "argparse" in loaded  # the probe works
    assert not loaded & HEAVY_FOR_HELP, sorted(loaded & HEAVY_FOR_HELP)


def test_status_loads_the_database_but_no_channel_or_web_library(tmp_path: Path, db_url: str) -> None:
    import os

    env = {**os.environ, "ALERTS_DATABASE_URL": db_url}
    env.pop("ALERTS_CONFIG", None)
    modules = loaded_by(["alert", "status", "1"], tmp_path, env)  # no such alert: refused after loading
    loaded = top_level(modules)
    assert "sqlalchemy" in loaded and "alerts.cli.commands_read" in modules
    assert not loaded & HEAVY_FOR_STATUS, sorted(loaded & HEAVY_FOR_STATUS)
    assert not {m for m in modules if m.startswith(("alerts.web", "alerts.bot", "alerts.cli.commands"))} - {
        "alerts.cli.commands_read"
    }
    # nor the App (renderer, channels, message builder) nor the actions layer: the database only
    assert not loaded & {"jinja2", "dkim"}, sorted(loaded & {"jinja2", "dkim"})
    assert not {m for m in modules if m.startswith(("alerts.app", "alerts.actions", "alerts.compose.render"))}


@pytest.mark.parametrize("handler", ["alert_status", "alert_send", "users_add", "serve", "doctor"])
def test_every_handler_is_found_lazily(handler: str) -> None:
    assert find_handler(handler).__name__ == handler


def test_every_subcommand_names_a_handler_that_exists() -> None:
    names: set[str] = set()

    def walk(parser: object) -> None:
        for action in getattr(parser, "_actions", []):
            choices = getattr(action, "choices", None)
            for sub in choices.values() if isinstance(choices, dict) else ():
                walk(sub)
        handler = getattr(parser, "_defaults", {}).get("handler")
        if handler and handler != "completion":
            names.add(handler)

    walk(build_parser())
    assert len(names) > 30
    for name in names:
        assert callable(find_handler(name)), name
