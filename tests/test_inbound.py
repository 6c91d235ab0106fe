"""Bounce reports arriving later: `alerts bounces process` (file or stdin) and the LMTP
listener mark the delivery bounced and suppress the address."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.delivery.inbound import start_listener
from alerts.store.models import Delivery, DeliveryEvent, Suppression
from channels.memory import MemoryChannel
from tests.factories import published_alert
from tests.test_dispatch import dispatcher

DSN = (Path(__file__).parent / "data" / "dsn_postfix.eml").read_bytes()


async def sent_alert(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    alert_id = await published_alert(sessions, 3)
    await dispatcher(sessions, {"email": MemoryChannel()}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        mid = (
            await session.execute(
                select(Delivery.message_id).where(Delivery.address == "person1@example.org")
            )
        ).scalar_one()
    assert mid is not None
    return alert_id, mid


def bounce_for(message_id: str, address: str) -> bytes:
    return (
        DSN.replace(b"<alert-12.contact-34@alerts.example.org>", message_id.encode())
        .replace(b"nobody@example.com", address.encode())
        .replace(b"Nobody@Example.com", address.encode())
    )


async def check_bounced(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        states = dict((await session.execute(select(Delivery.address, Delivery.state))).all())
        suppressed = (await session.execute(select(Suppression.address_key, Suppression.reason))).all()
        event = (
            await session.execute(select(DeliveryEvent).where(DeliveryEvent.type == "bounced"))
        ).scalar_one()
    assert states == {
        "person0@example.org": "sent",
        "person1@example.org": "bounced",
        "person2@example.org": "sent",
    }
    assert suppressed == [("person1@example.org", "bounced")]
    assert event.payload is not None and event.payload["status"] == "5.1.1"


async def test_bounces_process_from_stdin(db_url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
    _, mid = await sent_alert(sessions)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alerts",
        "bounces",
        "process",
        "-",
        env={**os.environ, "ALERTS_DATABASE_URL": db_url},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(bounce_for(mid, "person1@example.org"))
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "1 report(s): 1 hard bounce(s) applied\n"
    await check_bounced(sessions)


async def test_garbage_is_refused_in_one_line(db_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alerts",
        "bounces",
        "process",
        "-",
        env={**os.environ, "ALERTS_DATABASE_URL": db_url},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(b"Subject: hello\n\njust a message\n")
    assert proc.returncode != 0
    assert err.decode().startswith("alerts: not a delivery status notification") and err.count(b"\n") == 1


async def test_lmtp_listener_applies_reports(sessions: async_sessionmaker[AsyncSession]) -> None:
    _, mid = await sent_alert(sessions)
    server = await start_listener(sessions, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    try:
        # LMTP spoken by hand: aiosmtplib has no LHLO
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> bytes:
            line = await reader.readline()
            while line[3:4] == b"-":
                line = await reader.readline()
            return line

        assert (await reply()).startswith(b"220")
        for cmd in (b"LHLO test", b"MAIL FROM:<>", b"RCPT TO:<bounces@alerts.example.org>", b"DATA"):
            writer.write(cmd + b"\r\n")
            assert (await reply())[:1] in (b"2", b"3")
        body = bounce_for(mid, "person1@example.org").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        writer.write(body.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        assert (await reply()).startswith(b"250")
        writer.write(b"QUIT\r\n")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    await check_bounced(sessions)
