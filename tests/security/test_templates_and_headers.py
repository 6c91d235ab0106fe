"""Hostile text: Jinja2 sandbox escapes, and CR/LF header injection sent through the real
EmailChannel to a real SMTP server, whose received bytes are parsed back."""

from __future__ import annotations

import email
import email.policy
import time

import pytest

from alerts.cli.capture import CaptureServer
from alerts.compose.render import Renderer
from alerts.core.config import EmailSettings, PressSettings
from alerts.core.errors import AlertsError
from alerts.core.types import Attachment, OutcomeKind, Recipient, RenderedContent, RenderedMessage
from channels.email import EmailChannel
from channels.press import PressChannel

RENDERER = Renderer()

SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ request|attr('application')|attr('__globals__') }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ '%s'|format(''.__class__) }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0.__class__}'.format_map({'0': ''}) }}",
    "{{ config.items() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ 'x' * 100000000 }}",
    "{{ 'x' * 10000 * 10000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ ('x' ~ 'y') * 99999999 }}",
    "{% set a = 'x' * 1000 %}{% for i in range(10000) %}{{ a }}{% endfor %}{% for i in range(10000) %}{{ a }}{% endfor %}",
]


@pytest.mark.parametrize("payload", SSTI)
def test_render_string_refuses_escapes_and_bombs_quickly(payload: str) -> None:
    started = time.monotonic()
    try:
        out = RENDERER.render_string(payload, {"name": "x"})
    except AlertsError:
        pass  # refused with a message (the sandbox or the output meter)
    else:
        # allowed only if harmless: no class/module internals, no huge output
        assert "class" not in out and "module" not in out and "uid=" not in out and len(out) < 1_000_000, out[
            :200
        ]
    assert time.monotonic() - started < 5, "a bomb took too long to refuse"


@pytest.mark.parametrize("payload", [p for p in SSTI if "{{" in p][:8] + ["{% include '/etc/passwd' %}"])
@pytest.mark.parametrize("channel", ["email", "telegram", "press"])
def test_case_data_is_text_never_template(payload: str, channel: str) -> None:
    """Template syntax in case data (name, city, summary, facts) comes out literally, escaped
    in HTML, in every form; nothing is evaluated."""
    data = RENDERER.example("urgent-appeal")
    data["defender"] = payload
    data["city"] = payload
    data["summary"] = {"en": payload}
    data["facts"] = {"en": [payload]}
    content = RENDERER.render(
        "urgent-appeal",
        data,
        audience="media" if channel == "press" else "authority",
        channel=channel,
        language="en",
    )
    for rendered in (content.text, content.subject, content.html or ""):
        assert "uid=" not in rendered and "<class" not in rendered and "root:" not in rendered
        assert "subprocess" not in rendered and "Popen" not in rendered
    # the literal text survives (HTML-escaped in HTML forms)
    assert ("{{" in content.text or "{%" in content.text) or channel == "telegram"


def _message(
    *,
    name: str,
    address: str,
    subject: str,
    unsubscribe: str | None,
    attachments: tuple[Attachment, ...] = (),
    channel: str = "email",
) -> RenderedMessage:
    content = RenderedContent(
        channel=channel,
        audience="authority",
        language="en",
        subject=subject,
        text="Body line\r\nBcc: evil@attacker.example\r\n",
        html="<p>hi</p>",
    )
    return RenderedMessage(
        delivery_id=1,
        alert_id=1,
        content=content,
        recipient=Recipient(
            contact_id=1,
            name=name,
            address=address,
            language="en",
            kind="authority",
            unsubscribe_url=unsubscribe,
        ),
        message_id="<alert-1.c1@example.org>",
        attachments=attachments,
    )


INJECTIONS = [
    "\r\nBcc: evil@attacker.example",
    "\nBcc: evil@attacker.example",
    "\rBcc: evil@attacker.example",
    "\r\n\r\n<html>body smuggled</html>",
    "\u2028Bcc: evil@attacker.example",
    "\x00\r\nX-Injected: 1",
    "=?utf-8?q?=0D=0ABcc=3A_evil=40attacker.example?=",
]


