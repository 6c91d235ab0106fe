"""A local SMTP capture server for ``alerts demo`` (and tests): nothing leaves the machine.

aiosmtpd runs in the caller's event loop on 127.0.0.1; every message is kept in memory (the
last ``limit``), with its envelope, for the demo's web mailbox page.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

from alerts.core.clock import utcnow

logger = logging.getLogger(__name__)

_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def _decoded(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedMessage:
    """One message as received: envelope, raw bytes, and its main headers decoded."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime
    peer: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    number: int = 0  # 1 for the first message the server received, and so on

    @property
    def from_(self) -> str:
        """The decoded From header."""
        return self.headers.get("from", "")

    @property
    def to(self) -> str:
        """The decoded To header."""
        return self.headers.get("to", "")

    @property
    def subject(self) -> str:
        """The decoded Subject header."""
        return self.headers.get("subject", "")

    @property
    def date(self) -> str:
        """The Date header as sent."""
        return self.headers.get("date", "")


def capture(envelope: Envelope, *, peer: str = "", now: datetime | None = None) -> CapturedMessage:
    """A CapturedMessage from an aiosmtpd envelope."""
    raw = envelope.original_content or b""
    parsed = _HEADER_PARSER.parsebytes(raw)
    headers = {key: _decoded(parsed[key]) for key in ("from", "to", "subject", "date", "message-id")}
    return CapturedMessage(
        mail_from=envelope.mail_from or "",
        rcpt_tos=tuple(envelope.rcpt_tos),
        raw=raw,
        received_at=now or utcnow(),
        peer=peer,
        headers=headers,
    )


class RecordingHandler:
    """aiosmtpd handler that accepts every message and keeps the last ``limit`` of them."""

    def __init__(self, *, limit: int = 1000) -> None:
        self.received: deque[CapturedMessage] = deque(maxlen=limit)
        self.count = 0

    def messages(self) -> list[CapturedMessage]:
        """Received messages, oldest first."""
        return list(self.received)

    def clear(self) -> None:
        """Forget every message."""
        self.received.clear()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message and accept it."""
        self.record(session, envelope)
        return "250 2.0.0 OK captured"

    def record(self, session: Session, envelope: Envelope) -> CapturedMessage:
        """Keep one message."""
        peer = session.peer
        message = capture(
            envelope, peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        )
        self.count += 1
        message = replace(message, number=self.count)
        self.received.append(message)
        logger.debug("captured message %s for %s", self.count, message.rcpt_tos)
        return message


class CaptureServer:
    """aiosmtpd on ``host:port`` in the running loop; ``async with CaptureServer() as s``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handler: RecordingHandler | None = None,
        limit: int = 1000,
        smtp_factory: Callable[[RecordingHandler], SMTP] | None = None,
        **server_options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler or RecordingHandler(limit=limit)
        self._factory = smtp_factory
        self._server: asyncio.AbstractServer | None = None
        self._server_options = server_options
        self.sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self.connections = 0  # connections accepted so far

    def _protocol(self) -> SMTP:
        if self._factory is not None:
            protocol = self._factory(self.handler)
        else:
            protocol = SMTP(self.handler, hostname="localhost", ident="Urgent Alerts capture")
        self.sessions.add(protocol)
        self.connections += 1
        return protocol

    async def start(self) -> None:
        """Listen; with port 0, ``self.port`` becomes the chosen port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port, **self._server_options)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("SMTP capture server listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and close open sessions; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for protocol in list(self.sessions):
                if protocol.transport is not None:
                    protocol.transport.close()
            await server.wait_closed()
            await asyncio.sleep(0)  # let the closed sessions' handlers finish

    def messages(self) -> list[CapturedMessage]:
        """Received messages, oldest first."""
        return self.handler.messages()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
