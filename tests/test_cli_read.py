"""The CLI as a person or a script reads it (issue 11): help on every option, ``alert list``,
a preview that says which language it shows, a contacts import from stdin with only the
columns it needs, and shell completion."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from alerts.cli.parser import build_parser
from tests.test_cli import CLI, EXAMPLE


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> CLI:
    """The CLI in child processes on this test's database (these commands send nothing)."""
    return CLI(db_url, tmp_path)


def _parsers(
    parser: argparse.ArgumentParser, path: str = "alerts"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = [
        f"{path}: {action.option_strings or action.dest}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
    ]
    assert missing == []


async def _create(cli: CLI, *extra: str) -> str:
    run = await cli(
        "alert", "create", "--template", "urgent-appeal", "--data", str(EXAMPLE), "--list", "l", *extra
    )
    assert run.code == 0, run.err
    return run.out.strip()


async def test_alert_list_and_a_preview_in_a_language_the_alert_lacks(cli: CLI) -> None:
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    first = await _create(cli, "--title", "First case")
    second = await _create(cli, "--title", "Second case", "--language", "en", "--language", "fr")
    assert (await cli("alert", "submit", second)).code == 0

    listed = await cli("alert", "list")
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [second, first]  # newest first
    assert lines[0].split("\t")[1] == "in_review" and lines[0].endswith("Second case")
    assert lines[1].split("\t")[4] == "en"
    drafts = await cli("alert", "list", "--state", "draft", "--json")
    assert [(a["id"], a["status"], a["title"]) for a in json.loads(drafts.out)] == [
        (int(first), "draft", "First case")
    ]
    assert (await cli("alert", "list", "--state", "nonsense")).code == 2

    preview = await cli("alert", "preview", first, "--language", "de", "--json")
    assert preview.code == 0, preview.err
    assert f"alert {first} has no de text for this template: showing en" in preview.err
    assert json.loads(preview.out)["language"] == "en"
    same = await cli("alert", "preview", first, "--language", "en")
    assert same.code == 0 and "showing" not in same.err


async def test_a_contacts_import_from_stdin_needs_only_a_name_and_an_address(
    cli: CLI, tmp_path: Path
) -> None:
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    run = await cli(
        "contacts", "import", "-", "--no-progress", stdin=b"name,email\nAna Ruiz,ana@example.org\n"
    )
    assert run.code == 0, run.err
    assert run.out == "" and "1 created" in run.err
    exported = json.loads((await cli("contacts", "export", "ana@example.org")).out)
    assert exported["contact"]["kind"] == "partner" and exported["contact"]["language"] == "en"

    press = await cli(
        "contacts",
        "import",
        "-",
        "--no-progress",
        "--kind",
        "press",
        stdin=b"Name;Telegram\nDaily Desk;12345\nBad;not a chat\n",
    )
    assert press.code == 2  # one refused row: exit 2, the other row is in
    assert press.out == ""
    assert "1 created" in press.err and "row 3: telegram" in press.err
    exported = json.loads((await cli("contacts", "export", "12345")).out)
    assert exported["contact"]["kind"] == "press"

    refused = await cli("contacts", "import", "-", "--no-progress", stdin=b"name,kind\nX,media\n")
    assert refused.code == 2
    assert "row 1: no address column: the file needs an 'email' or a 'telegram' column" in refused.err


async def test_shell_completion_covers_the_commands(cli: CLI) -> None:
    run = await cli("completion", "bash")
    assert run.code == 0, run.err
    assert "complete" in run.out and "audience" in run.out and "--recorded-by" in run.out
