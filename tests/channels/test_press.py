"""PressChannel and the capture server against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from email.message import EmailMessage

import aiosmtplib

from alerts.cli.capture import CaptureServer
from alerts.core.config import EmailSettings, PressSettings
from alerts.core.types import Attachment, OutcomeKind, Recipient, RenderedContent, RenderedMessage
from channels.email import EmailChannel
from channels.press import PressChannel
from tests.smtpd import SMTPTestServer

EMBARGO = "EMBARGOED UNTIL 12 May 2026, 09:00 UTC"
PRESS = PressSettings(from_="Press Office <press@example.org>")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 8
CONTENT = RenderedContent(
    channel="press",
    audience="press",
    language="en",
    subject="Press release: rights defender detained",
    text=f"{EMBARGO}\n\nFOR IMMEDIATE RELEASE AFTER EMBARGO\n\nThe defender was detained on 3 May.\n",
)


def press_message(
    n: int = 1,
    *,
    content: RenderedContent = CONTENT,
    embargo: str | None = EMBARGO,
    attachments: tuple[Attachment, ...] = (),
) -> RenderedMessage:
    return RenderedMessage(
        delivery_id=n,
        alert_id=9,
        content=content,
        recipient=Recipient(
            contact_id=n, name="News Desk", address=f"desk{n}@news.example", language="en", kind="press"
        ),
        message_id=f"<alert-9.contact-{n}@alerts.example.org>",
        embargo=embargo,
        attachments=attachments,
    )


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_press_release_with_attachments_and_embargo(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    channel = PressChannel(smtpd_settings, PRESS)
    await channel.open()
    attachments = (
        Attachment(
            filename="../../etc/passwd\r\nX-Evil: 1 release.pdf", content_type="application/pdf", data=PDF
        ),
        Attachment(filename="C:\\photos\\défenseure.png", content_type="image/png", data=PNG),
        Attachment(filename="notes.bin", content_type="not a type\r\nX-Evil: 2", data=b"\x00\x01"),
    )
    outcome = await channel.send(press_message(1, attachments=attachments))
    await channel.close()
    assert outcome.kind is OutcomeKind.SENT
    [captured] = smtpd_server.messages()
    assert captured.mail_from == "press@example.org"
    assert captured.rcpt_tos == ("desk1@news.example",)
    parsed = parse(captured.raw)
    assert "X-Evil" not in parsed
    assert parsed["From"] == "Press Office <press@example.org>"
    assert parsed.get_content_type() == "multipart/mixed"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines()[0] == EMBARGO
    found = [
        (part.get_filename(), part.get_content_type(), part.get_content())
        for part in parsed.iter_attachments()
    ]
    assert found == [
        ("passwd X-Evil: 1 release.pdf", "application/pdf", PDF),
        ("défenseure.png", "image/png", PNG),
        ("notes.bin", "application/octet-stream", b"\x00\x01"),
    ]
    for part in parsed.iter_attachments():
        assert "X-Evil" not in part


async def test_embargo_missing_from_the_text_is_put_first(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    channel = PressChannel(smtpd_settings, PRESS)
    content = dataclasses.replace(CONTENT, text="The defender was detained on 3 May.\n")
    assert (await channel.send(press_message(1, content=content))).kind is OutcomeKind.SENT
    await channel.close()
    text = parse(smtpd_server.messages()[0].raw).get_content()
    assert text == f"{EMBARGO}\n\nThe defender was detained on 3 May.\n"


async def test_press_shares_the_email_pool(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    email_channel = EmailChannel(dataclasses.replace(smtpd_settings, pool_size=1))
    press = PressChannel(smtpd_settings, PRESS, pool=email_channel.pool)
    await email_channel.open()
    await press.open()
    assert (await press.send(press_message(1))).kind is OutcomeKind.SENT
    await press.close()  # does not close a pool it does not own
    content = RenderedContent(channel="email", audience="media", language="en", subject="Alert", text="Hi\n")
    message = dataclasses.replace(press_message(2, content=content, embargo=None))
    assert (await email_channel.send(message)).kind is OutcomeKind.SENT
    await email_channel.close()
    assert smtpd_server.connections == 1
    assert [m.mail_from for m in smtpd_server.messages()] == ["press@example.org", "alerts@example.org"]


async def test_capture_server_keeps_the_last_messages_decoded() -> None:
    async with CaptureServer(limit=3) as server:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port) as client:
            for n in range(5):
                message = EmailMessage()
                message["From"] = "alerts@example.org"
                message["To"] = f"Zoë <z{n}@example.org>"
                message["Subject"] = f"Alerte n°{n}"
                message["Date"] = "Tue, 12 May 2026 09:00:00 +0000"
                message.set_content("body")
                await client.send_message(message)
        kept = server.messages()
    assert [(m.to, m.subject, m.rcpt_tos) for m in kept] == [
        (f"Zoë <z{n}@example.org>", f"Alerte n°{n}", (f"z{n}@example.org",)) for n in (2, 3, 4)
    ]
    assert kept[0].from_ == "alerts@example.org" and kept[0].date == "Tue, 12 May 2026 09:00:00 +0000"
    assert kept[0].mail_from == "alerts@example.org"
    assert b"body" in kept[0].raw
    assert server.handler.count == 5


async def test_capture_server_stop_is_idempotent_and_closes_sessions() -> None:
    server = CaptureServer()
    await server.start()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port)
    await client.connect()
    await server.stop()
    await server.stop()
    await asyncio.sleep(0.05)
    assert not client.is_connected
