"""Loopback SMTP server fixtures: a real aiosmtpd server on 127.0.0.1, port 0, in the test's loop.

Behaviour is chosen per test with ``@pytest.mark.smtpd_options(...)``:

- ``fail_first=K, fail_at="rcpt"|"data", fail_reply="451 4.3.0 Try again later"``: the first K
  transactions get ``fail_reply`` at that stage, later ones are accepted;
- ``reject={"addr": "550 5.1.1 User unknown"}``: RCPT reply for chosen recipients;
- ``mail_reply="553 ..."`` / ``data_reply="554 ..."``: reply to every MAIL / end of DATA;
- ``drop_after=N``: close the connection after the N-th message accepted on it;
- ``drop_at="mail"|"rcpt"|"data_cmd"|"data_end"``: close the connection at that point without
  replying (``data_end``: after the whole message data arrived);
- ``stall=seconds``: wait that long before answering the end of DATA;
- ``security="starttls"|"tls"``, ``auth=("user", "password")``: require TLS / AUTH;
- ``timeout=seconds``: the client timeout put in ``smtpd_settings``;
- ``pipelining=False``: do not offer PIPELINING (RFC 2920) in the EHLO reply, so the client
  sends one command at a time (offered by default: aiosmtpd reads pipelined commands in order).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alerts.cli.capture import CapturedMessage, CaptureServer, RecordingHandler
from alerts.core.config import EmailSettings


@dataclass
class Script:
    """What the test server should do (from the smtpd_options marker)."""

    fail_first: int = 0
    fail_at: str = "rcpt"
    fail_reply: str = "451 4.3.0 Try again later"
    reject: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    data_reply: str | None = None
    drop_after: int | None = None
    drop_at: str | None = None
    stall: float = 0.0
    security: str = "none"
    auth: tuple[str, str] | None = None
    timeout: float = 5.0
    pipelining: bool = True


class ScriptedHandler(RecordingHandler):
    """Records every accepted message and plays the Script."""

    def __init__(self, script: Script) -> None:
        super().__init__(limit=100_000)
        self.script = script
        self.attempts = 0  # transactions that reached RCPT (or DATA when failing there)
        self.release = asyncio.Event()  # ends a stall early at teardown
        self.per_session: dict[int, int] = {}

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.script.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    def _fail_now(self, stage: str) -> bool:
        if self.script.fail_at != stage:
            return False
        self.attempts += 1
        return self.attempts <= self.script.fail_first

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.script.mail_reply:
            return self.script.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.script.reject:
            return self.script.reject[address]
        if self._fail_now("rcpt"):
            return self.script.fail_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        script = self.script
        if script.drop_at == "data_end":
            assert server.transport is not None
            server.transport.close()
            return "250 never seen"
        if script.stall:
            try:
                await asyncio.wait_for(self.release.wait(), script.stall)
            except TimeoutError:
                pass
        if self._fail_now("data"):
            return script.fail_reply
        if script.data_reply:
            return script.data_reply
        self.record(session, envelope)
        key = id(server)
        self.per_session[key] = self.per_session.get(key, 0) + 1
        if script.drop_after is not None and self.per_session[key] >= script.drop_after:
            assert server.transport is not None
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 2.0.0 OK queued"


class ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP that can drop the connection at a chosen command."""

    def __init__(self, handler: ScriptedHandler, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # Implicit TLS: AUTH is over TLS, but aiosmtpd only knows about STARTTLS.
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            super().__init__(handler, hostname="localhost", **kwargs)
        self.script = handler.script

    async def _maybe_drop(self, point: str) -> bool:
        if self.script.drop_at != point:
            return False
        assert self.transport is not None
        self.transport.close()
        return True

    async def smtp_MAIL(self, arg: str) -> None:
        if not await self._maybe_drop("mail"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        if not await self._maybe_drop("rcpt"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if not await self._maybe_drop("data_cmd"):
            await super().smtp_DATA(arg)


@dataclass
class SMTPTestServer:
    """The running test server: where it listens and what it received."""

    capture: CaptureServer
    handler: ScriptedHandler
    client_tls: ssl.SSLContext | None = None

    @property
    def host(self) -> str:
        return self.capture.host

    @property
    def port(self) -> int:
        return self.capture.port

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self.capture.connections

    def messages(self) -> list[CapturedMessage]:
        """Accepted messages, oldest first."""
        return self.handler.messages()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _make_cert_with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("TLS tests need the 'cryptography' package or the openssl command (neither found)")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
    return cert, key


def _make_cert_with_cryptography(cert: Path, key: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private, hashes.SHA256())
    )  # fmt: skip
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _script(request: pytest.FixtureRequest) -> Script:
    marker = request.node.get_closest_marker("smtpd_options")
    return Script(**(marker.kwargs if marker else {}))


@pytest.fixture
async def smtpd_server(request: pytest.FixtureRequest) -> AsyncIterator[SMTPTestServer]:
    """A recording aiosmtpd server on 127.0.0.1 (port 0) behaving as the smtpd_options marker says."""
    script = _script(request)
    handler = ScriptedHandler(script)
    smtp_options: dict[str, Any] = {}
    server_options: dict[str, Any] = {}
    client_tls = None
    if script.security != "none":
        cert, key = request.getfixturevalue("tls_files")
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        client_tls = ssl.create_default_context(cafile=str(cert))
        if script.security == "starttls":
            smtp_options.update(tls_context=server_tls, require_starttls=True)
        else:
            server_options["ssl"] = server_tls
    if script.auth is not None:
        user, password = script.auth

        def authenticator(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                user.encode(),
                password.encode(),
            )
            return AuthResult(success=ok, handled=False)

        # Implicit TLS is invisible to aiosmtpd's STARTTLS check: require TLS only for starttls.
        smtp_options.update(
            auth_required=True, auth_require_tls=script.security == "starttls", authenticator=authenticator
        )

    capture = CaptureServer(
        handler=handler, smtp_factory=lambda h: ScriptedSMTP(handler, **smtp_options), **server_options
    )
    await capture.start()
    try:
        yield SMTPTestServer(capture=capture, handler=handler, client_tls=client_tls)
    finally:
        handler.release.set()
        await capture.stop()


@pytest.fixture
def smtpd_settings(smtpd_server: SMTPTestServer, request: pytest.FixtureRequest) -> EmailSettings:
    """EmailSettings pointing at ``smtpd_server`` (security, credentials and timeout to match)."""
    script = smtpd_server.handler.script
    user, password = script.auth or ("", "")
    return EmailSettings(
        host=smtpd_server.host,
        port=smtpd_server.port,
        security=script.security,  # type: ignore[arg-type]
        username=user,
        password=password,
        from_="Urgent Alerts <alerts@example.org>",
        pool_size=4,
        timeout=script.timeout,
    )
