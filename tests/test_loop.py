"""The event loop every command runs on (alerts/core/loop.py): uvloop unless asked otherwise."""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

import pytest

from alerts.core import loop
from alerts.core.config import load_settings
from alerts.core.errors import ConfigError


async def _running() -> str:
    return loop.loop_name()


def test_commands_run_on_uvloop_by_default_and_on_asyncio_when_configured() -> None:
    assert load_settings(environ={}).server.event_loop == "uvloop"
    assert loop.run(_running()) == "uvloop"
    assert loop.run(_running(), "asyncio") == "asyncio"
    chosen = load_settings(environ={"ALERTS_SERVER_EVENT_LOOP": "asyncio"}).server.event_loop
    assert loop.run(_running(), chosen) == "asyncio"


def test_without_uvloop_the_standard_loop_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    with caplog.at_level(logging.WARNING, logger="alerts.core.loop"):
        assert loop.run(_running()) == "asyncio"
    assert "uvloop is not installed" in caplog.text


def test_an_unknown_loop_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"ALERTS_SERVER_EVENT_LOOP": "tokio"})
    assert "[server] event_loop" in refused.value.message and "uvloop, asyncio" in refused.value.message
    assert refused.value.details == {"key": "server.event_loop"}


def test_the_cli_runs_its_command_on_the_configured_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`alerts` hands the command to ``loop.run`` with ``[server] event_loop``."""
    from alerts.cli import parser

    seen: list[str] = []

    async def handler(args: object, settings: object) -> int:
        seen.append(loop.loop_name())
        return 0

    monkeypatch.setattr(parser, "find_handler", lambda name: handler)
    monkeypatch.chdir(tmp_path)
    for configured in ("asyncio", "uvloop"):
        monkeypatch.setenv("ALERTS_SERVER_EVENT_LOOP", configured)
        assert parser.main(["alert", "list"]) == 0
    assert seen == ["asyncio", "uvloop"]


def test_what_is_frozen_stays_frozen_until_the_last_service_in_the_process_stops() -> None:
    """Two services in one process (tests, a demo beside another): the first to stop leaves
    the other's start-up frozen."""
    assert gc.get_freeze_count() == 0
    with loop.start_up_frozen():
        with loop.start_up_frozen():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
