"""EmailChannel against a real aiosmtpd server on loopback (tests/smtpd.py)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email
import email.policy
import logging
import re
import shutil
import socket
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from aiosmtplib import SMTPRecipientsRefused

from alerts.core.config import EmailSettings
from alerts.core.errors import ConfigError
from alerts.core.states import SuppressionReason
from alerts.core.types import Outcome, OutcomeKind, Recipient, RenderedContent, RenderedMessage
from channels.email import DkimOptions, EmailChannel
from channels.smtp_pool import DeliveryFailed, Phase
from tests.smtpd import SMTPTestServer

CONTENT = RenderedContent(
    channel="email",
    audience="media",
    language="fr",
    subject="Défenseure arrêtée à Tunis — agissez",
    text="Chère amie,\n.ligne qui commence par un point\nNous demandons sa libération. Ωμέγα\n",
    html="<p>Chère amie,</p><p>Nous demandons sa <b>libération</b>.</p>",
)


def make_message(
    n: int = 1,
    *,
    address: str | None = None,
    name: str = "Contact",
    content: RenderedContent = CONTENT,
    unsubscribe_url: str | None = None,
    thread_ids: tuple[str, ...] = (),
) -> RenderedMessage:
    recipient = Recipient(
        contact_id=n,
        name=name,
        address=address or f"contact{n}@example.org",
        language="fr",
        kind="media",
        unsubscribe_url=unsubscribe_url,
    )
    return RenderedMessage(
        delivery_id=n,
        alert_id=7,
        content=content,
        recipient=recipient,
        message_id=f"<alert-7.contact-{n}@alerts.example.org>",
        thread_ids=thread_ids,
    )


def parse(raw: bytes) -> EmailMessage:
    # As a mail client stores it: LF line ends.
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture(autouse=True, params=[True, False], ids=["pipelining", "one-at-a-time"])
def _pipelining(request: pytest.FixtureRequest) -> None:
    """Every test with the server offering PIPELINING (RFC 2920) and without it."""
    if "smtpd_server" in request.fixturenames:
        request.getfixturevalue("smtpd_server").handler.script.pipelining = request.param


@pytest.fixture
async def channel(smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer):  # type: ignore[no-untyped-def]
    ch = EmailChannel(smtpd_settings, tls_context=smtpd_server.client_tls)
    await ch.open()
    yield ch
    await ch.close()


async def test_one_recipient_per_message_and_no_other_address(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    messages = [make_message(n) for n in range(1, 6)]
    outcomes = await asyncio.gather(*(channel.send(m) for m in messages))
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 5
    received = sorted(smtpd_server.messages(), key=lambda m: m.rcpt_tos)
    assert [m.rcpt_tos for m in received] == [(f"contact{n}@example.org",) for n in range(1, 6)]
    for n, captured in enumerate(received, start=1):
        assert captured.mail_from == "alerts@example.org"
        assert parse(captured.raw)["To"] == f"Contact <contact{n}@example.org>"
        others = [f"contact{k}@example.org".encode() for k in range(1, 6) if k != n]
        assert not any(other in captured.raw for other in others)


async def test_headers_message_id_unsubscribe_and_threading(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    settings = dataclasses.replace(smtpd_settings, reply_to="Desk <desk@example.org>")
    channel = EmailChannel(settings)
    await channel.open()
    original = "<alert-6.contact-1@alerts.example.org>"
    message = make_message(
        1, unsubscribe_url="https://alerts.example.org/unsubscribe/tok123", thread_ids=(original,)
    )
    outcome = await channel.send(message)
    await channel.close()
    assert outcome.kind is OutcomeKind.SENT
    assert outcome.provider_id == "<alert-7.contact-1@alerts.example.org>"
    assert outcome.detail == "250 2.0.0 OK queued"
    [captured] = smtpd_server.messages()
    parsed = parse(captured.raw)
    assert parsed["Message-ID"] == "<alert-7.contact-1@alerts.example.org>"
    assert parsed["List-Unsubscribe"] == "<https://alerts.example.org/unsubscribe/tok123>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["In-Reply-To"] == original
    assert parsed["References"] == original
    assert parsed["Reply-To"] == "Desk <desk@example.org>"
    assert parsed["From"] == "Urgent Alerts <alerts@example.org>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Date"].datetime.tzinfo is not None
    # RFC 5322 §3.3: a numeric zone; the obsolete "GMT" (§4.3) is what generators must not write
    date = captured.raw.split(b"\r\nDate: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000",
        date,
    ), date


async def test_no_unsubscribe_or_thread_headers_when_not_given(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    await channel.send(make_message(1))
    parsed = parse(smtpd_server.messages()[0].raw)
    for header in ("List-Unsubscribe", "List-Unsubscribe-Post", "In-Reply-To", "References", "Reply-To"):
        assert header not in parsed


async def test_multipart_text_and_html_with_non_ascii_decode(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    outcome = await channel.send(make_message(1, name="Zoë Ørsted-Łukasz"))
    assert outcome.kind is OutcomeKind.SENT
    raw = smtpd_server.messages()[0].raw
    assert raw.isascii()  # 7-bit: no server needs 8BITMIME
    parsed = parse(raw)
    assert parsed["Subject"] == CONTENT.subject
    assert parsed["To"] == "Zoë Ørsted-Łukasz <contact1@example.org>"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == CONTENT.text
    assert html.get_content().rstrip("\n") == CONTENT.html


async def test_text_only_content_is_single_part(channel: EmailChannel, smtpd_server: SMTPTestServer) -> None:
    content = dataclasses.replace(CONTENT, html=None, subject="Plain subject")
    await channel.send(make_message(1, content=content))
    parsed = parse(smtpd_server.messages()[0].raw)
    assert parsed.get_content_type() == "text/plain"
    assert parsed["Subject"] == "Plain subject"
    assert parsed.get_content() == CONTENT.text


async def test_pool_reuses_at_most_pool_size_connections(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    outcomes = await asyncio.gather(*(channel.send(make_message(n)) for n in range(40)))
    assert all(o.kind is OutcomeKind.SENT for o in outcomes)
    assert len(smtpd_server.messages()) == 40
    assert 1 <= smtpd_server.connections <= 4  # pool_size
    for n in range(40, 50):  # one at a time: the same warm connection
        await channel.send(make_message(n))
    assert smtpd_server.connections <= 4


@pytest.mark.smtpd_options(drop_after=2)
async def test_reconnects_after_the_server_dropped_the_connection(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    channel = EmailChannel(dataclasses.replace(smtpd_settings, pool_size=1))
    await channel.open()
    outcomes = []
    for n in range(5):
        outcomes.append(await channel.send(make_message(n)))
    await channel.close()
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 5
    assert len(smtpd_server.messages()) == 5
    assert smtpd_server.connections == 3


@pytest.mark.smtpd_options(reject={"gone@example.org": "550 5.1.1 User unknown"})
async def test_550_recipient_is_permanent_and_suppressed_and_session_kept(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    outcome = await channel.send(make_message(1, address="gone@example.org"))
    assert outcome == Outcome(
        kind=OutcomeKind.PERMANENT, suppress=SuppressionReason.BOUNCED, detail="550 5.1.1 User unknown"
    )
    assert smtpd_server.messages() == []
    assert (await channel.send(make_message(2))).kind is OutcomeKind.SENT
    assert smtpd_server.connections == 1  # RSET kept the session


@pytest.mark.smtpd_options(reject={"relay@example.org": "554 5.7.1 Relay access denied"})
async def test_other_5xx_recipient_is_permanent_without_suppression(channel: EmailChannel) -> None:
    outcome = await channel.send(make_message(1, address="relay@example.org"))
    assert outcome == Outcome(kind=OutcomeKind.PERMANENT, detail="554 5.7.1 Relay access denied")


@pytest.mark.smtpd_options(fail_first=2, fail_at="rcpt", fail_reply="451 4.7.1 Greylisted")
async def test_4xx_recipient_is_transient_then_sent(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    kinds = [(await channel.send(make_message(1))).kind for _ in range(3)]
    assert kinds == [OutcomeKind.TRANSIENT, OutcomeKind.TRANSIENT, OutcomeKind.SENT]
    assert len(smtpd_server.messages()) == 1


@pytest.mark.smtpd_options(fail_first=1, fail_at="data", fail_reply="452 4.3.1 Insufficient storage")
async def test_4xx_after_data_is_transient(channel: EmailChannel) -> None:
    outcome = await channel.send(make_message(1))
    assert outcome == Outcome(kind=OutcomeKind.TRANSIENT, detail="452 4.3.1 Insufficient storage")


@pytest.mark.smtpd_options(data_reply="554 5.7.1 Message refused")
async def test_5xx_after_data_is_permanent(channel: EmailChannel) -> None:
    outcome = await channel.send(make_message(1))
    assert outcome == Outcome(kind=OutcomeKind.PERMANENT, detail="554 5.7.1 Message refused")


@pytest.mark.smtpd_options(mail_reply="553 5.7.1 Sender not allowed")
async def test_5xx_sender_refused_is_permanent_without_suppression(channel: EmailChannel) -> None:
    outcome = await channel.send(make_message(1))
    assert outcome == Outcome(kind=OutcomeKind.PERMANENT, detail="553 5.7.1 Sender not allowed")


@pytest.mark.smtpd_options(mail_reply="421 4.3.2 Service shutting down")
async def test_421_is_transient_and_drops_the_connection(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    outcome = await channel.send(make_message(1))
    assert outcome == Outcome(kind=OutcomeKind.TRANSIENT, detail="421 4.3.2 Service shutting down")
    await channel.send(make_message(2))
    assert smtpd_server.connections == 2


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = EmailChannel(EmailSettings(host="127.0.0.1", port=port, timeout=2))
    await channel.open()
    outcome = await channel.send(make_message(1))
    await channel.close()
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.detail.startswith("SMTPConnectError: ")
    assert outcome.detail.endswith("(before the message data)")


@pytest.mark.parametrize("point", ["mail", "rcpt", "data_cmd"])
async def test_disconnect_before_data_is_transient(
    point: str, smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    smtpd_server.handler.script.drop_at = point
    channel = EmailChannel(smtpd_settings)
    await channel.open()
    outcome = await channel.send(make_message(1))
    await channel.close()
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.detail.startswith("SMTPServerDisconnected: ")
    assert outcome.detail.endswith("(before the message data)")
    assert smtpd_server.messages() == []
    assert smtpd_server.connections == 1  # a fresh connection is not retried


async def test_idle_connection_closed_by_the_server_is_replaced_once(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    channel = EmailChannel(dataclasses.replace(smtpd_settings, pool_size=1))
    await channel.open()
    assert (await channel.send(make_message(1))).kind is OutcomeKind.SENT
    for session in list(smtpd_server.capture.sessions):  # the server times the idle session out…
        assert session.transport is not None
        session.transport.close()
    outcome = await channel.send(make_message(2))  # …before the client has noticed
    await channel.close()
    assert outcome.kind is OutcomeKind.SENT
    assert [m.rcpt_tos for m in smtpd_server.messages()] == [
        ("contact1@example.org",),
        ("contact2@example.org",),
    ]
    assert smtpd_server.connections == 2


@pytest.mark.smtpd_options(drop_at="data_end")
async def test_disconnect_after_data_is_unknown(channel: EmailChannel, smtpd_server: SMTPTestServer) -> None:
    outcome = await channel.send(make_message(1))
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.detail.startswith("SMTPServerDisconnected: ")
    assert outcome.detail.endswith("(after the message data was sent)")


@pytest.mark.smtpd_options(stall=3.0, timeout=0.3)
async def test_timeout_after_data_is_unknown_and_connection_dropped(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    started = time.monotonic()
    outcome = await channel.send(make_message(1))
    assert time.monotonic() - started < 2.0
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.detail.startswith("SMTPReadTimeoutError: ")
    assert outcome.detail.endswith("(after the message data was sent)")
    smtpd_server.handler.script.stall = 0
    assert (await channel.send(make_message(2))).kind is OutcomeKind.SENT
    assert smtpd_server.connections == 2


def test_unrecognised_errors_propagate() -> None:
    channel = EmailChannel(EmailSettings())
    cause = SMTPRecipientsRefused([])
    with pytest.raises(SMTPRecipientsRefused):
        channel.classify(DeliveryFailed(Phase.BEFORE, cause))


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        (
            "address",
            "victim@example.org\r\nBcc: spy@evil.example",
            "recipient address: not a single valid email address",
        ),
        ("address", "a@example.org, spy@evil.example", "recipient address: not a single valid email address"),
        ("address", "Spy <spy@evil.example>", "recipient address: not a single valid email address"),
        ("address", "spy@evil.example>\r\n", "recipient address: not a single valid email address"),
        ("address", "zoë@example.org", "recipient address: not a single valid email address"),
        (
            "unsubscribe_url",
            "https://x.example/u\r\nBcc: spy@evil.example",
            "unsubscribe_url: not a plain http(s)",
        ),
        (
            "unsubscribe_url",
            "https://x.example/u> <https://evil.example",
            "unsubscribe_url: not a plain http(s)",
        ),
    ],
)
async def test_unsafe_address_or_url_is_permanent_and_nothing_sent(
    field: str, value: str, detail: str, channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    message = make_message(1, **{field: value})
    outcome = await channel.send(message)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.suppress is None
    assert outcome.detail.startswith(detail)
    assert smtpd_server.messages() == []
    assert smtpd_server.connections == 0


@pytest.mark.parametrize(
    "address", ["officer@localhost", "o.brien+alerts@Mail.Example.ORG", "x@bücher.example"]
)
async def test_valid_addresses_are_sent(
    address: str, channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    outcome = await channel.send(make_message(1, address=address))
    assert outcome.kind is OutcomeKind.SENT
    expected = "x@xn--bcher-kva.example" if "ü" in address else address
    assert smtpd_server.messages()[0].rcpt_tos == (expected,)


async def test_crlf_in_name_subject_and_thread_ids_never_adds_a_header(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    content = dataclasses.replace(CONTENT, subject="Urgent\r\nBcc: spy@evil.example\nX-Evil: 1")
    message = make_message(
        1,
        name="Eve\r\nBcc: spy@evil.example",
        content=content,
        thread_ids=("<a@b>\r\nBcc: spy@evil.example", "<alert-1.contact-1@alerts.example.org>"),
    )
    assert (await channel.send(message)).kind is OutcomeKind.SENT
    [captured] = smtpd_server.messages()
    assert captured.rcpt_tos == ("contact1@example.org",)
    parsed = parse(captured.raw)
    assert "Bcc" not in parsed and "X-Evil" not in parsed
    assert parsed["Subject"] == "Urgent Bcc: spy@evil.example X-Evil: 1"
    assert parsed["To"].addresses[0].addr_spec == "contact1@example.org"
    assert parsed["References"] == "<alert-1.contact-1@alerts.example.org>"
    assert sorted(parsed.keys()) == sorted(
        ["From", "To", "Message-ID", "In-Reply-To", "References", "Subject", "Date", "MIME-Version",
         "Content-Type"]
    )  # fmt: skip


def test_bad_from_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        EmailChannel(EmailSettings(from_="Alerts <a@example.org>\r\nBcc: spy@evil.example"))
    assert info.value.message == (
        "[email] from: 'Alerts <a@example.org>\\r\\nBcc: spy@evil.example' is not a single email address."
    )


@pytest.mark.smtpd_options(security="starttls", auth=("officer", "s3cret"))
async def test_starttls_and_login(channel: EmailChannel, smtpd_server: SMTPTestServer) -> None:
    assert (await channel.send(make_message(1))).kind is OutcomeKind.SENT
    assert len(smtpd_server.messages()) == 1


@pytest.mark.smtpd_options(security="tls", auth=("officer", "s3cret"))
async def test_implicit_tls_and_login(channel: EmailChannel, smtpd_server: SMTPTestServer) -> None:
    assert (await channel.send(make_message(1))).kind is OutcomeKind.SENT
    assert len(smtpd_server.messages()) == 1


@pytest.mark.smtpd_options(security="starttls", auth=("officer", "s3cret"))
async def test_wrong_password_is_transient_and_logged(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    channel = EmailChannel(
        dataclasses.replace(smtpd_settings, password="wrong"), tls_context=smtpd_server.client_tls
    )
    await channel.open()
    with caplog.at_level(logging.ERROR, logger="channels.email"):
        outcome = await channel.send(make_message(1))
    await channel.close()
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert outcome.detail.startswith("535 ")
    assert [r.getMessage() for r in caplog.records] == ["[email] SMTP authentication failed: 535"]
    assert "wrong" not in caplog.text and smtpd_server.messages() == []


async def test_rate_limit_spaces_messages(smtpd_settings: EmailSettings) -> None:
    channel = EmailChannel(dataclasses.replace(smtpd_settings, rate_per_second=10))
    await channel.open()
    started = time.monotonic()
    await asyncio.gather(*(channel.send(make_message(n)) for n in range(14)))
    elapsed = time.monotonic() - started
    await channel.close()
    assert elapsed >= 0.3  # a burst of 10, then 4 more at 10/s


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(PEM private key, base64 DER public key) for DKIM tests."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("DKIM tests need the openssl command to make an RSA key")
    folder: Path = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(
        [openssl, "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True
    )
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key.read_bytes(), base64.b64encode(public)


async def test_dkim_signature_verifies(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer, dkim_key: tuple[bytes, bytes]
) -> None:
    private, public = dkim_key
    options = DkimOptions(selector="alerts", domain="example.org", private_key=private)
    channel = EmailChannel(smtpd_settings, dkim=options)
    await channel.open()
    message = make_message(1, unsubscribe_url="https://alerts.example.org/u/tok", name="Zoë")
    assert (await channel.send(message)).kind is OutcomeKind.SENT
    await channel.close()
    raw = smtpd_server.messages()[0].raw
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return b"v=DKIM1; k=rsa; p=" + public

    assert dkim.verify(raw, dnsfunc=dnsfunc)
    assert asked == [b"alerts._domainkey.example.org."]
    signature = parse(raw)["DKIM-Signature"].replace("\r\n", "").replace(" ", "")
    signed = (
        next(part for part in signature.split(";") if part.startswith("h=")).removeprefix("h=").split(":")
    )
    for header in (
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert header in signed
    tampered = raw.replace(b"Subject: ", b"Subject: Fwd: ", 1)
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_bad_dkim_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        EmailChannel(
            EmailSettings(), dkim=DkimOptions(selector="s", domain="example.org", private_key=b"nope")
        )
    assert info.value.message == "[email] dkim_key_file: not a PEM RSA private key."


def test_building_a_message_costs_far_less_than_the_email_package() -> None:
    channel = EmailChannel(EmailSettings())
    messages = [make_message(n, unsubscribe_url=f"https://a.example/u/{n}", name="Zoë") for n in range(2000)]
    channel.build(messages[0])  # fills the body cache
    started = time.perf_counter()
    for message in messages:
        channel.build(message)
    ours = (time.perf_counter() - started) / len(messages)

    started = time.perf_counter()
    for message in messages[:200]:
        full = EmailMessage()
        full["From"] = "Urgent Alerts <alerts@localhost>"
        full["To"] = f"{message.recipient.name} <{message.recipient.address}>"
        full["Subject"] = CONTENT.subject
        full["Message-ID"] = message.message_id
        full["List-Unsubscribe"] = f"<{message.recipient.unsubscribe_url}>"
        full.set_content(CONTENT.text)
        full.add_alternative(CONTENT.html, subtype="html")
        full.as_bytes(policy=email.policy.SMTP)
    scratch = (time.perf_counter() - started) / 200
    assert ours * 10 < scratch, (ours, scratch)


async def test_benchmark_sink_counts_what_the_channel_sends() -> None:
    from bench.smtp_sink import start_sink

    server, stats = await start_sink()
    port = server.sockets[0].getsockname()[1]
    channel = EmailChannel(EmailSettings(host="127.0.0.1", port=port, pool_size=3))
    await channel.open()
    content = dataclasses.replace(CONTENT, text="x\r\n.\r\n.\nend\n")  # lone dots must not end DATA early
    outcomes = await asyncio.gather(*(channel.send(make_message(n, content=content)) for n in range(30)))
    await channel.close()
    server.close()
    await server.wait_closed()
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 30
    assert (stats.messages, stats.connections) == (30, 3)


def test_envelope_paths_are_plain_or_quoted_and_never_carry_parameters() -> None:
    from channels.smtp_pool import _path

    assert _path("o.brien+alerts@Mail.Example.ORG") == b"<o.brien+alerts@Mail.Example.ORG>"
    assert _path('"john doe"@example.org') == b'<"john doe"@example.org>'  # aiosmtplib's quoting
    # aiosmtplib keeps only the address of what would smuggle a parameter or a command
    assert (
        _path("a@example.org> SIZE=1")
        == _path("a@example.org>\r\nRCPT TO:<b@example.org")
        == b"<a@example.org>"
    )
    with pytest.raises(ValueError, match="not permitted"):
        _path("a b@example.org")


async def test_envelope_sender_and_recipient_reach_the_server(
    channel: EmailChannel, smtpd_server: SMTPTestServer
) -> None:
    await channel.send(make_message(1, address="o.brien+alerts@Mail.Example.ORG"))
    await channel.send(make_message(2, address="second@example.org"))  # same session, next MAIL
    first, second = smtpd_server.messages()
    assert first.mail_from == second.mail_from == channel._builder.sender
    assert (first.rcpt_tos, second.rcpt_tos) == (
        ("o.brien+alerts@Mail.Example.ORG",),
        ("second@example.org",),
    )
    assert smtpd_server.connections == 1
