"""PIPELINING (RFC 2920) on the wire: a raw SMTP server on loopback that records each packet.

aiosmtpd (tests/smtpd.py) answers each pipelined command in its own write; this server answers
the way Postfix does, the three replies of MAIL, RCPT and DATA in one packet, and can refuse,
answer 354 after a refusal, hang up or send garbage, so the client's reader and its phases are
seen against each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from aiosmtplib import SMTPResponseException

from alerts.core.config import EmailSettings
from alerts.core.types import OutcomeKind
from channels.email import EmailChannel
from channels.smtp_pool import DeliveryFailed, Phase, SMTPPool
from channels.smtp_session import SMTPSession
from tests.channels.test_email import make_message


@dataclass
class Wire:
    """What the raw server does and what it saw."""

    pipelining: bool = True
    rcpt_reply: bytes = b"250 2.1.5 OK"
    data_reply: bytes = b"354 go ahead"
    mail_reply: bytes = b"250 2.1.0 OK"
    hang_up_after_mail: bool = False
    silent: bool = False  # MAIL, RCPT and DATA are read and never answered (a stuck server)
    idle_notice: bytes = b""  # sent unasked after the first message is accepted (a 421 idle timeout)
    packets: list[bytes] = field(default_factory=list)  # what arrived, one entry per read
    delivered: list[bytes] = field(default_factory=list)  # message data ended by "."
    commands: list[bytes] = field(default_factory=list)


class _Server(asyncio.Protocol):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.buffer = b""
        self.in_data = False
        self.pending: list[bytes] = []  # replies held until the group's last command

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not a subclass of asyncio.Transport, only alike)
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.write(b"220 raw.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.wire.packets.append(data)
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end == -1 and self.buffer != b".\r\n" and not self.buffer.startswith(b".\r\n"):
                    return
                body, self.buffer = (
                    (b"", self.buffer[3:]) if self.buffer.startswith(b".\r\n") else
                    (self.buffer[: end + 2], self.buffer[end + 5 :])
                )  # fmt: skip
                self.in_data = False
                if body:
                    self.wire.delivered.append(body)
                    self.transport.write(b"250 2.0.0 queued\r\n")
                    if self.wire.idle_notice and len(self.wire.delivered) == 1:
                        notice = self.wire.idle_notice + b"\r\n"
                        asyncio.get_running_loop().call_later(0.05, self.transport.write, notice)
                else:
                    self.transport.write(b"554 5.5.1 no valid recipients\r\n")
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            self.command(line)

    def command(self, line: bytes) -> None:
        verb = line[:4].upper()
        self.wire.commands.append(verb)
        w = self.wire
        if verb == b"EHLO":
            offered = (
                b"250-raw.test\r\n" + (b"250-PIPELINING\r\n" if w.pipelining else b"") + b"250 8BITMIME\r\n"
            )
            self.transport.write(offered)
        elif verb == b"MAIL":
            self.reply(w.mail_reply)
            if w.hang_up_after_mail:
                self.flush()
                self.transport.close()
        elif verb == b"RCPT":
            self.reply(w.rcpt_reply)
        elif verb == b"DATA":
            self.reply(w.data_reply)
            self.in_data = w.data_reply.startswith(b"354")
            self.flush()
        elif verb in (b"RSET", b"NOOP"):
            self.transport.write(b"250 2.0.0 OK\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"502 5.5.2 what\r\n")

    def reply(self, text: bytes) -> None:
        if self.wire.silent:
            return
        # pipelined: the group's replies leave together, as Postfix sends them
        self.pending.append(text + b"\r\n")
        if not self.wire.pipelining:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.transport.write(b"".join(self.pending))
            self.pending = []


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[Wire, EmailSettings]]:
    wire = Wire()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(wire), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = EmailSettings(
        host="127.0.0.1", port=port, pool_size=1, timeout=2.0, from_="Urgent Alerts <alerts@example.org>"
    )
    yield wire, settings
    server.close()
    await server.wait_closed()


async def _send_two(settings: EmailSettings) -> list[OutcomeKind]:
    channel = EmailChannel(settings)
    await channel.open()
    try:
        return [(await channel.send(make_message(n))).kind for n in (1, 2)]
    finally:
        await channel.close()


async def test_mail_rcpt_and_data_leave_in_one_packet_and_their_replies_arrive_in_one(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    assert await _send_two(settings) == [OutcomeKind.SENT, OutcomeKind.SENT]
    envelopes = [p for p in wire.packets if p.startswith(b"MAIL FROM:")]
    assert envelopes == [
        b"MAIL FROM:<alerts@example.org>\r\nRCPT TO:<contact1@example.org>\r\nDATA\r\n",
        b"MAIL FROM:<alerts@example.org>\r\nRCPT TO:<contact2@example.org>\r\nDATA\r\n",
    ]
    assert len(wire.delivered) == 2 and b"contact2@example.org" in wire.delivered[1]


async def test_without_pipelining_offered_one_command_at_a_time(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.pipelining = False
    assert await _send_two(settings) == [OutcomeKind.SENT, OutcomeKind.SENT]
    assert not any(b"RCPT" in p for p in wire.packets if p.startswith(b"MAIL"))
    assert wire.commands.count(b"RCPT") == 2 and len(wire.delivered) == 2


async def test_a_refused_recipient_in_a_pipelined_group_is_permanent_and_the_session_kept(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.rcpt_reply, wire.data_reply = b"550 5.1.1 no such user", b"554 5.5.1 no valid recipients"
    channel = EmailChannel(settings)
    await channel.open()
    outcome = await channel.send(make_message(1))
    assert (outcome.kind, outcome.detail) == (OutcomeKind.PERMANENT, "550 5.1.1 no such user")
    wire.rcpt_reply, wire.data_reply = b"250 OK", b"354 go ahead"
    assert (await channel.send(make_message(2))).kind is OutcomeKind.SENT
    await channel.close()
    assert wire.commands[:6] == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"MAIL"]
    assert wire.commands.count(b"EHLO") == 1  # the same session
    assert len(wire.delivered) == 1


async def test_354_after_a_refused_recipient_gets_an_empty_message_and_nothing_is_delivered(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.rcpt_reply = b"550 5.1.1 no such user"  # and DATA still answered 354 (RFC 2920 3.1)
    channel = EmailChannel(settings)
    await channel.open()
    outcome = await channel.send(make_message(1))
    await channel.close()
    assert (outcome.kind, outcome.detail) == (OutcomeKind.PERMANENT, "550 5.1.1 no such user")
    assert wire.delivered == []
    assert b"RSET" in wire.commands


async def test_a_421_then_hang_up_is_transient_and_names_the_421(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.mail_reply, wire.hang_up_after_mail = b"421 4.3.2 shutting down", True
    channel = EmailChannel(settings)
    await channel.open()
    outcome = await channel.send(make_message(1))
    await channel.close()
    assert (outcome.kind, outcome.detail) == (OutcomeKind.TRANSIENT, "421 4.3.2 shutting down")
    assert wire.delivered == []


async def test_a_malformed_reply_fails_before_the_data_and_drops_the_connection(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.mail_reply = b"hello there"
    pool = SMTPPool(settings)
    await pool.open()
    with pytest.raises(DeliveryFailed) as failed:
        await pool.deliver("alerts@example.org", "contact1@example.org", b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert failed.value.phase is Phase.BEFORE
    assert isinstance(failed.value.cause, SMTPResponseException)
    assert "Malformed SMTP response line: hello there" in str(failed.value.cause)
    wire.mail_reply = b"250 OK"
    await pool.deliver("alerts@example.org", "contact1@example.org", b"Subject: x\r\n\r\nx\r\n.\r\n")
    await pool.close()
    assert wire.commands.count(b"EHLO") == 2  # out of step: not reset, a new connection
    assert wire.delivered == [b"Subject: x\r\n\r\nx\r\n"]


async def test_a_reply_nobody_asked_for_retires_the_session_and_the_next_send_opens_another(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.idle_notice = b"421 4.4.2 raw.test Error: timeout exceeded"  # and the server keeps it open
    channel = EmailChannel(settings)
    await channel.open()
    assert (await channel.send(make_message(1))).kind is OutcomeKind.SENT
    await asyncio.sleep(0.3)  # the notice arrives while the connection is idle in the pool
    outcome = await channel.send(make_message(2))
    await channel.close()
    assert outcome.kind is OutcomeKind.SENT  # not the 421 taken for the reply to MAIL
    assert wire.commands.count(b"EHLO") == 2
    assert len(wire.delivered) == 2


async def test_a_server_that_never_answers_the_envelope_times_out_before_the_data(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.silent = True
    channel = EmailChannel(dataclasses.replace(settings, timeout=0.3))
    await channel.open()
    started = asyncio.get_running_loop().time()
    outcome = await channel.send(make_message(1))
    took = asyncio.get_running_loop().time() - started
    wire.silent = False
    second = await channel.send(make_message(2))
    await channel.close()
    assert 0.3 <= took < 1.5  # the stage's timeout, plus at most a tick of the pool's watchdog
    assert outcome.kind is OutcomeKind.TRANSIENT  # nothing was delivered: safe to send again
    assert outcome.detail.startswith("SMTPReadTimeoutError: ")
    assert outcome.detail.endswith("(before the message data)")
    assert second.kind is OutcomeKind.SENT
    assert wire.commands.count(b"EHLO") == 2  # the stuck connection was dropped
    assert len(wire.delivered) == 1


async def test_a_connection_kept_after_a_refusal_is_not_timed_out_while_idle(
    raw_server: tuple[Wire, EmailSettings],
) -> None:
    wire, settings = raw_server
    wire.rcpt_reply = b"550 5.1.1 User unknown"
    channel = EmailChannel(dataclasses.replace(settings, timeout=0.2))
    await channel.open()
    refused = await channel.send(make_message(1))
    wire.rcpt_reply = b"250 2.1.5 OK"
    await asyncio.sleep(0.6)  # idle in the pool for three timeouts: no reply is awaited
    outcome = await channel.send(make_message(2))
    await channel.close()
    assert refused.kind is OutcomeKind.PERMANENT
    assert outcome.kind is OutcomeKind.SENT
    assert wire.commands.count(b"EHLO") == 1  # the same session all along
    assert len(wire.delivered) == 1


async def test_replies_split_anywhere_and_multi_line_replies_are_read_whole_and_in_order() -> None:
    wire = b"250 2.1.0 OK\r\n250-first line\r\n250- second \r\n250 last\r\n354 go ahead\r\n550 5.1.1 gone\r\n"
    loop = asyncio.get_running_loop()
    for size in (1, 5, 13, len(wire)):
        ours, theirs = socket.socketpair()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        session = SMTPSession(transport, pipelining=True)
        session.write(b"MAIL FROM:<a@example.org>\r\n", replies=4)
        theirs.setblocking(False)
        for at in range(0, len(wire), size):
            await loop.sock_sendall(theirs, wire[at : at + size])
            await asyncio.sleep(0.002)  # each piece arrives on its own
        got = [await session.read() for _ in range(4)]
        session.close()
        theirs.close()
        assert [(r.code, r.message) for r in got] == [
            (250, "2.1.0 OK"),
            (250, "first line\nsecond\nlast"),
            (354, "go ahead"),
            (550, "5.1.1 gone"),
        ], size
