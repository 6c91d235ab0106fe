"""The LMTP listener, spoken to by hand (aiosmtplib has no LHLO): our return paths only at
RCPT, then one reply per accepted recipient after DATA (RFC 2033 §4.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from alerts.core.config import Settings
from alerts.core.verp import Verp, return_path
from alerts.delivery.lmtp import start_listener
from alerts.service import run_service
from alerts.store.models import Delivery
from tests.test_inbound import NOTHING, ONLY_PERSON1, SECRET, bounce_for, outcome, sent_alert
from tests.test_postfix_relay import free_port

SENDER = "bounces@alerts.example.org"
VERP = Verp(SECRET)


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> bytes:
        """One reply (the last line of a multi-line one)."""
        line = await self.reader.readline()
        while line[3:4] == b"-":
            line = await self.reader.readline()
        return line.rstrip()

    async def command(self, line: str) -> bytes:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()

    async def data(self, body: bytes, replies: int) -> list[bytes]:
        assert (await self.command("DATA")).startswith(b"354")
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.writer.write(body.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        return [await self.reply() for _ in range(replies)]


@asynccontextmanager
async def lmtp_session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Session]:
    server = await start_listener(sessions, host="127.0.0.1", port=0, verp=VERP, senders=[SENDER])
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    session = Session(reader, writer)
    try:
        assert (await session.reply()).startswith(b"220")
        assert (await session.command("LHLO test")).startswith(b"250")
        yield session
        assert (await session.command("QUIT")).startswith(b"221")
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def lmtp(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Session]:
    async with lmtp_session(sessions) as session:
        yield session


async def test_one_reply_per_recipient(lmtp: Session, sessions: async_sessionmaker[AsyncSession]) -> None:
    delivery_id, _ = await sent_alert(sessions)
    person1 = return_path(SENDER, VERP.tag(delivery_id))
    forged = return_path(SENDER, Verp("another-secret-key-entirely-xx").tag(delivery_id))
    assert (await lmtp.command("MAIL FROM:<>")).startswith(b"250")
    assert (await lmtp.command(f"RCPT TO:<{person1.upper()}>")).startswith(b"250")
    assert (await lmtp.command("RCPT TO:<stranger@alerts.example.org>")).startswith(b"550 5.1.1")
    assert (await lmtp.command(f"RCPT TO:<{forged}>")).startswith(b"550 5.1.1")
    assert (await lmtp.command(f"RCPT TO:<{SENDER}>")).startswith(b"250")
    # a report quoting nothing: the VERP recipient names the delivery, the plain one cannot
    replies = await lmtp.data(bounce_for(None, "person1@example.org"), replies=2)
    assert replies == [
        b"250 2.0.0 1 hard bounce(s) applied, 0 soft, 0 unmatched (not ours: nothing suppressed)",
        b"250 2.0.0 0 hard bounce(s) applied, 0 soft, 1 unmatched (not ours: nothing suppressed)",
    ]
    assert await outcome(sessions) == ONLY_PERSON1


async def test_a_letter_is_accepted_and_ignored_for_each_recipient(
    lmtp: Session, sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="alerts")
    delivery_id, _ = await sent_alert(sessions)
    assert (await lmtp.command("MAIL FROM:<someone@example.net>")).startswith(b"250")
    for rcpt in (SENDER, return_path(SENDER, VERP.tag(delivery_id)), SENDER.upper()):
        assert (await lmtp.command(f"RCPT TO:<{rcpt}>")).startswith(b"250")
    replies = await lmtp.data(b"Subject: thanks\n\nThank you for the alert.\n", replies=3)
    assert replies == [b"250 2.0.0 Not a bounce report; ignored"] * 3
    logged = [r.getMessage() for r in caplog.records if r.name == "alerts.delivery.lmtp"]
    assert logged == [
        "inbound message is not a bounce report: content type is text/plain, expected multipart/report"
    ]
    assert await outcome(sessions) == NOTHING


async def test_each_recipients_report_is_logged_once_naming_the_kind_of_bounce_and_its_outcome(
    lmtp: Session, sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="alerts")
    delivery_id, _ = await sent_alert(sessions)
    assert (await lmtp.command("MAIL FROM:<>")).startswith(b"250")
    assert (await lmtp.command(f"RCPT TO:<{return_path(SENDER, VERP.tag(delivery_id))}>")).startswith(b"250")
    (reply,) = await lmtp.data(bounce_for(None, "person1@example.org"), replies=1)
    outcome_ = "1 hard bounce(s) applied, 0 soft, 0 unmatched (not ours: nothing suppressed)"
    assert reply == f"250 2.0.0 {outcome_}".encode()
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "alerts.delivery.lmtp"]
    assert logged == [("INFO", f"inbound rfc3464 bounce report: {outcome_}")]


async def test_database_failure_asks_the_relay_to_retry(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/alerts.db")
    try:
        async with lmtp_session(async_sessionmaker(engine)) as lmtp:
            assert (await lmtp.command("MAIL FROM:<>")).startswith(b"250")
            assert (await lmtp.command(f"RCPT TO:<{return_path(SENDER, VERP.tag(1))}>")).startswith(b"250")
            replies = await lmtp.data(bounce_for(None, "person1@example.org"), replies=1)
            assert replies == [b"451 4.3.0 Could not record the report; try again later"]
    finally:
        await engine.dispose()


async def test_bounce_before_the_send_is_recorded_is_retried(
    lmtp: Session, sessions: async_sessionmaker[AsyncSession]
) -> None:
    delivery_id, _ = await sent_alert(sessions)
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(state="sending"))
    assert (await lmtp.command("MAIL FROM:<>")).startswith(b"250")
    assert (await lmtp.command(f"RCPT TO:<{return_path(SENDER, VERP.tag(delivery_id))}>")).startswith(b"250")
    replies = await lmtp.data(bounce_for(None, "person1@example.org"), replies=1)
    assert replies == [b"451 4.3.0 The delivery's send is still being recorded; try again later"]


async def test_alerts_serve_runs_the_listener_for_its_return_paths(db_url: str) -> None:
    port = free_port()
    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("server", secret_key=SECRET)
        .replace("email", from_=f"Urgent Alerts <{SENDER}>")
        .replace("bounces", listen=True, host="127.0.0.1", port=port)
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    service = asyncio.create_task(run_service(settings, web_ui=False, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = Session(reader, writer)
        assert (await session.reply()).startswith(b"220")
        assert (await session.command("LHLO test")).startswith(b"250")
        assert (await session.command("MAIL FROM:<>")).startswith(b"250")
        assert (await session.command(f"RCPT TO:<{return_path(SENDER, VERP.tag(9))}>")).startswith(b"250")
        assert (await session.command("RCPT TO:<press@localhost>")).startswith(b"250")  # [press] from
        assert (await session.command("RCPT TO:<someone@alerts.example.org>")).startswith(b"550")
        assert (await session.command("QUIT")).startswith(b"221")
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)


def test_bounce_counts_add_up_over_reports() -> None:
    from alerts.delivery.inbound import Applied
    from alerts.delivery.lmtp import BounceCounts

    counts = BounceCounts()
    for applied in (Applied(early=1, bounced=1), Applied(early=1, soft=2), Applied(unmatched=1)):
        counts.add(applied)
    assert (counts.bounced, counts.soft, counts.unmatched, counts.early) == (1, 2, 1, 2)


async def test_a_report_that_cannot_be_recorded_is_logged_as_an_error_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/alerts.db")
    try:
        with caplog.at_level("ERROR", logger="alerts.delivery.lmtp"):
            async with lmtp_session(async_sessionmaker(engine)) as lmtp:
                assert (await lmtp.command("MAIL FROM:<>")).startswith(b"250")
                rcpt = f"RCPT TO:<{return_path(SENDER, VERP.tag(1))}>"
                assert (await lmtp.command(rcpt)).startswith(b"250")
                (reply,) = await lmtp.data(bounce_for(None, "person1@example.org"), replies=1)
    finally:
        await engine.dispose()
    assert reply.startswith(b"451 ")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["could not apply a bounce report"]
    assert errors[0].exc_info is not None  # with the traceback of what failed
    assert "person1@example.org" not in caplog.text
