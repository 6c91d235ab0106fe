"""A pool of persistent SMTP connections that knows how far each transaction got.

Each connection carries many messages (MAIL, RCPT, DATA repeated on one session). A slot is
held by one send at a time; its connection is opened lazily by aiosmtplib (greeting, EHLO,
STARTTLS, AUTH), then carried on by ``smtp_session.SMTPSession``, and reopened after a drop.
Where the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write: two
round trips a message instead of four. A failure is reported with its *phase*: ``BEFORE``
the message data went out (nothing was delivered: safe to retry) or ``AFTER`` it (the server
may have delivered it: the outcome is unknown).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib
from aiosmtplib import (
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from aiosmtplib.email import quote_address

from alerts.core.config import EmailSettings
from channels.smtp_session import SMTPSession

logger = logging.getLogger(__name__)

_START_INPUT = 354
_COMPLETED = 250
_ACCEPTED = (250, 251)  # 251: user not local, will forward
_CLOSING = 421
# A plain addr-spec (what channels.mime.check_address returns for nearly every address) goes
# into MAIL/RCPT as is; anything else (a quoted local part, say) through aiosmtplib's quoting,
# which refuses what could smuggle parameters or commands. Its parser costs more than the
# rest of the transaction's Python, so it is kept for the rare case.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def _path(address: str) -> bytes:
    """``<address>`` for a MAIL or RCPT command."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return quote_address(address).encode("ascii")


class Phase(StrEnum):
    """How far a transaction got when it failed."""

    BEFORE = "before"  # connect, MAIL, RCPT or the DATA command: nothing was delivered
    AFTER = "after"  # the message data was written: the server may have delivered it


class DeliveryFailed(Exception):
    """One transaction failed; ``cause`` is the aiosmtplib (or OS) error, ``phase`` how far it got."""

    def __init__(self, phase: Phase, cause: SMTPException | OSError, *, stale: bool = False) -> None:
        super().__init__(f"{phase}: {cause}")
        self.phase = phase
        self.cause = cause
        self.stale = stale  # the connection was found closed at the first command


@dataclass(eq=False)
class _Slot:
    session: SMTPSession | None = None


