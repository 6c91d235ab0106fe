"""The container image's install path, without Docker: deploy/install.sh (the very script the
Dockerfile runs) builds the wheel and installs it into a fresh venv; then, from an empty
folder, the installed `alerts` runs `init` on a fresh database, `serve`, and one alert goes
end to end to the recording SMTP server.

The fresh venv takes its dependencies from the package index (about 40 s on a cold cache).
On the PostgreSQL run (ALERTS_TEST_DATABASE_URL) the database is a new, empty PostgreSQL
database, as in deploy/compose.yaml; otherwise a new SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, pg_execute, pg_url
from tests.smtpd import SMTPTestServer

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "deploy" / "install.sh"
EXAMPLE = ROOT / "templates" / "urgent-appeal" / "example.toml"
SECRET = "install-path-secret-" + "x" * 32

CONTACTS = """name,email,telegram,kind,language,organisation,country,lists
Samuel Okoro,interior.minister@example.org,,authority,en,Ministry of the Interior,Freedonia,urgent-appeals
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv that deploy/install.sh made from a wheel built from this checkout."""
    base = tmp_path_factory.mktemp("install")
    env = {**os.environ, "PYTHON": sys.executable}
    started = time.monotonic()
    for step, src, dest in (("wheel", ROOT, base / "wheels"), ("venv", base / "wheels", base / "venv")):
        done = subprocess.run(
            ["sh", str(INSTALL), step, str(src), str(dest)],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, f"install.sh {step} failed:\n{done.stdout}\n{done.stderr}"
    print(f"install.sh wheel + venv: {time.monotonic() - started:.1f} s")
    return base / "venv"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty database: nothing migrated, as an operator's first `alerts init` finds it."""
    if not PG_ADMIN_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'run' / 'alerts.db'}"
        return
    name = f"alerts_install_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(f'CREATE DATABASE "{name}"'))
    yield pg_url(name)
    asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Installed:
    """The installed `alerts` command, run from an empty folder with a config file there."""

    def __init__(self, venv: Path, folder: Path) -> None:
        self.alerts = venv / "bin" / "alerts"
        self.folder = folder
        # Nothing of this test's environment leaks in: no ALERTS_CONFIG, no PYTHONPATH.
        self.env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(folder),
            "LANG": "C.UTF-8",
            "ALERTS_SERVER_SECRET_KEY": SECRET,
        }

    async def __call__(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(self.alerts),
            *args,
            cwd=self.folder,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0, f"alerts {' '.join(args)} exited {proc.returncode}: {err.decode()}"
        return out.decode()

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        log = (self.folder / "serve.log").open("wb")
        return await asyncio.create_subprocess_exec(
            str(self.alerts), *args, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
async def running(
    installed: Path, database_url: str, tmp_path: Path, smtpd_server: SMTPTestServer
) -> AsyncIterator[tuple[Installed, int]]:
    folder = tmp_path / "run"
    folder.mkdir()
    port = _free_port()
    (folder / "alerts.toml").write_text(
        f"""[database]
url = "{database_url}"

[server]
port = {port}
public_url = "http://127.0.0.1:{port}"

[email]
host = "127.0.0.1"
port = {smtpd_server.port}
from = "Urgent Alerts <alerts@example.org>"

[dispatcher]
flush_interval = 0.01
"""
    )
    yield Installed(installed, folder), port


def _healthz(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except (urllib.error.URLError, ConnectionError):
        return None


async def test_wheel_in_a_fresh_venv_inits_serves_and_sends_one_alert(
    running: tuple[Installed, int], smtpd_server: SMTPTestServer
) -> None:
    alerts, port = running
    assert str(alerts.alerts).startswith(str(alerts.alerts.parents[1]))
    version = await alerts("--version")
    assert version.startswith("alerts ")

    init = await alerts("init", "--admin", "admin")
    assert "database ready. First admin: admin" in init
    assert re.search(r"API token \(shown once\): \S+", init)

    serve = await alerts.start("serve")
    try:
        ready = {"status": "ok", "checks": {"database": "ok", "dispatcher": "ok", "scheduler": "ok"}}
        deadline = time.monotonic() + 60
        health = None
        while health != ready and time.monotonic() < deadline and serve.returncode is None:
            await asyncio.sleep(0.2)  # the scheduler joins /healthz a moment after the web app starts
            health = await asyncio.to_thread(_healthz, port)
        assert health == ready, (alerts.folder / "serve.log").read_text()

        await alerts("users", "add", "rafael", "--role", "reviewer", "--no-password")
        (alerts.folder / "contacts.csv").write_text(CONTACTS)
        await alerts("contacts", "import", "contacts.csv", "--no-progress")  # the one contact it sends to
        alert_id = (
            await alerts(
                "alert", "create", "--template", "urgent-appeal", "--data", str(EXAMPLE),
                "--list", "urgent-appeals", "--channel", "email", "--language", "en",
            )
        ).strip()  # fmt: skip
        assert alert_id.isdigit()
        await alerts("alert", "submit", alert_id)
        await alerts("alert", "approve", alert_id, "--as", "rafael")
        await alerts("alert", "send", alert_id)  # `serve`'s dispatcher does the sending

        deadline = time.monotonic() + 60
        counts: dict[str, dict[str, int]] = {}
        while time.monotonic() < deadline:
            status = json.loads(await alerts("alert", "status", alert_id, "--json"))
            counts = {
                channel: {s: n for s, n in by_state.items() if n}
                for channel, by_state in status["channels"].items()
            }
            if counts == {"email": {"sent": 1}}:
                break
            await asyncio.sleep(0.3)
        assert counts == {"email": {"sent": 1}}, (alerts.folder / "serve.log").read_text()
        [message] = smtpd_server.messages()
        assert message.rcpt_tos == ("interior.minister@example.org",)
        assert "alerts@example.org" in message.from_
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(serve.wait(), 60)
    assert code == 0, (alerts.folder / "serve.log").read_text()
