"""One open SMTP session after its handshake, with a reader that takes pipelined replies.

aiosmtplib opens the connection, reads the greeting and does EHLO, STARTTLS and AUTH; then
``SMTPSession.take_over`` puts its own protocol on the connection. aiosmtplib's protocol keeps
one reply at a time and drops a reply that arrives while the previous one awaits pickup, so it
cannot read the three replies of a pipelined MAIL, RCPT and DATA (RFC 2920), which a server
may send in one packet. This reader keeps every complete reply, in order, until it is read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPResponseException, SMTPServerDisconnected

_MAX_LINE = 8192  # RFC 5321 allows 512 per reply line; aiosmtplib's own limit
_MAX_PENDING = 1 << 20  # bytes of replies not yet read
_BLANK = b" \t\r\n"


class _Replies(asyncio.Protocol):
    """Parses the replies on one connection, any number per packet, and hands them out in order."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport: asyncio.Transport | None = transport
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.expected = 0  # replies owed to commands written and not yet read

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
            if len(self._buffer) > _MAX_PENDING:
                raise SMTPResponseException(-1, "Response too long")
            if len(self._replies) > self.expected:
                # a reply nobody asked for (a server's "421 idle timeout" before it hangs up):
                # this session is done; the next send opens a new one instead of taking it
                # for the reply to its MAIL
                raise SMTPServerDisconnected(f"unsolicited reply {self._replies[-1].code}")
        except (SMTPResponseException, SMTPServerDisconnected) as exc:
            # out of step with the server: nothing more is read, and the session cannot be reset
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
            return
        if self._replies:
            self._wake()

    def _parse(self) -> None:
        buffer = self._buffer
        complete = buffer.rfind(b"\n") + 1
        if not complete:
            return  # an incomplete reply waits for more data
        group: list[bytes] = []  # the lines of a multi-line reply so far
        taken = offset = 0
        for line in bytes(buffer[:complete]).split(b"\n")[:-1]:  # each without its "\n"
            offset += len(line) + 1
            if len(line) >= _MAX_LINE or not line[:3].isdigit():
                text = line[:200].decode("utf-8", "replace")
                raise SMTPResponseException(-1, f"Malformed SMTP response line: {text}")
            if line[3:4] == b"-":
                group.append(line)
                continue
            if group:
                group.append(line)
                message = b"\n".join(text[4:].strip(_BLANK) for text in group)
                line, group = group[0], []
            else:  # one line, as nearly every reply: no list and no join
                message = line[4:].strip(_BLANK)
            self._replies.append(SMTPResponse(int(line[:3]), message.decode("utf-8", "surrogateescape")))
            taken = offset
        del buffer[:taken]  # the lines of a reply not yet complete stay

    def eof_received(self) -> bool:
        self._fail(SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(SMTPServerDisconnected("Connection lost"))

    def time_out(self) -> None:
        """The reply awaited (or the next one) did not come in time: reads raise TimeoutError."""
        self._fail(TimeoutError("Timed out waiting for the server's reply"))

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> SMTPResponse:
        """The next reply; raises once the connection is lost (after the replies it delivered)."""
        while not self._replies:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.expected -= 1
        return self._replies.popleft()


class SMTPSession:
    """Writes commands and message data and reads their replies on a handed-over connection."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool) -> None:
        self._replies = _Replies(transport)
        transport.set_protocol(self._replies)
        self.pipelining = pipelining  # the server offered PIPELINING in its EHLO reply
        self.replies_read = 0
        self.deadline: float | None = None  # loop time the awaited replies are due by (the pool's watchdog)

    @classmethod
    def take_over(cls, client: aiosmtplib.SMTP) -> SMTPSession:
        """The connection of ``client`` (greeted, EHLO done), which must not be used after."""
        protocol = client.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            raise SMTPServerDisconnected("Connection lost after the handshake")
        transport = cast(asyncio.Transport, protocol.transport)
        session = cls(transport, pipelining=client.supports_extension("pipelining"))
        client.protocol = None  # detach: aiosmtplib would otherwise close it when it is closed
        client.transport = None
        return session

    @property
    def is_connected(self) -> bool:
        transport = self._replies.transport
        return transport is not None and not transport.is_closing()

    def write(self, data: bytes, *, replies: int = 1) -> None:
        """Write commands (or message data) that the server answers with ``replies`` replies.

        ``SMTPServerDisconnected`` if the connection is closed.
        """
        transport = self._replies.transport
        if transport is None or transport.is_closing():
            raise SMTPServerDisconnected("Connection lost")
        self._replies.expected += replies
        transport.write(data)

    async def read(self) -> SMTPResponse:
        """The next reply, in the order the commands were written."""
        reply = await self._replies.read()
        self.replies_read += 1
        return reply

    def time_out(self) -> None:
        """Fail the read under way (and every later one) with TimeoutError; the caller drops the session."""
        self.deadline = None
        self._replies.time_out()

    def close(self) -> None:
        transport = self._replies.transport
        if transport is not None:
            transport.close()