class SMTPPool:
    """``options.pool_size`` persistent SMTP connections, each used by one send at a time."""

    def __init__(self, options: EmailSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.options = options
        self._tls_context = tls_context
        self._slots = [_Slot() for _ in range(options.pool_size)]
        # LIFO: the most recently used (warm) connection is reused first.
        self._idle: asyncio.LifoQueue[_Slot] = asyncio.LifoQueue()
        for slot in self._slots:
            self._idle.put_nowait(slot)
        self._local_hostname: str | None = None
        self.connections_opened = 0
        # One watchdog timer for the pool instead of an asyncio.timeout per stage of every
        # transaction (two timer handles a message): a stage times out between ``timeout``
        # and ``timeout`` plus a tick after it began.
        self._tick = min(1.0, max(0.01, options.timeout / 4))
        self._watch: asyncio.TimerHandle | None = None
        self._watch_loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Resolve the EHLO name once; connections themselves open lazily."""
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)

    async def close(self) -> None:
        """QUIT and close every connection; idempotent."""
        for slot in self._slots:
            session, slot.session = slot.session, None
            if session is not None and session.is_connected:
                try:
                    session.write(b"QUIT\r\n")
                    async with asyncio.timeout(min(self.options.timeout, 5.0)):
                        await session.read()
                except (SMTPException, OSError, TimeoutError):
                    pass
                session.close()

    async def _connect(self) -> SMTPSession:
        o = self.options
        client = aiosmtplib.SMTP(
            hostname=o.host,
            port=o.port,
            timeout=o.timeout,
            use_tls=o.security == "tls",
            start_tls=o.security == "starttls",
            username=o.username or None,
            password=o.password or None,
            local_hostname=self._local_hostname or "localhost",
            tls_context=self._tls_context,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:  # once per session, not before every MAIL
            try:
                await client.ehlo()
            except SMTPHeloError:
                if not client.is_connected:
                    raise
                await client.helo()
        session = SMTPSession.take_over(client)
        self.connections_opened += 1
        logger.debug("smtp connection opened to %s:%s (pipelining: %s)", o.host, o.port, session.pipelining)
        return session

    async def deliver(self, sender: str, recipient: str, data: bytes) -> SMTPResponse:
        """Send one dot-stuffed DATA payload (ending ``.\\r\\n``) to one recipient.

        Raises ``DeliveryFailed`` for SMTP and network errors; anything else propagates.
        A reused connection that turns out to be closed at MAIL is replaced once: nothing
        had been sent on it.
        """
        slot = await self._idle.get()
        try:
            for retry_stale in (True, False):
                reused = slot.session is not None and slot.session.is_connected
                if not reused:
                    self._drop(slot)
                    try:
                        slot.session = await self._connect()
                    except (SMTPException, OSError) as exc:
                        raise DeliveryFailed(Phase.BEFORE, exc) from exc
                assert slot.session is not None
                try:
                    return await self._transaction(slot, slot.session, sender, recipient, data)
                except DeliveryFailed as failed:
                    if not (reused and retry_stale and failed.stale):
                        raise
                    logger.debug("smtp connection was closed by the server while idle; reconnecting")
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._idle.put_nowait(slot)

    async def _transaction(
        self, slot: _Slot, session: SMTPSession, sender: str, recipient: str, data: bytes
    ) -> SMTPResponse:
        phase = Phase.BEFORE
        replies_before = session.replies_read
        try:
            try:
                self._stage(session)
                await self._envelope(session, sender, recipient)
                session.write(data)
                phase = Phase.AFTER
                self._stage(session)
                reply = await session.read()
            finally:
                session.deadline = None  # an idle session is never timed out
            if reply.code != _COMPLETED:
                raise SMTPDataError(reply.code, reply.message)
            return reply
        except SMTPResponseException as exc:
            await self._reset_or_drop(slot, session, exc)
            raise DeliveryFailed(phase, exc) from exc
        except (SMTPServerDisconnected, ConnectionError) as exc:
            self._drop(slot)
            # found closed before its first reply: a reused connection the server had closed
            stale = phase is Phase.BEFORE and session.replies_read == replies_before
            raise DeliveryFailed(phase, exc, stale=stale) from exc
        except TimeoutError as exc:
            self._drop(slot)
            timeout = SMTPReadTimeoutError("Timed out waiting for server response")
            raise DeliveryFailed(phase, timeout) from exc
        except (SMTPException, OSError) as exc:
            self._drop(slot)
            raise DeliveryFailed(phase, exc) from exc
        except BaseException:
            self._drop(slot)
            raise

    def _stage(self, session: SMTPSession) -> None:
        """The replies awaited from now on are due within ``options.timeout`` (the watchdog's)."""
        loop = asyncio.get_running_loop()
        session.deadline = loop.time() + self.options.timeout
        if self._watch is None or self._watch_loop is not loop:
            self._watch_loop = loop
            self._watch = loop.call_later(self._tick, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """Time out the sessions whose replies are overdue; keep watching while some are awaited."""
        loop = self._watch_loop
        assert loop is not None
        now = loop.time()
        waiting = False
        for slot in self._slots:
            session = slot.session
            if session is None or session.deadline is None:
                continue
            if now >= session.deadline:
                session.time_out()  # its read raises TimeoutError: the transaction drops it
            else:
                waiting = True
        self._watch = loop.call_later(self._tick, self._check_deadlines) if waiting else None

    async def _envelope(self, session: SMTPSession, sender: str, recipient: str) -> None:
        """MAIL, RCPT and DATA, up to the server's 354; raises the first refusal.

        Where the server offers PIPELINING the three commands go out in one write and their
        three replies are all read (a refusal of MAIL or RCPT makes the server refuse DATA too),
        so the session stays in step and can be reset. A server that answers DATA with 354
        after refusing the recipient gets an empty message ended at once: with no recipient
        accepted, nothing is delivered. Without PIPELINING, one command at a time.
        """
        commands = (
            (b"MAIL FROM:" + _path(sender) + b"\r\n", (_COMPLETED,)),
            (b"RCPT TO:" + _path(recipient) + b"\r\n", _ACCEPTED),
            (b"DATA\r\n", (_START_INPUT,)),
        )
        for line, _ in commands:
            if b"\r" in line[:-2] or b"\n" in line[:-2]:
                raise ValueError("Command arg contains a prohibited control character")
        if session.pipelining:
            session.write(b"".join(line for line, _ in commands), replies=len(commands))
        refused: SMTPResponseException | None = None
        for step, (line, accepted) in enumerate(commands):
            if not session.pipelining:
                session.write(line)
            try:
                reply = await session.read()
            except SMTPServerDisconnected:
                if refused is not None:  # a 421 and the server hung up: the 421 is the news
                    raise refused from None
                raise
            if reply.code in accepted:
                if refused is not None and reply.code == _START_INPUT:
                    session.write(b".\r\n")
                    await session.read()
                continue
            if refused is None:
                refused = _refusal(step, reply, sender, recipient)
            if not session.pipelining:
                break
        if refused is not None:
            raise refused

    async def _reset_or_drop(self, slot: _Slot, session: SMTPSession, exc: SMTPResponseException) -> None:
        # A refusal leaves the session usable (except 421): reset the envelope and keep it.
        if exc.code != _CLOSING and session.is_connected:
            try:
                session.write(b"RSET\r\n")
                async with asyncio.timeout(self.options.timeout):
                    reply = await session.read()
            except (SMTPException, OSError, TimeoutError):
                pass
            else:
                if reply.code == _COMPLETED:
                    return
        self._drop(slot)

    def _drop(self, slot: _Slot) -> None:
        session, slot.session = slot.session, None
        if session is not None:
            session.close()


def _refusal(step: int, reply: SMTPResponse, sender: str, recipient: str) -> SMTPResponseException:
    """The refusal of MAIL (step 0), RCPT (1) or DATA (2) as aiosmtplib names it."""
    if step == 0:
        return SMTPSenderRefused(reply.code, reply.message, sender)
    if step == 1:
        return SMTPRecipientRefused(reply.code, reply.message, recipient)
    return SMTPDataError(reply.code, reply.message)
