"""Bounce reports arriving later (`alerts bounces process`, file or stdin): applied to an
address this service mailed only — found by the returned Message-ID or by the VERP return
path — and never to an address a report merely names."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.verp import Verp, return_path
from alerts.delivery.bounce_scan import read_bounce
from alerts.delivery.inbound import Applied, apply_bounce
from alerts.store.models import Delivery, DeliveryEvent, Suppression
from channels.memory import MemoryChannel
from tests.factories import published_alert
from tests.test_dispatch import dispatcher

DATA = Path(__file__).parent / "data"
DSN = (DATA / "dsn_postfix.eml").read_bytes()
QMAIL = (DATA / "bounces" / "flufl.bounce" / "qmail_01.txt").read_bytes()
SECRET = "a-long-enough-test-secret-key-for-verp"


async def sent_alert(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    """Three emails sent; (person1's delivery id, its Message-ID)."""
    alert_id = await published_alert(sessions, 3)
    await dispatcher(sessions, {"email": MemoryChannel()}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        delivery_id, mid = (
            await session.execute(
                select(Delivery.id, Delivery.message_id).where(Delivery.address == "person1@example.org")
            )
        ).one()
    assert mid is not None
    return delivery_id, mid


def bounce_for(message_id: str | None, address: str) -> bytes:
    """The Postfix DSN, about ``address``, returning ``message_id`` (or no Message-ID)."""
    raw = DSN.replace(b"nobody@example.com", address.encode()).replace(
        b"Nobody@Example.com", address.encode()
    )
    old = b"Message-ID: <alert-12.contact-34@alerts.example.org>\n"
    return raw.replace(old, b"" if message_id is None else f"Message-ID: {message_id}\n".encode())


def qmail_for(address: str) -> bytes:
    """A qmail bounce (no DSN, quoting no Message-ID of ours) about ``address``."""
    raw = re.sub(rb"(?im)^Message-Id:.*\n", b"", QMAIL)
    return raw.replace(b"userx@example.de", address.encode())


async def apply(
    sessions: async_sessionmaker[AsyncSession], raw: bytes, verp_id: int | None = None
) -> Applied:
    async with sessions.begin() as session:
        return await apply_bounce(session, read_bounce(raw), now=utcnow(), verp_delivery_id=verp_id)


async def outcome(sessions: async_sessionmaker[AsyncSession]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    async with sessions() as session:
        states = dict((await session.execute(select(Delivery.address, Delivery.state))).all())
        suppressed = (await session.execute(select(Suppression.address_key, Suppression.reason))).all()
    return states, [tuple(row) for row in suppressed]


ONLY_PERSON1 = (
    {"person0@example.org": "sent", "person1@example.org": "bounced", "person2@example.org": "sent"},
    [("person1@example.org", "bounced")],
)
NOTHING = (
    {"person0@example.org": "sent", "person1@example.org": "sent", "person2@example.org": "sent"},
    [],
)


async def cli(db_url: str, stdin: bytes) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alerts",
        "bounces",
        "process",
        "-",
        env={**os.environ, "ALERTS_DATABASE_URL": db_url, "ALERTS_SERVER_SECRET_KEY": SECRET},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    return proc.returncode, out.decode(), err.decode()


async def test_bounces_process_from_stdin(db_url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
    _, mid = await sent_alert(sessions)
    code, out, err = await cli(db_url, bounce_for(mid, "person1@example.org"))
    assert code == 0, err
    assert (
        out == "1 report(s): 1 hard bounce(s) applied, 0 soft, 0 unmatched (not ours: nothing suppressed)\n"
    )
    assert await outcome(sessions) == ONLY_PERSON1
    async with sessions() as session:
        event = (
            await session.execute(select(DeliveryEvent).where(DeliveryEvent.type == "bounced"))
        ).scalar_one()
    assert event.payload is not None and event.payload["status"] == "5.1.1"
    assert event.payload["format"] == "rfc3464"


async def test_bounces_process_reads_the_verp_address_the_bounce_came_to(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    delivery_id, _ = await sent_alert(sessions)
    verp = return_path("bounces@alerts.example.org", Verp(SECRET).tag(delivery_id))
    raw = qmail_for("person1@example.org")
    raw = re.sub(rb"(?im)^To:.*$", f"To: {verp}".encode(), raw, count=1)
    code, out, err = await cli(db_url, raw)
    assert code == 0, err
    assert out.startswith("1 report(s): 1 hard bounce(s) applied")
    assert await outcome(sessions) == ONLY_PERSON1


async def test_bounces_process_finds_the_delivery_by_the_verp_address_in_the_to_header(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The ``alerts bounces process`` handler itself, in this process: a qmail bounce quoting
    nothing of ours, with no Delivered-To or X-Original-To header, only ``To:`` the signed VERP
    return path; that names the delivery, which bounces (and nothing else)."""
    from alerts.cli.commands_service import bounces_process
    from alerts.core.config import Settings

    delivery_id, _ = await sent_alert(sessions)
    verp = return_path("bounces@alerts.example.org", Verp(SECRET).tag(delivery_id))
    raw = re.sub(
        rb"(?im)^To:.*$", f"To: Bounces <{verp}>".encode(), qmail_for("person1@example.org"), count=1
    )
    assert not re.search(rb"(?im)^(Delivered-To|X-Original-To):", raw)
    report = tmp_path / "bounce.eml"
    report.write_bytes(raw)
    settings = Settings().replace("database", url=db_url).replace("server", secret_key=SECRET)
    code = await bounces_process(argparse.Namespace(file=str(report)), settings)
    assert code == 0
    assert capsys.readouterr().out.startswith("1 report(s): 1 hard bounce(s) applied, 0 soft, 0 unmatched")
    assert await outcome(sessions) == ONLY_PERSON1


async def test_garbage_is_refused_in_one_line(db_url: str) -> None:
    code, _, err = await cli(db_url, b"Subject: hello\n\njust a message\n")
    assert code != 0
    assert err.startswith("alerts: not a delivery status notification") and err.count("\n") == 1


async def test_addresses_match_whatever_their_case(sessions: async_sessionmaker[AsyncSession]) -> None:
    _, mid = await sent_alert(sessions)
    assert await apply(sessions, bounce_for(mid, "PERSON1@Example.ORG")) == Applied(bounced=1)
    assert await outcome(sessions) == ONLY_PERSON1


@pytest.mark.parametrize(
    ("message_id", "address"),
    [
        (None, "person1@example.org"),  # names an address we mailed, quotes nothing of ours
        (None, "stranger@example.net"),  # an address we never mailed
        ("<alert-1.c1@elsewhere.example>", "person1@example.org"),  # someone else's, or forged
        ("<alert-1.c1.0123456789abcdef@elsewhere.example>", "person1@example.org"),  # a wrong MAC
        ("OURS", "stranger@example.net"),  # our message, another address
        ("OURS", "person2@example.org"),  # our message to person1, naming person2
        ("OURS_ELSEWHERE", "person1@example.org"),  # person1's numbers under another domain
    ],
)
async def test_forged_or_foreign_reports_suppress_nothing(
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
    message_id: str | None,
    address: str,
) -> None:
    _, mid = await sent_alert(sessions)
    caplog.set_level("INFO", logger="alerts")
    if message_id == "OURS_ELSEWHERE":
        message_id = mid.split("@")[0] + "@elsewhere.example>"
    raw = bounce_for(mid if message_id == "OURS" else message_id, address)
    assert await apply(sessions, raw) == Applied(unmatched=1)
    assert await outcome(sessions) == NOTHING
    logged = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    # any <alert-N.cM.MAC@...> has our form; whether it is one we sent is what the match decides
    # (without the MAC, which Message-IDs had before, it is not taken for ours: anyone can write it)
    unsigned = message_id is None or message_id == "<alert-1.c1@elsewhere.example>"
    why = "no Message-ID of ours" if unsigned else "Message-ID of ours, another address"
    assert f"rfc3464 bounce report names no address this service mailed ({why}): nothing suppressed" in logged
    assert not any("@" in line for line in logged)


async def test_verp_identifies_a_bounce_that_quotes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    delivery_id, _ = await sent_alert(sessions)
    raw = qmail_for("person1@example.org")
    assert read_bounce(raw).original_message_id is None
    assert await apply(sessions, raw) == Applied(unmatched=1)  # without VERP: not ours to judge
    assert await outcome(sessions) == NOTHING
    assert await apply(sessions, raw, verp_id=delivery_id) == Applied(bounced=1)
    assert await outcome(sessions) == ONLY_PERSON1


async def test_verp_delivery_forwarded_elsewhere(sessions: async_sessionmaker[AsyncSession]) -> None:
    # the one address a report to person1's VERP path names is a forwarder's target
    delivery_id, _ = await sent_alert(sessions)
    assert await apply(sessions, bounce_for(None, "moved@example.net"), verp_id=delivery_id) == Applied(
        bounced=1
    )
    assert await outcome(sessions) == ONLY_PERSON1


async def test_bounce_before_the_send_is_recorded(sessions: async_sessionmaker[AsyncSession]) -> None:
    # a fast relay's DSN can arrive while the dispatcher is still recording "sent"
    delivery_id, mid = await sent_alert(sessions)
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(state="sending"))
    raw = bounce_for(mid, "person1@example.org")
    assert await apply(sessions, raw) == Applied(early=1)
    states, suppressed = await outcome(sessions)
    assert states["person1@example.org"] == "sending" and suppressed == ONLY_PERSON1[1]
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(state="sent"))
    assert await apply(sessions, raw) == Applied(bounced=1)  # the relay's retry
    assert await outcome(sessions) == ONLY_PERSON1


async def test_soft_bounces_change_nothing(sessions: async_sessionmaker[AsyncSession]) -> None:
    _, mid = await sent_alert(sessions)
    raw = bounce_for(mid, "person1@example.org").replace(b"Status: 5.1.1", b"Status: 4.2.2")
    raw = raw.replace(b"550 5.1.1", b"452 4.2.2").replace(b"Action: failed", b"Action: delayed")
    assert await apply(sessions, raw) == Applied(soft=1)
    assert await outcome(sessions) == NOTHING


def several(message_id: str, blocks: list[tuple[str, str]]) -> bytes:
    """The Postfix DSN with one per-recipient block per (address, status)."""
    raw = bounce_for(message_id, "person1@example.org")
    start = raw.index(b"Final-Recipient:")
    end = raw.index(b"\n--", start)
    parts = []
    for address, status in blocks:
        action = "failed" if status.startswith("5") else "delayed"
        parts.append(
            f"Final-Recipient: rfc822; {address}\nAction: {action}\nStatus: {status}\n"
            f"Diagnostic-Code: smtp; {status[0]}50 {status} <{address}>\n"
        )
    return raw[:start] + "\n".join(parts).encode() + raw[end:]


async def test_one_report_counts_each_recipient_soft_unmatched_and_bounced(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A soft block neither ends the report nor resets what was counted before it."""
    _, mid = await sent_alert(sessions)
    blocks = [
        ("stranger@example.net", "5.1.1"),
        ("person2@example.org", "4.2.2"),
        ("person1@example.org", "5.1.1"),
    ]
    raw = several(mid, blocks)
    assert len(read_bounce(raw).reports) == 3
    assert await apply(sessions, raw) == Applied(bounced=1, soft=1, unmatched=1)
    assert await outcome(sessions) == ONLY_PERSON1


async def test_a_report_naming_our_address_as_original_recipient_only_is_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Delivered on to another mailbox (an alias): the Final-Recipient is not the address we
    mailed, the Original-Recipient is."""
    _, mid = await sent_alert(sessions)
    raw = bounce_for(mid, "person1@example.org")
    old = b"Final-Recipient: rfc822; person1@example.org"
    assert old in raw
    raw = raw.replace(old, b"Final-Recipient: rfc822; box7@mail.example.org")
    assert await apply(sessions, raw) == Applied(bounced=1)
    assert await outcome(sessions) == ONLY_PERSON1


async def test_a_hard_bounce_suppression_keeps_the_status_and_the_relays_diagnostic(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, mid = await sent_alert(sessions)
    assert await apply(sessions, bounce_for(mid, "person1@example.org")) == Applied(bounced=1)
    async with sessions() as session:
        detail = (await session.execute(select(Suppression.detail))).scalar_one()
    assert detail == (
        "5.1.1 550 5.1.1 <person1@example.org>: Recipient address rejected: User unknown in virtual "
        "mailbox table"
    )


def test_the_webhooks_message_id_names_no_contact_and_reads_back_as_ours() -> None:
    """The webhook's message (no contact) is ``<alert-N.hook@domain>``, sent to the partner in its
    header and payload; a report quoting it is recognised as the alert's, with no contact."""
    from alerts.delivery.messages import message_id, parse_message_id

    hook = message_id(12, None, "alerts.test")
    assert hook == "<alert-12.hook@alerts.test>"
    assert parse_message_id(hook) == (12, None)
    assert message_id(12, None, "alerts.test", "a-token") == hook  # a token changes nothing without a contact


async def test_a_bounce_suppression_is_dated_when_the_bounce_was_processed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The suppression list shows when an address bounced: the time the report was processed
    (the same the delivery's "bounced" event carries), not whenever the row was written."""
    from datetime import UTC, datetime

    _, mid = await sent_alert(sessions)
    processed = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    async with sessions.begin() as session:
        applied = await apply_bounce(
            session, read_bounce(bounce_for(mid, "person1@example.org")), now=processed
        )
    assert applied == Applied(bounced=1)
    async with sessions() as session:
        dated = (await session.execute(select(Suppression.address_key, Suppression.created_at))).one()
        event_at = await session.scalar(select(DeliveryEvent.at).where(DeliveryEvent.type == "bounced"))
    assert tuple(dated) == ("person1@example.org", processed)
    assert event_at == processed
