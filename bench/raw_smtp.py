"""How fast can plain aiosmtplib push messages into a local sink (no database, no channel)?

    python bench/raw_smtp.py [--messages 20000] [--connections 16]

Starts ``bench/smtp_sink.py`` in its own process, then prints messages/s for:
- raw aiosmtplib ``sendmail`` over reused connections (the ceiling for this machine);
- ``EmailChannel.send`` (per-recipient build from the cached body + pooled SMTP), same sink.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib

SENDER = "bench@example.org"
RECIPIENT = "sink@example.org"


async def raw_send(
    host: str, port: int, messages: list[bytes], connections: int = 16, recipient: str = RECIPIENT
) -> float:
    """Send every message with plain aiosmtplib over ``connections`` reused sessions; messages/s."""
    clients = [
        aiosmtplib.SMTP(hostname=host, port=port, local_hostname="bench", timeout=30)
        for _ in range(connections)
    ]
    await asyncio.gather(*(client.connect() for client in clients))
    work = iter(messages)

    async def worker(client: aiosmtplib.SMTP) -> None:
        for message in work:  # a shared iterator: each message is taken once
            await client.sendmail(SENDER, [recipient], message)

    started = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(client.quit() for client in clients))
    return len(messages) / elapsed


async def channel_send(host: str, port: int, count: int, connections: int = 16) -> float:
    """Send ``count`` messages through EmailChannel (build + pooled send); messages/s."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from alerts.core.config import EmailSettings
    from alerts.core.types import OutcomeKind, Recipient, RenderedContent, RenderedMessage
    from channels.email import EmailChannel

    content = RenderedContent(
        channel="email", audience="public", language="en", subject="Urgent action: defender detained",
        text=_TEXT, html=f"<p>{_TEXT}</p>",
    )  # fmt: skip
    channel = EmailChannel(EmailSettings(host=host, port=port, pool_size=connections, from_=SENDER))
    await channel.open()
    messages = [
        RenderedMessage(
            delivery_id=n, alert_id=1, content=content, message_id=f"<alert-1.contact-{n}@bench.example>",
            recipient=Recipient(contact_id=n, name=f"Contact {n}", address=f"c{n}@example.org", language="en",
                                kind="public", unsubscribe_url=f"https://bench.example/u/{n}"),
        )
        for n in range(count)
    ]  # fmt: skip
    work = iter(messages)
    failures = itertools.count()

    async def worker() -> None:
        for message in work:
            if (await channel.send(message)).kind is not OutcomeKind.SENT:
                next(failures)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections * 2)))
    elapsed = time.perf_counter() - started
    await channel.close()
    if next(failures):
        raise SystemExit("some messages were not accepted by the sink")
    return count / elapsed


_TEXT = ("The defender was detained without charge. We call on the authorities to release her. " * 30).strip()


def _sample(n: int) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: Contact {n} <{RECIPIENT}>\r\nSubject: Urgent action\r\n"
        f"Message-ID: <alert-1.contact-{n}@bench.example>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{_TEXT}\r\n"
    ).encode()


def main() -> None:
    """Run the sink in a subprocess and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    sink = Path(__file__).with_name("smtp_sink.py")
    process = subprocess.Popen([sys.executable, str(sink), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if not line or line[0] != "ready":
            raise SystemExit("the SMTP sink did not start")
        port = int(line[1])
        messages = [_sample(n) for n in range(args.messages)]
        rate = asyncio.run(raw_send("127.0.0.1", port, messages, args.connections))
        sent = f"{args.messages} messages over {args.connections} connections"
        print(f"raw aiosmtplib: {sent}: {rate:,.0f} messages/s")
        rate = asyncio.run(channel_send("127.0.0.1", port, args.messages, args.connections))
        print(f"EmailChannel (build + pooled send, pool {args.connections}): {rate:,.0f} messages/s")
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
