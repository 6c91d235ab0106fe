"""A pool of persistent aiosmtplib connections that knows how far each transaction got.

Each connection carries many messages (MAIL, RCPT, DATA repeated on one session). A slot is
held by one send at a time; its connection is opened lazily and reopened after a drop. The
transaction is driven command by command so that a failure is reported with its *phase*:
``BEFORE`` the message data went out (nothing was delivered: safe to retry) or ``AFTER`` it
(the server may have delivered it: the outcome is unknown).
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
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from aiosmtplib.email import quote_address

from alerts.core.config import EmailSettings

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
    client: aiosmtplib.SMTP | None = None


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

    async def open(self) -> None:
        """Resolve the EHLO name once; connections themselves open lazily."""
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)

    async def close(self) -> None:
        """QUIT and close every connection; idempotent."""
        for slot in self._slots:
            client, slot.client = slot.client, None
            if client is not None and client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), timeout=min(self.options.timeout, 5.0))
                except (SMTPException, OSError, TimeoutError):
                    client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
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
        self.connections_opened += 1
        logger.debug("smtp connection opened to %s:%s", o.host, o.port)
        return client

    async def deliver(self, sender: str, recipient: str, data: bytes) -> SMTPResponse:
        """Send one dot-stuffed DATA payload (ending ``.\\r\\n``) to one recipient.

        Raises ``DeliveryFailed`` for SMTP and network errors; anything else propagates.
        A reused connection that turns out to be closed at MAIL is replaced once: nothing
        had been sent on it.
        """
        slot = await self._idle.get()
        try:
            for retry_stale in (True, False):
                reused = slot.client is not None and slot.client.is_connected
                if not reused:
                    self._drop(slot)
                    try:
                        slot.client = await self._connect()
                    except (SMTPException, OSError) as exc:
                        raise DeliveryFailed(Phase.BEFORE, exc) from exc
                assert slot.client is not None
                try:
                    return await self._transaction(slot, slot.client, sender, recipient, data)
                except DeliveryFailed as failed:
                    if not (reused and retry_stale and failed.stale):
                        raise
                    logger.debug("smtp connection was closed by the server while idle; reconnecting")
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._idle.put_nowait(slot)

    async def _transaction(
        self, slot: _Slot, client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes
    ) -> SMTPResponse:
        phase = Phase.BEFORE
        try:
            reply = await self._command(client, b"MAIL FROM:" + _path(sender) + b"\r\n")
            if reply.code != _COMPLETED:
                raise SMTPSenderRefused(reply.code, reply.message, sender)
        except (SMTPServerDisconnected, ConnectionError) as exc:
            self._drop(slot)
            raise DeliveryFailed(phase, exc, stale=True) from exc
        except SMTPResponseException as exc:
            await self._reset_or_drop(slot, client, exc)
            raise DeliveryFailed(phase, exc) from exc
        except (SMTPException, OSError) as exc:
            self._drop(slot)
            raise DeliveryFailed(phase, exc) from exc
        except BaseException:
            self._drop(slot)
            raise
        try:
            reply = await self._command(client, b"RCPT TO:" + _path(recipient) + b"\r\n")
            if reply.code not in _ACCEPTED:
                raise SMTPRecipientRefused(reply.code, reply.message, recipient)
            reply = await self._command(client, b"DATA\r\n")
            if reply.code != _START_INPUT:
                raise SMTPDataError(reply.code, reply.message)
            protocol = client.protocol
            if protocol is None:
                raise SMTPServerDisconnected("Connection lost before the message data")
            protocol.write(data)
            phase = Phase.AFTER
            reply = await protocol.read_response(timeout=self.options.timeout)
            if reply.code != _COMPLETED:
                raise SMTPDataError(reply.code, reply.message)
            return reply
        except SMTPResponseException as exc:
            await self._reset_or_drop(slot, client, exc)
            raise DeliveryFailed(phase, exc) from exc
        except (SMTPException, OSError) as exc:
            self._drop(slot)
            raise DeliveryFailed(phase, exc) from exc
        except BaseException:
            self._drop(slot)
            raise

    async def _command(self, client: aiosmtplib.SMTP, line: bytes) -> SMTPResponse:
        """Write one command line and read its reply, straight on the protocol.

        ``execute_command`` would also take a lock against concurrent commands (a slot is
        held by one send at a time) and search each argument with a regular expression; the
        one line is checked here for a stray CR or LF instead, which is cheaper. Together
        about a fifth of the transaction's Python, three times a message. A failure closes
        nothing here: the caller drops or resets the connection, as for any failure.
        """
        if b"\r" in line[:-2] or b"\n" in line[:-2]:
            raise ValueError("Command arg contains a prohibited control character")
        protocol = client.protocol
        if protocol is None:
            raise SMTPServerDisconnected("Server not connected")
        protocol.write(line)  # raises SMTPServerDisconnected on a closed transport
        return await protocol.read_response(timeout=self.options.timeout)

    async def _reset_or_drop(self, slot: _Slot, client: aiosmtplib.SMTP, exc: SMTPResponseException) -> None:
        # A refusal leaves the session usable (except 421): reset the envelope and keep it.
        if exc.code != _CLOSING and client.is_connected:
            try:
                reply = await client.rset()
            except (SMTPException, OSError):
                pass
            else:
                if reply.code == _COMPLETED:
                    return
        self._drop(slot)

    def _drop(self, slot: _Slot) -> None:
        client, slot.client = slot.client, None
        if client is not None:
            client.close()
