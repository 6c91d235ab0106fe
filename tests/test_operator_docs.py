"""Every command in the operator guide (docs/operate/*.md) runs as written.

The ```sh blocks of each page run in one bash process per page (``set -euo pipefail``), page by
page in the order of the guide's index, all in one empty folder: a fresh operator's path. The
configuration is the demo's, the embedded defaults: SQLite in that folder (on the PostgreSQL
run, a new empty PostgreSQL database instead), mail to a recording SMTP server, a secret key in
the environment as `alerts demo` makes one. The standard ports are mapped to free ones: the
blocks' ``127.0.0.1:8080`` becomes the port `alerts serve` is given, and the capture server's
8025 the port it got.

```console blocks (root, Docker, a real relay or Telegram) and ```text blocks (DNS records,
other programs' config files) are not run: one skipped test each says so and why (a console
block must say why in a ``<!-- not run: … -->`` line above it). Every ```toml block is loaded by
the service's own config loader.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.core.config import load_settings
from tests.smtpd import SMTPTestServer

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "operate"
PG_ADMIN_URL = os.environ.get("ALERTS_TEST_DATABASE_URL", "")
LANGUAGES = {"sh", "console", "text", "toml"}
PAGE_TIMEOUT = 240  # seconds for one page's blocks; the guide's pages take a few each
FENCE = re.compile(r"^```(?P<language>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (?P<why>.+?) -->\s*\Z")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    body: str
    why_not_run: str  # from a "<!-- not run: … -->" line just above the fence

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        why = NOT_RUN.search(before)
        blocks.append(
            Block(
                page=page.name,
                line=before.count("\n") + 1,
                language=match["language"],
                body=match["body"],
                why_not_run=why["why"] if why else "",
            )
        )
    return blocks


def _pages_in_order() -> list[Path]:
    """The index's links first, in its order, then any page it does not link (by name)."""
    linked = re.findall(r"\]\(([\w-]+\.md)\)", (GUIDE / "index.md").read_text())
    pages = [GUIDE / name for name in dict.fromkeys(linked) if (GUIDE / name).exists()]
    return pages + sorted(p for p in GUIDE.glob("*.md") if p not in pages and p.name != "index.md")


ALL = [block for page in sorted(GUIDE.glob("*.md")) for block in _blocks(page)]


def test_every_page_is_in_the_index() -> None:
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", (GUIDE / "index.md").read_text()))
    assert {p.name for p in GUIDE.glob("*.md")} - {"index.md"} <= linked
    # the pages others write are linked before they land
    assert {"monitoring.md", "secrets.md", "backups.md", "doctor.md"} <= linked


def test_every_block_says_what_it_is() -> None:
    """An unmarked block, or a ```bash one, would be a command nobody runs."""
    assert [b.name for b in ALL if b.language not in LANGUAGES] == []
    assert [b.name for b in ALL if b.language == "console" and not b.why_not_run] == []
    assert [b.name for b in ALL if b.language == "sh" and b.why_not_run] == []


@pytest.mark.parametrize("block", [b for b in ALL if b.language == "toml"], ids=lambda b: b.name)
def test_toml_block_is_valid_config(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(block.body)
    folder = tomllib.loads(block.body).get("paths", {}).get("templates")
    if folder:  # a folder of one's own families must exist; the block names where
        (tmp_path / folder).mkdir(parents=True)
    load_settings(path, environ={})  # raises ConfigError naming the bad key


@pytest.mark.parametrize("block", [b for b in ALL if b.language in ("console", "text")], ids=lambda b: b.name)
def test_block_not_run(block: Block) -> None:
    if block.language == "console":
        pytest.skip(f"{block.name} (console) not run: {block.why_not_run}")
    pytest.skip(
        f"{block.name} (text) not run: not a command but text to paste elsewhere (a DNS record, another program's settings)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str | None]:
    """None (the embedded default, SQLite in the folder), or a new empty PostgreSQL database."""
    if not PG_ADMIN_URL:
        yield None
        return
    import asyncpg

    name = f"alerts_docs_{uuid.uuid4().hex[:10]}"
    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _script(page: Path, blocks: list[Block], timings: Path, web_port: int) -> str:
    lines = ["set -euo pipefail"]
    for block in blocks:
        body = block.body.replace("127.0.0.1:8080", f"127.0.0.1:{web_port}")
        lines += [f'echo "{block.line} $EPOCHREALTIME" >> {timings}', body]
    lines.append(f'echo "end $EPOCHREALTIME" >> {timings}')
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(900)
async def test_the_guide_runs_page_by_page(
    tmp_path: Path, smtpd_server: SMTPTestServer, database_url: str | None
) -> None:
    folder = tmp_path / "operator"
    folder.mkdir()
    web_port = _free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "ALERTS_SERVER_SECRET_KEY": secrets.token_urlsafe(48),
        "ALERTS_SERVER_PORT": str(web_port),
        "ALERTS_EMAIL_PORT": str(smtpd_server.port),
    }
    if database_url:
        env["ALERTS_DATABASE_URL"] = database_url
    report = []
    for page in _pages_in_order():
        blocks = [b for b in _blocks(page) if b.language == "sh"]
        if not blocks:
            continue
        timings = tmp_path / f"{page.stem}.timings"
        script = tmp_path / f"{page.stem}.sh"
        script.write_text(_script(page, blocks, timings, web_port))
        log = tmp_path / f"{page.stem}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                "bash", str(script), cwd=folder, env=env, stdout=out, stderr=out, start_new_session=True
            )
            try:
                code = await asyncio.wait_for(proc.wait(), PAGE_TIMEOUT)
            except TimeoutError:
                code = None
            finally:
                # whatever a block left running in the background goes with it
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        marks = [line.split() for line in timings.read_text().splitlines()] if timings.exists() else []
        failed_at = marks[-1][0] if marks and marks[-1][0] != "end" else "?"
        assert code == 0, (
            f"docs/operate/{page.name}: the sh block at line {failed_at} "
            f"{'timed out' if code is None else f'exited {code}'}:\n{log.read_text()[-3000:]}"
        )
        for (line, start), (_, end) in itertools.pairwise(marks):
            report.append(f"{page.name}:{line} {float(end) - float(start):.1f} s")
    print("\n".join(["time per block:", *report]))
    assert report, "no sh block ran"


def test_a_failing_block_names_its_page_and_line(tmp_path: Path) -> None:
    """The harness itself: a block that fails stops the page, and the marks say which one."""
    page = tmp_path / "broken.md"
    page.write_text("Intro\n\n```sh\ntrue\n```\n\nthen\n\n```sh\nfalse\necho never\n```\n")
    timings = tmp_path / "t"
    script = _script(page, _blocks(page), timings, 1)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30)
    assert done.returncode != 0 and time.monotonic() - started < 10
    assert [line.split()[0] for line in timings.read_text().splitlines()] == ["3", "9"]
