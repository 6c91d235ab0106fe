"""The `alerts` command as a new user runs it: real processes, a real database, a real SMTP server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.cli.capture import CaptureServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "templates" / "urgent-appeal" / "example.toml"


@dataclass
class Run:
    code: int
    out: str
    err: str


class CLI:
    def __init__(self, db_url: str, cwd: Path, smtp_port: int = 8025) -> None:
        self.env = {
            **os.environ,
            "ALERTS_DATABASE_URL": db_url,
            "ALERTS_EMAIL_PORT": str(smtp_port),
            "ALERTS_DISPATCHER_FLUSH_INTERVAL": "0.01",
            "ALERTS_SERVER_SECRET_KEY": "cli-test-secret-0123456789",
        }
        self.env.pop("ALERTS_CONFIG", None)
        self.cwd = cwd

    async def __call__(self, *args: str, stdin: bytes | None = None) -> Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alerts",
            *args,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=120)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def smtp() -> CaptureServer:
    server = CaptureServer()
    await server.start()
    yield server  # type: ignore[misc]
    await server.stop()


@pytest.fixture
def cli(db_url: str, tmp_path: Path, smtp: CaptureServer) -> CLI:
    return CLI(db_url, tmp_path, smtp.port)


CSV = """name,email,telegram,kind,language,organisation,country,lists
Minister A,minister@example.org,,authority,fr,Ministry,Freedonia,urgent-appeals
Journalist B,journo@example.org,,media,en,Daily,Freedonia,urgent-appeals
Bad Row,not-an-email,,authority,en,,,urgent-appeals
Partner C,partner@example.org,,partner,es,NGO,Freedonia,urgent-appeals
"""


async def test_new_user_flow_from_init_to_delivered(cli: CLI, tmp_path: Path, smtp: CaptureServer) -> None:
    first = await cli("init", "--password", "correct horse battery")
    assert first.code == 0, first.err
    assert "First admin: admin" in first.out
    again = await cli("init")
    assert again.code == 0 and "up to date" in again.err
    assert (await cli("users", "add", "olga", "--role", "officer", "--password", "olga-password")).code == 0
    assert (
        await cli("users", "add", "rafael", "--role", "reviewer", "--password", "rafael-password")
    ).code == 0

    (tmp_path / "contacts.csv").write_text(CSV)
    imported = await cli("contacts", "import", "contacts.csv", "--no-progress")
    assert imported.code == 2, imported.err  # DESIGN: any refused row exits 2; the others are in
    assert imported.out == ""  # the summary and the refusals go to stderr
    assert "row 4: " in imported.err.splitlines()[1][:7]  # the header is row 1
    assert "3 created" in imported.err

    created = await cli(
        "alert",
        "create",
        "--template",
        "urgent-appeal",
        "--data",
        str(EXAMPLE),
        "--as",
        "olga",
        "--list",
        "urgent-appeals",
        "--channel",
        "email",
        "--language",
        "en",
        "--language",
        "fr",
    )
    assert created.code == 0, created.err
    assert created.out.strip().isdigit()  # only the id, for scripts
    alert_id = created.out.strip()

    preview = await cli(
        "alert", "preview", alert_id, "--channel", "email", "--audience", "authority", "--language", "fr"
    )
    assert preview.code == 0 and preview.out.startswith("Subject: ")

    assert (await cli("alert", "submit", alert_id, "--as", "olga")).code == 0
    officer = await cli("alert", "approve", alert_id, "--as", "olga")
    assert (
        officer.err == "alerts: user 'olga' (officer) may not alert.approve; allowed roles: admin, reviewer\n"
    )
    assert (await cli("alert", "approve", alert_id, "--as", "rafael")).code == 0

    sent = await cli("alert", "send", alert_id, "--wait")
    assert sent.code == 0, sent.err
    status = await cli("alert", "status", alert_id, "--json")
    doc = json.loads(status.out)
    assert doc["id"] == int(alert_id) and doc["state"] == "sent"
    assert doc["channels"]["email"]["sent"] == 3
    messages = smtp.messages()
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "journo@example.org",
        "minister@example.org",
        "partner@example.org",
    ]
    assert all(len(m.rcpt_tos) == 1 for m in messages)
    by_rcpt = {m.rcpt_tos[0]: m for m in messages}
    assert b"journo@example.org" not in by_rcpt["minister@example.org"].raw
    # sending again creates nothing twice
    resent = await cli("alert", "send", alert_id)
    assert resent.code != 0 or "0 deliveries" in resent.err


async def test_refusals_are_one_line_and_write_nothing(cli: CLI, tmp_path: Path) -> None:
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    (tmp_path / "bad.toml").write_text('country = "Freedonia"\n')
    bad = await cli(
        "alert", "create", "--template", "urgent-appeal", "--data", "bad.toml", "--kind", "authority"
    )
    assert bad.code != 0
    assert bad.err.startswith("alerts: case data: ") and bad.err.count("\n") == 1
    assert (await cli("alert", "status", "1")).err == "alerts: alert 1 does not exist\n"
    own = (
        await cli(
            "alert", "create", "--template", "urgent-appeal", "--data", str(EXAMPLE), "--kind", "authority"
        )
    ).out
    assert (await cli("alert", "submit", own.strip())).code == 0
    author = await cli("alert", "approve", own.strip(), "--as", "admin")
    assert author.code != 0 and "second person" in author.err and author.err.count("\n") == 1
    assert json.loads((await cli("alert", "status", own.strip(), "--json")).out)["state"] == "in_review"
    missing = await cli(
        "alert", "create", "--template", "nope", "--data", str(EXAMPLE), "--kind", "authority"
    )
    assert missing.code != 0 and "nope" in missing.err
    # a file argument that is not a file: refused as bad input (exit 2), saying what it is
    for path, said in (
        ("/dev/zero", "not a file"),
        (str(tmp_path), "not a file"),
        ("gone.csv", "file not found"),
    ):
        run = await cli("contacts", "import", path, "--no-progress")
        assert (run.code, run.err) == (2, f"alerts: {path}: {said}{_HINT if said == 'not a file' else ''}.\n")
    run = await cli(
        "alert", "create", "--template", "urgent-appeal", "--data", str(tmp_path), "--kind", "authority"
    )
    assert (run.code, run.err) == (2, f"alerts: {tmp_path}: a directory, not a file.\n")

    config = tmp_path / "alerts.toml"
    config.write_text("[email]\npool_size = 'x'\n")
    broken = await cli("--config", str(config), "alert", "status", "1")
    assert broken.err == f"alerts: {config}: [email] pool_size has value 'x'. Not a valid int.\n"


_HINT = " (give a CSV file, or - for standard input)"


async def test_public_alert_needs_consent_before_sending(cli: CLI, tmp_path: Path) -> None:
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    assert (
        await cli("users", "add", "rafael", "--role", "reviewer", "--password", "rafael-password")
    ).code == 0
    alert_id = (
        await cli(
            "alert", "create", "--template", "urgent-appeal", "--data", str(EXAMPLE), "--kind", "public"
        )
    ).out.strip()
    assert (await cli("alert", "submit", alert_id)).code == 0
    assert (await cli("alert", "approve", alert_id, "--as", "rafael")).code == 0
    refused = await cli("alert", "send", alert_id)
    assert refused.code != 0 and "consent" in refused.err
    status = json.loads((await cli("alert", "status", alert_id, "--json")).out)
    assert status["state"] == "approved" and status["channels"] == {}
    assert (await cli("alert", "consent", alert_id, "--recorded-by", "admin", "--scope", "public")).code == 0
    nobody = await cli("alert", "send", alert_id)  # consent given, but no public contact yet
    assert nobody.code != 0 and "has no recipients: no contact has its kinds (public)" in nobody.err
    contacts = tmp_path / "public.csv"
    contacts.write_text(
        "name,email,telegram,kind,language,organisation,country,lists\nReader,reader@example.org,,public,en,,,\n"
    )
    assert (await cli("contacts", "import", str(contacts), "--no-progress")).code == 0
    assert (await cli("alert", "send", alert_id)).code == 0


PRESS_CSV = """name,email,telegram,kind,language,organisation,country,lists
Reporter D,reporter@example.org,,press,en,Wire,Freedonia,press
"""


async def test_test_send_then_press_release_with_attachment(
    cli: CLI, tmp_path: Path, smtp: CaptureServer
) -> None:
    import email as email_pkg

    assert (await cli("init", "--password", "correct horse battery")).code == 0
    assert (
        await cli("users", "add", "rafael", "--role", "reviewer", "--password", "rafael-password")
    ).code == 0
    (tmp_path / "press.csv").write_text(PRESS_CSV)
    assert (await cli("contacts", "import", "press.csv", "--no-progress")).code == 0
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (tmp_path / "run.sh").write_text("echo no")
    refused = await cli(
        "alert",
        "create",
        "--template",
        "urgent-appeal",
        "--data",
        str(EXAMPLE),
        "--list",
        "press",
        "--channel",
        "press",
        "--attach",
        "run.sh",
    )
    assert refused.code != 0 and refused.err.startswith(
        "alerts: --attach run.sh: the content is of no type recognised"
    )
    assert (
        await cli("alert", "status", "1")
    ).err == "alerts: alert 1 does not exist\n"  # nothing half-written
    created = await cli(
        "alert",
        "create",
        "--template",
        "urgent-appeal",
        "--data",
        str(EXAMPLE),
        "--list",
        "press",
        "--channel",
        "press",
        "--attach",
        "photo.png",
        "--embargo",
        "2030-01-02T09:00:00Z",
    )
    alert_id = created.out.strip()
    assert alert_id.isdigit(), created.err

    tested = await cli(
        "alert", "test", alert_id, "--to", "officer@example.org", "--channel", "press", "--audience", "press"
    )
    assert tested.code == 0, tested.err
    [test_msg] = smtp.messages()
    assert list(test_msg.rcpt_tos) == ["officer@example.org"] and test_msg.subject.startswith("[TEST] ")

    assert (await cli("alert", "submit", alert_id)).code == 0
    assert (await cli("alert", "approve", alert_id, "--as", "rafael")).code == 0
    assert (await cli("alert", "send", alert_id, "--wait")).code == 0
    release = [m for m in smtp.messages() if list(m.rcpt_tos) == ["reporter@example.org"]]
    assert len(release) == 1
    parsed = email_pkg.message_from_bytes(release[0].raw)
    files = [(p.get_filename(), p.get_content_type()) for p in parsed.walk() if p.get_filename()]
    assert files == [("photo.png", "image/png")]
    text = next(p for p in parsed.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"EMBARGOED UNTIL 2030-01-02 09:00 UTC" in text


async def test_wait_stops_with_a_reason_when_the_alert_cannot_finish(cli: CLI, tmp_path: Path) -> None:
    assert (await cli("init", "--password", "correct horse battery")).code == 0
    assert (
        await cli("users", "add", "rafael", "--role", "reviewer", "--password", "rafael-password")
    ).code == 0
    (tmp_path / "contacts.csv").write_text(CSV)
    assert (await cli("contacts", "import", "contacts.csv", "--no-progress")).code == 2  # row 4 refused
    alert_id = (
        await cli(
            "alert",
            "create",
            "--template",
            "urgent-appeal",
            "--data",
            str(EXAMPLE),
            "--list",
            "urgent-appeals",
            "--channel",
            "email",
        )
    ).out.strip()
    assert (await cli("alert", "submit", alert_id)).code == 0
    assert (await cli("alert", "approve", alert_id, "--as", "rafael")).code == 0
    assert (await cli("alert", "pause", alert_id)).code == 0
    waited = await cli("alert", "send", alert_id, "--wait")
    assert waited.code == 3
    assert waited.err.splitlines()[-1].startswith(
        f"alerts: alert {alert_id}: it is paused (alerts alert resume {alert_id})"
    )
    assert (await cli("alert", "resume", alert_id)).code == 0
    assert (await cli("alert", "send", alert_id, "--wait")).code == 0
