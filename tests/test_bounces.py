"""Parsing RFC 3464 delivery status notifications from realistic Postfix and Exim bounces."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.core.errors import ValidationError
from alerts.delivery.bounces import BounceReport, parse_dsn

DATA = Path(__file__).parent / "data"


def test_postfix_hard_bounce() -> None:
    reports = parse_dsn((DATA / "dsn_postfix.eml").read_bytes())
    assert reports == [
        BounceReport(
            recipient="Nobody@Example.com",
            final_recipient="nobody@example.com",
            action="failed",
            status="5.1.1",
            diagnostic="550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual "
            "mailbox table",
            original_message_id="<alert-12.contact-34@alerts.example.org>",
        )
    ]
    assert reports[0].hard


def test_exim_two_recipients_with_rfc822_headers() -> None:
    reports = parse_dsn((DATA / "dsn_exim.eml").read_bytes())
    assert [(r.recipient, r.action, r.status, r.hard) for r in reports] == [
        ("gone@example.net", "failed", "5.0.0", True),
        ("full@example.org", "failed", "5.2.2", True),
    ]
    assert reports[1].diagnostic == "552 5.2.2 Mailbox full"
    assert {r.original_message_id for r in reports} == {"<alert-7.contact-99@alerts.example.org>"}


def test_delayed_report_is_not_hard() -> None:
    (report,) = parse_dsn((DATA / "dsn_delayed.eml").read_bytes())
    assert (report.recipient, report.action, report.status, report.hard) == (
        "slow@example.com",
        "delayed",
        "4.4.1",
        False,
    )
    assert report.diagnostic == "connect to mx.example.com[192.0.2.20]:25: Connection timed out"
    assert report.original_message_id == "<alert-3.contact-5@alerts.example.org>"


def test_failed_with_4xx_status_is_not_hard() -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes().replace(b"Status: 5.1.1", b"Status: 4.2.2")
    (report,) = parse_dsn(raw)
    assert (report.action, report.status, report.hard) == ("failed", "4.2.2", False)


NOT_DSN = "not a delivery status notification: "


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", NOT_DSN + "the message is empty"),
        (b"\x00\xff\xfe garbage \x89PNG", NOT_DSN + "content type is text/plain, expected multipart/report"),
        (
            b"From: a@example.org\r\nSubject: hello\r\n\r\nJust a letter.\r\n",
            NOT_DSN + "content type is text/plain, expected multipart/report",
        ),
        (
            (
                b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\n"
                b"Content-Type: text/plain\r\n\r\nspam\r\n--x--\r\n"
            ),
            NOT_DSN + "report type is feedback-report, expected delivery-status",
        ),
        (
            (
                b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n"
                b"Content-Type: text/plain\r\n\r\nsorry\r\n--x--\r\n"
            ),
            NOT_DSN + "it has no message/delivery-status part",
        ),
    ],
)
def test_not_a_dsn(raw: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_dsn(raw)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            b"Final-Recipient: rfc822; nobody@example.com\n",
            b"",
            "malformed delivery status notification: recipient 1 has no Final-Recipient",
        ),
        (
            b"Action: failed",
            b"Action: exploded",
            (
                "malformed delivery status notification: recipient 1 has action 'exploded', expected one of "
                "delayed, delivered, expanded, failed, relayed"
            ),
        ),
        (
            b"Status: 5.1.1",
            b"Status: bad",
            "malformed delivery status notification: recipient 1 has no valid Status (like 5.1.1)",
        ),
    ],
)
def test_malformed_dsn(old: bytes, new: bytes, message: str) -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    assert old in raw
    with pytest.raises(ValidationError) as caught:
        parse_dsn(raw.replace(old, new))
    assert caught.value.message == message