def _headers(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _assert_clean(raw: bytes, recipient: str) -> None:
    msg = _headers(raw)
    assert msg.get_all("To") is not None and len(msg.get_all("To")) == 1
    assert recipient in msg["To"]
    assert msg.get_all("Bcc") is None and msg.get_all("Cc") is None and msg.get_all("X-Injected") is None
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert not line.lower().startswith((b"bcc:", b"cc:", b"x-injected:", b"<html>")), line
    assert b"body smuggled" not in head or b"To: " in head  # folded into a quoted name, not a body
    assert len(msg.get_all("Subject") or []) == 1


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_names_subjects_and_urls_cannot_add_headers(injection: str) -> None:
    async with CaptureServer() as smtp:
        channel = EmailChannel(EmailSettings(port=smtp.port, pool_size=1, timeout=5))
        await channel.open()
        try:
            outcomes = [
                await channel.send(
                    _message(
                        name=f"Minister{injection}",
                        address="minister@example.org",
                        subject="Urgent",
                        unsubscribe=None,
                    )
                ),
                await channel.send(
                    _message(
                        name="Minister",
                        address="minister@example.org",
                        subject=f"Urgent: release{injection}",
                        unsubscribe=None,
                    )
                ),
                await channel.send(
                    _message(
                        name="Minister",
                        address="minister@example.org",
                        subject="Urgent",
                        unsubscribe=f"http://127.0.0.1/unsubscribe/tok{injection}",
                    )
                ),
            ]
        finally:
            await channel.close()
        received = smtp.messages()
    # a name or subject is folded to one line; a URL that is not plain printable ASCII is refused
    assert outcomes[0].kind is OutcomeKind.SENT and outcomes[1].kind is OutcomeKind.SENT
    assert outcomes[2].kind in (OutcomeKind.SENT, OutcomeKind.PERMANENT)
    for m in received:
        assert m.rcpt_tos == ("minister@example.org",)
        _assert_clean(m.raw, "minister@example.org")


@pytest.mark.parametrize(
    "address",
    [
        "victim@example.org\r\nBcc: evil@attacker.example",
        "victim@example.org, evil@attacker.example",
        "victim@example.org>\r\nRCPT TO:<evil@attacker.example",
        "Victim <victim@example.org>, <evil@attacker.example>",
        "evil@attacker.example\nvictim@example.org",
        '"a\r\nb"@example.org',
    ],
)
async def test_hostile_addresses_are_refused_before_smtp(address: str) -> None:
    async with CaptureServer() as smtp:
        channel = EmailChannel(EmailSettings(port=smtp.port, pool_size=1, timeout=5))
        await channel.open()
        try:
            outcome = await channel.send(
                _message(name="V", address=address, subject="Urgent", unsubscribe=None)
            )
        finally:
            await channel.close()
        received = smtp.messages()
    assert outcome.kind is OutcomeKind.PERMANENT
    assert received == [], "a hostile address reached the SMTP server"


@pytest.mark.parametrize(
    "filename",
    [
        "../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "/etc/shadow",
        "report\r\nContent-Type: text/html.pdf",
        "....//....//x.pdf",
        ".htaccess",
        "a/../../b.pdf\x00.txt",
    ],
)
async def test_press_attachment_names_lose_their_paths(filename: str) -> None:
    async with CaptureServer() as smtp:
        channel = PressChannel(EmailSettings(port=smtp.port, pool_size=1, timeout=5), PressSettings())
        await channel.open()
        try:
            outcome = await channel.send(
                _message(
                    name="Desk",
                    address="desk@example.org",
                    subject="Press release",
                    unsubscribe=None,
                    channel="press",
                    attachments=(
                        Attachment(filename=filename, content_type="application/pdf", data=b"%PDF-1.4 test"),
                    ),
                )
            )
        finally:
            await channel.close()
        received = smtp.messages()
    if outcome.kind is OutcomeKind.PERMANENT:
        assert received == []
        return
    assert outcome.kind is OutcomeKind.SENT
    msg = email.message_from_bytes(received[0].raw, policy=email.policy.default)
    names = [part.get_filename() for part in msg.walk() if part.get_filename()]
    assert len(names) == 1
    assert "/" not in names[0] and "\\" not in names[0] and not names[0].startswith(".")
    assert "\r" not in names[0] and "\n" not in names[0] and "\x00" not in names[0]
    assert _headers(received[0].raw).get_all("Content-Type") is not None
