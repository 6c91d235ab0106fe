"""A minimal, low-CPU SMTP sink for benchmarks, run in its own process.

    python bench/smtp_sink.py --port 0        # prints "ready <port>" once listening

Speaks just enough SMTP for a client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), answers
every command at once, counts messages and never parses a body: the end of DATA is found by
searching for ``\\r\\n.\\r\\n`` in the incoming bytes. Commands pipelined in one packet get their
replies in one write. On SIGINT/SIGTERM it prints ``messages N connections M`` and exits.
Importable: ``server, stats = await start_sink(host, port)``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from typing import cast

_TERMINATOR = b"\r\n.\r\n"
_REPLIES = {
    b"HELO": b"250 sink\r\n",
    b"EHLO": b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n",
    b"MAIL": b"250 2.1.0 OK\r\n",
    b"RCPT": b"250 2.1.5 OK\r\n",
    b"RSET": b"250 2.0.0 OK\r\n",
    b"NOOP": b"250 2.0.0 OK\r\n",
}


@dataclass
class SinkStats:
    """What the sink has seen."""

    messages: int = 0
    connections: int = 0
    bytes: int = 0


class SinkProtocol(asyncio.Protocol):
    """One SMTP session: replies at once, counts messages, keeps no message data."""

    def __init__(self, stats: SinkStats) -> None:
        self.stats = stats
        self.buffer = bytearray()
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not a subclass of asyncio.Transport, only alike)
        self.transport = transport = cast(asyncio.Transport, transport)
        self.stats.connections += 1
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.stats.bytes += len(data)
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while True:
            if self.in_data:
                end = buffer.find(_TERMINATOR)
                if end < 0:
                    # Keep only a tail that may hold the start of the terminator.
                    if len(buffer) > 4:
                        del buffer[:-4]
                    break
                del buffer[: end + len(_TERMINATOR)]
                self.in_data = False
                self.stats.messages += 1
                out.append(b"250 2.0.0 OK queued\r\n")
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(buffer[:4]).upper()
            del buffer[: end + 2]
            if verb == b"DATA":
                self.in_data = True
                buffer[:0] = b"\r\n"  # the DATA line's CRLF: a message may end at once with ".\r\n"
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                assert self.transport is not None
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            else:
                out.append(_REPLIES.get(verb, b"502 5.5.2 Command not recognized\r\n"))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def start_sink(host: str = "127.0.0.1", port: int = 0) -> tuple[asyncio.Server, SinkStats]:
    """Listen on ``host:port`` in the running loop; returns the server and its live stats."""
    stats = SinkStats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(stats), host, port, backlog=1024)
    return server, stats


async def _serve(host: str, port: int) -> None:
    server, stats = await start_sink(host, port)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    print(f"messages {stats.messages} connections {stats.connections}", flush=True)


def main() -> None:
    """``python bench/smtp_sink.py [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed after 'ready')")
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
