"""``alerts doctor``: each check passing and failing, with its fix, against real servers on
loopback: the recording SMTP server (tests/smtpd.py), the Bot API (tests/botapi.py), a DNS server
(tests/dnsd.py), an HTTPS /healthz, and a real database."""

from __future__ import annotations

import argparse
import base64
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import text

from alerts.cli.operate import doctor as doctor_command
from alerts.core.config import Settings
from alerts.ops import local, remote
from alerts.ops.doctor import examine, format_finding, worst
from alerts.ops.findings import Finding, Level, Probes
from alerts.store.db import create_engine
from alerts.store.migrate import head_revision
from tests.botapi import BotApiServer
from tests.dnsd import DNSServer
from tests.smtpd import SMTPTestServer

STRONG = "k8Jq2vX0pL5sR7tY9wB3nM6cF1hG4dZe-strong"
SELECTOR = "s1._domainkey.example.org"


@dataclass
class Health:
    """A /healthz on loopback (https with the test certificate when asked)."""

    url: str
    status: int = 200


async def _healthz(tls: ssl.SSLContext | None) -> AsyncIterator[Health]:
    health = Health(url="")

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=health.status)

    app = web.Application()
    app.router.add_get("/healthz", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    health.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield health
    finally:
        await runner.cleanup()


@pytest.fixture
async def https_health(tls_files: tuple[Path, Path]) -> AsyncIterator[Health]:
    cert, key = tls_files
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    async for health in _healthz(tls):
        yield health


@pytest.fixture
async def http_health() -> AsyncIterator[Health]:
    async for health in _healthz(None):
        yield health


@pytest.fixture
def trust(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """Client trust for the test certificate (the relay's and the HTTPS /healthz's)."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


@pytest.fixture(scope="session")
def dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(our key file, its public key as openssl writes it (base64 DER), another key file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("DKIM checks need the openssl command to make RSA keys")
    folder = tmp_path_factory.mktemp("dkim")
    ours, other = folder / "dkim.pem", folder / "other.pem"
    for path in (ours, other):
        subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(ours), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return ours, base64.b64encode(public).decode(), other


def settings_for(**sections: dict[str, object]) -> Settings:
    settings = Settings().replace("server", secret_key=STRONG)
    for section, values in sections.items():
        settings = settings.replace(section, **values)
    return settings


def email_of(server: SMTPTestServer, **values: object) -> dict[str, object]:
    script = server.handler.script
    user, password = script.auth or ("", "")
    return {"host": server.host, "port": server.port, "security": script.security,
            "username": user, "password": password, **values}  # fmt: skip


# -- everything at once ------------------------------------------------------------------------


@pytest.mark.smtpd_options(security="starttls", auth=("relay-user", "relay-pass-0123"))
async def test_a_ready_deployment_is_all_ok(
    db_url: str, smtpd_server: SMTPTestServer, botapi: BotApiServer, dnsd: DNSServer,
    https_health: Health, trust: ssl.SSLContext, dkim_keys: tuple[Path, str, Path],
) -> None:  # fmt: skip
    key, public, _ = dkim_keys
    dnsd.txt[SELECTOR] = f"v=DKIM1; k=rsa; p={public}"
    settings = settings_for(
        database={"url": db_url},
        server={"public_url": https_health.url},
        email=email_of(smtpd_server, dkim_selector="s1", dkim_domain="example.org", dkim_key_file=str(key)),
        telegram={"token": botapi.token, "base_url": botapi.base_url},
    )
    findings = await examine(settings, Probes(resolver=dnsd.resolver(), tls=trust, timeout=5))
    assert [(f.check, f.level) for f in findings] == [
        (name, Level.OK)
        for name in ("database", "disk", "secret_key", "templates", "smtp", "telegram", "dkim", "public_url")
    ], "\n".join(map(format_finding, findings))
    assert worst(findings) == Level.OK
    assert smtpd_server.messages() == []  # asked, never sent
    assert botapi.sent() == []
    assert dnsd.queries == [SELECTOR]
    shown = "\n".join(map(format_finding, findings))
    for secret in (STRONG, "relay-pass-0123", botapi.token):
        assert secret not in shown
    assert "STARTTLS ok, AUTH ok (no mail sent)" in shown


# -- config, and the exit codes ----------------------------------------------------------------


def test_a_bad_config_is_the_one_finding_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alerts.cli.parser import main

    bad = tmp_path / "alerts.toml"
    bad.write_text('[email]\nsecurity = "ssl"\n')
    assert main(["--config", str(bad), "doctor"]) == 2
    out = capsys.readouterr().out
    assert out.startswith(
        f"fail  config      {bad}: [email] security has value 'ssl'. Must be one of: none, starttls, tls."
    )
    assert "fix: correct it (config.example.toml documents every key)" in out
    assert "database" not in out


async def test_warnings_only_exit_1(
    db_url: str, smtpd_server: SMTPTestServer, http_health: Health, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(
        database={"url": db_url}, server={"public_url": http_health.url, "secret_key": "x" * 8 + "abcdefghijklmnop"},
        email=email_of(smtpd_server),
    )  # fmt: skip
    code = await doctor_command(argparse.Namespace(json=False, timeout=3.0, config=None), settings)
    out = capsys.readouterr().out
    assert code == 1, out
    assert out.count("warn ") == 3 and "fail " not in out  # secret_key, dkim (unset), public_url
    assert "warn  public_url  " in out and "fix: fine for a trial on this machine" in out


def test_exit_code_is_the_worst_level() -> None:
    found = [Finding(check="a", level=Level.OK, detail=""), Finding(check="b", level=Level.WARN, detail="")]
    assert worst(found) == 1
    assert worst([*found, Finding(check="c", level=Level.FAIL, detail="", fix="x")]) == 2
    assert worst([]) == 0


# -- database and disk -------------------------------------------------------------------------


async def test_database_unreachable_unmigrated_behind_and_ahead(db_url: str, tmp_path: Path) -> None:
    probes = Probes(timeout=3)
    missing = await local.database(
        settings_for(database={"url": f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/a.db"}), probes
    )
    assert (missing.level, missing.fix) == (
        Level.FAIL,
        "check [database] url (ALERTS_DATABASE_URL) and that the database server runs",
    )
    assert "cannot connect" in missing.detail
    empty = await local.database(
        settings_for(database={"url": f"sqlite+aiosqlite:///{tmp_path}/empty.db"}), probes
    )
    assert (empty.level, empty.detail.endswith("no schema yet")) == (Level.FAIL, True)
    assert empty.fix.startswith("run `alerts init`")
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        behind = await local.database(settings_for(database={"url": db_url}), probes)
        assert behind.level == Level.FAIL and behind.detail.endswith(
            f"schema 0003, this version needs {head_revision()}"
        )
        assert behind.fix == "run `alerts init` (it migrates)"
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        ahead = await local.database(settings_for(database={"url": db_url}), probes)
        assert ahead.level == Level.FAIL and "unknown to this version" in ahead.detail
    finally:
        await engine.dispose()


async def test_database_password_is_never_shown() -> None:
    url = "postgresql+asyncpg://alerts:hunter2-secret@127.0.0.1:1/alerts"
    found = await local.database(settings_for(database={"url": url}), Probes(timeout=3))
    assert found.level == Level.FAIL
    assert "hunter2" not in found.detail and "alerts:***@127.0.0.1:1" in found.detail


async def test_disk_space_for_sqlite(tmp_path: Path) -> None:
    settings = settings_for(database={"url": f"sqlite+aiosqlite:///{tmp_path}/a.db"})
    assert (await local.disk(settings, Probes())).level == Level.OK
    low = await local.disk(settings, Probes(warn_free_bytes=1 << 60))
    assert low.level == Level.WARN and "a backup needs as much room as the database" in low.fix
    full = await local.disk(settings, Probes(min_free_bytes=1 << 60))
    assert full.level == Level.FAIL and full.fix.startswith("free space below ")
    pg = await local.disk(
        settings_for(database={"url": "postgresql+asyncpg://u@h/d"}), Probes(min_free_bytes=1 << 60)
    )
    assert pg.level == Level.OK


# -- secret key and templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "level", "says"),
    [
        ("change-me-in-production", Level.FAIL, "the shipped default"),
        ("short-key", Level.FAIL, "9 characters; at least 16 are needed"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Level.WARN, "37 characters, 1 different"),
        ("sixteen-chars-ok!", Level.WARN, "17 characters"),
        (STRONG, Level.OK, f"{len(STRONG)} characters"),
    ],
)
async def test_secret_key_strength(key: str, level: Level, says: str) -> None:
    found = await local.secret_key(settings_for(server={"secret_key": key}), Probes())
    assert found.level == level and found.detail.startswith(says)
    assert key not in found.detail + found.fix
    if level != Level.OK:
        assert found.fix.startswith("set ALERTS_SERVER_SECRET_KEY to a new random value: python3 -c")


async def test_own_template_families_are_checked(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parent.parent / "templates" / "update"
    shutil.copytree(shipped, tmp_path / "ours" / "update")
    ours = tmp_path / "ours" / "update"
    assert (
        await local.templates(settings_for(paths={"templates": str(tmp_path / "ours")}), Probes())
    ).level == Level.OK
    (ours / "subject.txt.j2").write_text("{{ case.changes }} {{ case.chnages }}\n")
    found = await local.templates(settings_for(paths={"templates": str(tmp_path / "ours")}), Probes())
    assert found.level == Level.FAIL
    assert found.detail.startswith(
        "3 families (1 of your own): update/subject.txt.j2:1: case.chnages is not declared"
    )
    assert found.fix == f"run `alerts templates check {tmp_path / 'ours'}` and fix what it lists"


# -- SMTP relay ---------------------------------------------------------------------------------


async def test_smtp_plain_relay_on_loopback_is_ok(smtpd_server: SMTPTestServer) -> None:
    found = await remote.smtp(settings_for(email=email_of(smtpd_server)), Probes(timeout=3))
    assert (found.level, found.detail) == (Level.OK, f"127.0.0.1:{smtpd_server.port}: EHLO ok (no mail sent)")


@pytest.mark.smtpd_options(security="starttls", auth=("relay-user", "relay-pass-0123"))
async def test_smtp_wrong_password_fails_after_starttls(
    smtpd_server: SMTPTestServer, trust: ssl.SSLContext
) -> None:
    settings = settings_for(email=email_of(smtpd_server, password="wrong-password"))
    found = await remote.smtp(settings, Probes(tls=trust, timeout=3))
    assert found.level == Level.FAIL
    assert found.detail.startswith(
        f"127.0.0.1:{smtpd_server.port}: EHLO ok, STARTTLS ok, then AUTH refused (535)"
    )
    assert found.fix == "check [email] username and the password in ALERTS_EMAIL_PASSWORD"
    assert "wrong-password" not in found.detail


@pytest.mark.smtpd_options(security="tls", auth=("relay-user", "relay-pass-0123"))
async def test_smtp_implicit_tls_and_auth(smtpd_server: SMTPTestServer, trust: ssl.SSLContext) -> None:
    found = await remote.smtp(settings_for(email=email_of(smtpd_server)), Probes(tls=trust, timeout=3))
    assert (found.level, found.detail) == (
        Level.OK,
        f"127.0.0.1:{smtpd_server.port}: EHLO ok, AUTH ok (no mail sent)",
    )


@pytest.mark.smtpd_options(security="starttls")
async def test_smtp_untrusted_certificate_fails(smtpd_server: SMTPTestServer) -> None:
    found = await remote.smtp(settings_for(email=email_of(smtpd_server)), Probes(timeout=3))  # system trust
    assert found.level == Level.FAIL and "TLS failed" in found.detail
    assert found.fix.startswith("the relay's certificate must be valid for [email] host")


@pytest.mark.smtpd_options(security="starttls")
async def test_smtp_in_clear_while_the_relay_offers_starttls_warns(smtpd_server: SMTPTestServer) -> None:
    found = await remote.smtp(settings_for(email=email_of(smtpd_server, security="none")), Probes(timeout=3))
    assert (
        found.level == Level.WARN
        and found.fix == 'the relay offers STARTTLS: set [email] security = "starttls"'
    )


async def test_smtp_starttls_wanted_but_not_offered_fails(smtpd_server: SMTPTestServer) -> None:
    found = await remote.smtp(
        settings_for(email=email_of(smtpd_server, security="starttls")), Probes(timeout=3)
    )
    assert found.level == Level.FAIL and found.detail.endswith(
        "EHLO ok, then the relay does not offer STARTTLS"
    )


async def test_smtp_nothing_listening_fails(closed_port: int) -> None:
    found = await remote.smtp(
        settings_for(email={"host": "127.0.0.1", "port": closed_port}), Probes(timeout=3)
    )
    assert found.level == Level.FAIL
    assert found.fix == "check [email] host, port and security, and that the relay accepts this machine"


# -- Telegram -----------------------------------------------------------------------------------


async def test_telegram_get_me(botapi: BotApiServer, closed_port: int) -> None:
    ok = await remote.telegram(
        settings_for(telegram={"token": botapi.token, "base_url": botapi.base_url}), Probes()
    )
    assert (ok.level, ok.detail) == (Level.OK, "@alerts_test_bot (bot id 7000001)")
    wrong = "7000001:AAH-not-the-token-0123456789abcdefgh"
    refused = await remote.telegram(
        settings_for(telegram={"token": wrong, "base_url": botapi.base_url}), Probes()
    )
    assert refused.level == Level.FAIL and refused.detail.endswith("refused the token (401)")
    assert "@BotFather" in refused.fix and "ALERTS_TELEGRAM_TOKEN" in refused.fix
    assert wrong not in refused.detail + refused.fix
    down = await remote.telegram(
        settings_for(telegram={"token": wrong, "base_url": f"http://127.0.0.1:{closed_port}/bot"}),
        Probes(timeout=3),
    )
    assert down.level == Level.FAIL and down.detail.startswith(f"cannot reach 127.0.0.1:{closed_port}")
    assert wrong not in down.detail
    unset = await remote.telegram(settings_for(), Probes())
    assert unset.level == Level.OK and unset.detail.startswith("not configured")


# -- DKIM in DNS --------------------------------------------------------------------------------


def dkim_settings(key: Path) -> Settings:
    return settings_for(
        email={"dkim_selector": "s1", "dkim_domain": "example.org", "dkim_key_file": str(key)}
    )


async def test_dkim_record_matching_missing_other_revoked(
    dnsd: DNSServer, dkim_keys: tuple[Path, str, Path]
) -> None:
    key, public, other = dkim_keys
    probes = Probes(resolver=dnsd.resolver(), timeout=3)
    expected = f"v=DKIM1; k=rsa; p={public}"  # as openssl derives it from our key
    missing = await remote.dkim_record(dkim_settings(key), probes)
    assert (missing.level, missing.detail) == (Level.FAIL, f"no TXT record at {SELECTOR}")
    assert missing.fix == f'publish TXT {SELECTOR} "{expected}"'
    dnsd.txt[SELECTOR] = expected
    ok = await remote.dkim_record(dkim_settings(key), probes)
    assert (ok.level, ok.detail) == (Level.OK, f"{SELECTOR} matches {key}")
    other_found = await remote.dkim_record(dkim_settings(other), probes)
    assert (
        other_found.level == Level.FAIL and other_found.detail == f"{SELECTOR} holds another key than {other}"
    )
    assert (
        other_found.fix.startswith(f'publish TXT {SELECTOR} "v=DKIM1; k=rsa; p=')
        and public not in other_found.fix
    )
    dnsd.txt[SELECTOR] = "v=DKIM1; k=rsa; p="
    revoked = await remote.dkim_record(dkim_settings(key), probes)
    assert revoked.level == Level.FAIL and revoked.detail.endswith("the key is revoked (empty p=)")


async def test_dkim_dns_not_answering_warns(dnsd: DNSServer, dkim_keys: tuple[Path, str, Path]) -> None:
    dnsd.stall = True
    found = await remote.dkim_record(dkim_settings(dkim_keys[0]), Probes(resolver=dnsd.resolver(), timeout=1))
    assert found.level == Level.WARN and found.detail.startswith(f"could not ask DNS for {SELECTOR}")


async def test_dkim_unset_or_unreadable(tmp_path: Path) -> None:
    unset = await remote.dkim_record(settings_for(), Probes())
    assert unset.level == Level.WARN and unset.fix.startswith("Gmail and Yahoo ask bulk senders for DKIM")
    found = await remote.dkim_record(dkim_settings(tmp_path / "nope.pem"), Probes())
    assert found.level == Level.FAIL and "cannot read" in found.detail


# -- public_url ---------------------------------------------------------------------------------


async def test_public_url_https_http_unreachable_unhealthy(
    https_health: Health, http_health: Health, trust: ssl.SSLContext
) -> None:
    probes = Probes(tls=trust, timeout=3)
    ok = await remote.public_url(settings_for(server={"public_url": https_health.url}), probes)
    assert (ok.level, ok.detail) == (Level.OK, f"{https_health.url}: /healthz answers")
    plain = await remote.public_url(settings_for(server={"public_url": http_health.url}), probes)
    assert plain.level == Level.WARN and plain.fix.startswith("fine for a trial on this machine")
    far = await remote.public_url(settings_for(server={"public_url": "http://alerts.invalid"}), probes)
    assert far.level == Level.FAIL and far.fix.startswith("links in alerts carry unsubscribe tokens")
    assert "start `alerts serve`" in far.fix
    https_health.status = 503
    sick = await remote.public_url(settings_for(server={"public_url": https_health.url}), probes)
    assert (sick.level, sick.detail) == (Level.FAIL, f"{https_health.url}/healthz answered 503")


def test_public_key_record_is_what_openssl_derives(dkim_keys: tuple[Path, str, Path]) -> None:
    import dkim.crypto

    key, public, _ = dkim_keys
    parsed = dkim.crypto.parse_pem_private_key(key.read_bytes())
    assert (
        remote.public_key_record(parsed["modulus"], parsed["publicExponent"]) == f"v=DKIM1; k=rsa; p={public}"
    )
