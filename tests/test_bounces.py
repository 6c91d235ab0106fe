"""Parsing RFC 3464 delivery status notifications from realistic Postfix and Exim bounces."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.core.errors import ValidationError
from alerts.delivery.bounce_scan import read_bounce
from alerts.delivery.bounces import BounceReport, parse_dsn, read_dsn

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


MALFORMED = "malformed delivery status notification: "


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            b"Final-Recipient: rfc822; nobody@example.com\nOriginal-Recipient: rfc822;Nobody@Example.com\n",
            b"Final-Recipient: rfc822;\n",
            MALFORMED + "recipient 1 has no Final-Recipient",
        ),
        (
            b"Status: 5.1.1\nRemote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; 550 5.1.1",
            b"Status: bad\nRemote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; refused",
            MALFORMED + "recipient 1 has no valid Status (like 5.1.1)",
        ),
    ],
)
def test_malformed_dsn(old: bytes, new: bytes, message: str) -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    assert old in raw
    with pytest.raises(ValidationError) as caught:
        parse_dsn(raw.replace(old, new))
    assert caught.value.message == message


def test_a_missing_or_unreadable_status_is_taken_from_the_diagnostic_code() -> None:
    """Its enhanced code (5.1.1), else the class of its reply code (a bare 552: 5.0.0)."""
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    for status in (b"", b"Status: bad\n"):
        for diagnostic, expected in ((b"smtp; 550 5.1.1", "5.1.1"), (b"smtp; 552 Mailbox full", "5.0.0")):
            changed = raw.replace(b"Status: 5.1.1\n", status)
            changed = changed.replace(b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: " + diagnostic)
            (report,) = parse_dsn(changed)
            assert (report.status, report.action, report.hard) == (expected, "failed", True), (
                status,
                diagnostic,
            )


CORPUS = DATA / "bounces"


def only(raw: bytes) -> tuple[str, str, str, bool]:
    (report,) = parse_dsn(raw)
    return report.recipient, report.action, report.status, report.hard


def test_extra_blank_lines_between_fields() -> None:
    # Office 365 and Amazon SES leave blank lines inside the delivery-status part
    raw = (CORPUS / "sisimai" / "lhost-amazonses-05.eml").read_bytes()
    assert only(raw) == ("bounce@simulator.amazonses.com", "failed", "5.1.1", True)
    raw = (CORPUS / "sisimai" / "lhost-office365-11.eml").read_bytes()
    assert only(raw) == ("kijitora@cr3.neko.nyaan.jp", "failed", "5.1.1", True)
    raw = (DATA / "dsn_postfix.eml").read_bytes().replace(b"Action: failed\n", b"\n\nAction: failed\n\n")
    assert only(raw) == ("Nobody@Example.com", "failed", "5.1.1", True)


def test_no_blank_line_before_the_recipient() -> None:
    # AOL writes the per-message and per-recipient fields as one block
    raw = (CORPUS / "sisimai" / "rhost-aol-05.eml").read_bytes()
    assert only(raw)[1:] == ("failed", "5.4.4", True)
    raw = (
        (DATA / "dsn_postfix.eml")
        .read_bytes()
        .replace(b"(UTC)\n\nFinal-Recipient", b"(UTC)\nFinal-Recipient")
    )
    assert only(raw) == ("Nobody@Example.com", "failed", "5.1.1", True)


def test_report_wrapped_in_multipart_mixed_without_report_type() -> None:
    raw = (CORPUS / "sisimai" / "lhost-opensmtpd-10.eml").read_bytes()
    assert b"Content-Type: multipart/mixed" in raw
    assert only(raw)[1:] == ("failed", "5.0.0", True)
    raw = (DATA / "dsn_postfix.eml").read_bytes().replace(b"report-type=delivery-status;", b"")
    assert b"report-type" not in raw and only(raw)[3]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (b"failed (bad destination mailbox address)", "failed"),
        (b"FAILED", "failed"),
        (b"failure", "failed"),  # not an RFC 3464 word: the Status class decides
        (b"", "failed"),
    ],
)
def test_action_comments_and_unknown_words(action: bytes, expected: str) -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes().replace(b"Action: failed", b"Action: " + action)
    assert only(raw)[1] == expected


def test_one_bad_recipient_block_leaves_the_others() -> None:
    raw = (DATA / "dsn_exim.eml").read_bytes()
    broken = raw.replace(b"Status: 5.0.0", b"Status: soon").replace(b"550 5.7.1 <gone", b"refused <gone")
    dsn = read_dsn(broken)
    assert [r.recipient for r in dsn.reports] == ["full@example.org"]
    assert dsn.refused == ("recipient 1 has no valid Status (like 5.1.1)",)


@pytest.mark.parametrize(
    ("name", "recipient"),
    [
        ("qmail_01.txt", "userx@example.de"),
        ("yahoo_01.txt", "userx@example.com"),
        ("exim_01.txt", "userx@its.example.nl"),
    ],
)
def test_non_standard_bounces_go_to_flufl(name: str, recipient: str) -> None:
    raw = (CORPUS / "flufl.bounce" / name).read_bytes()
    with pytest.raises(ValidationError):
        parse_dsn(raw)
    found = read_bounce(raw)
    assert found.kind == "heuristic"
    assert recipient in [r.recipient for r in found.reports if r.hard]


def test_plain_letter_is_refused_by_both() -> None:
    with pytest.raises(ValidationError) as caught:
        read_bounce(b"From: a@example.org\r\nSubject: hello\r\n\r\nJust a letter.\r\n")
    assert caught.value.message == (
        NOT_DSN + "content type is text/plain, expected multipart/report; "
        "flufl.bounce finds no failed address in it either"
    )


QMAIL_COPY = b"--- Below this line is a copy of the message.\n"


def _qmail(address: bytes, quoted: bytes) -> bytes:
    raw = (CORPUS / "flufl.bounce" / "qmail_01.txt").read_bytes().replace(b"userx@example.de", address)
    assert QMAIL_COPY in raw
    return raw.replace(b"\nMessage removed", b"\n" + quoted)


def test_a_heuristic_bounce_keeps_the_message_id_it_quotes_and_the_address_whole() -> None:
    quoted = (
        b"From: alerts@alerts.example.org\nMessage-ID: <alert-3.c4@alerts.example.org>\n\nPlease write.\n"
    )
    found = read_bounce(_qmail(b"Xena@example.orgX", quoted))
    assert found.kind == "heuristic"
    assert found.original_message_id == "<alert-3.c4@alerts.example.org>"
    assert [(r.recipient, r.original_message_id) for r in found.reports] == [
        ("Xena@example.orgX", "<alert-3.c4@alerts.example.org>")
    ]
    odd = read_bounce(_qmail(b"userx@example.de", b"Message-ID: <caf\xe9@relay.example>\n\nx\n"))
    assert odd.original_message_id == "<caf\ufffd@relay.example>"


def test_an_oversized_message_is_refused_without_a_second_reader() -> None:
    from alerts.delivery.bounces import MAX_DSN_BYTES

    with pytest.raises(ValidationError) as caught:
        read_bounce(b"x" * (MAX_DSN_BYTES + 1))
    assert caught.value.message == NOT_DSN + f"the message is larger than {MAX_DSN_BYTES} bytes"


def test_a_base64_status_part_with_a_stray_byte_is_read() -> None:
    import base64

    raw = (DATA / "dsn_postfix.eml").read_bytes()
    head, _, rest = raw.partition(b"Content-Type: message/delivery-status\n\n")
    status, sep, tail = rest.partition(b"\n--4F2A81C0123")
    status = status.replace(b"User unknown", b"Utilisateur inconnu \xe9")
    encoded = base64.encodebytes(status)
    raw = (
        head
        + b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
        + encoded
        + sep
        + tail
    )
    (report,) = parse_dsn(raw)
    assert report.status == "5.1.1" and "Utilisateur inconnu \ufffd" in report.diagnostic


def test_the_returned_message_part_wins_over_a_message_id_in_the_notification_text() -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    old = b"This is the mail system at host mail.example.net.\n"
    assert old in raw
    raw = raw.replace(old, old + b"Message-ID: <notice-1@mail.example.net>\n")
    assert read_dsn(raw).original_message_id == "<alert-12.contact-34@alerts.example.org>"


def test_paragraphs_ignore_a_continuation_line_with_nothing_to_continue() -> None:
    from alerts.delivery.bounces import paragraphs

    text = "  stray\nAction: failed\n\n  stray\nStatus: 5.0.0\n"
    assert paragraphs(text) == [[("action", "failed")], [("status", "5.0.0")]]


def test_an_original_recipient_after_a_complete_block_starts_the_next_one() -> None:
    from alerts.delivery.bounces import recipient_blocks

    text = (
        "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n"
        "Original-Recipient: rfc822; B@example.org\nFinal-Recipient: rfc822; b@example.org\n"
        "Action: failed\nStatus: 5.1.2\n"
    )
    assert recipient_blocks(text) == [
        {"final-recipient": "rfc822; a@example.org", "action": "failed", "status": "5.1.1"},
        {
            "original-recipient": "rfc822; B@example.org",
            "final-recipient": "rfc822; b@example.org",
            "action": "failed",
            "status": "5.1.2",
        },
    ]


def _postfix_with_status(fields: bytes) -> bytes:
    """The Postfix bounce with its delivery-status part's text replaced by ``fields``."""
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    head, sep, rest = raw.partition(b"Content-Type: message/delivery-status\n\n")
    _status, boundary, tail = rest.partition(b"\n--4F2A81C0123")
    assert sep and boundary
    return head + sep + fields + boundary + tail


def test_fields_before_the_recipient_in_a_sound_paragraph_are_that_recipients() -> None:
    """One paragraph per recipient, in any order of fields: the second recipient keeps its own
    Action, Status and Diagnostic-Code though they come before its Final-Recipient."""
    raw = _postfix_with_status(
        b"Reporting-MTA: dns; mail.example.net\n\n"
        b"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 unknown\n\n"
        b"Action: delayed\nStatus: 4.4.1\nDiagnostic-Code: smtp; 451 4.4.1 try later\n"
        b"Final-Recipient: rfc822; b@example.org\n"
    )
    assert [(r.recipient, r.action, r.status, r.diagnostic) for r in parse_dsn(raw)] == [
        ("a@example.org", "failed", "5.1.1", "550 5.1.1 unknown"),
        ("b@example.org", "delayed", "4.4.1", "451 4.4.1 try later"),
    ]


def test_an_original_recipient_then_other_fields_then_its_final_recipient_are_one_recipient() -> None:
    """Two recipients in one paragraph (not sound): a recipient's Original-Recipient, Action and
    Final-Recipient belong together, and the report names the address we sent to."""
    raw = _postfix_with_status(
        b"Reporting-MTA: dns; mail.example.net\n\n"
        b"Original-Recipient: rfc822; Alias@Example.org\nAction: failed\n"
        b"Final-Recipient: rfc822; box@internal.example.org\nStatus: 5.1.1\n"
        b"Original-Recipient: rfc822; B@example.org\nFinal-Recipient: rfc822; b@example.org\n"
        b"Action: failed\nStatus: 5.2.2\n"
    )
    dsn = read_dsn(raw)
    assert [(r.recipient, r.final_recipient, r.status) for r in dsn.reports] == [
        ("Alias@Example.org", "box@internal.example.org", "5.1.1"),
        ("B@example.org", "b@example.org", "5.2.2"),
    ]
    assert dsn.refused == ()


def test_a_lone_recipient_takes_the_status_written_in_a_paragraph_before_it() -> None:
    raw = _postfix_with_status(
        b"Reporting-MTA: dns; mail.example.net\n\n"
        b"Action: failed\nStatus: 5.7.1\nDiagnostic-Code: smtp; refused by policy\n\n"
        b"Final-Recipient: rfc822; a@example.org\n"
    )
    assert [(r.recipient, r.action, r.status, r.diagnostic) for r in parse_dsn(raw)] == [
        ("a@example.org", "failed", "5.7.1", "refused by policy")
    ]


def test_a_quoted_printable_status_part_with_a_stray_byte_is_decoded() -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    old = b"Content-Type: message/delivery-status\n\n"
    raw = raw.replace(
        old, b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: quoted-printable\n\n"
    )
    raw = raw.replace(b"User unknown in virtual mailbox table", b"Utilisateur inconnu =E9 dans la=\n table")
    (report,) = parse_dsn(raw)
    assert report.status == "5.1.1"
    assert report.diagnostic.endswith("Utilisateur inconnu \ufffd dans la table")


def test_a_bounce_with_crlf_lines_quoting_the_original_as_text_gives_its_message_id() -> None:
    raw = (DATA / "dsn_postfix.eml").read_bytes()
    raw = raw.replace(b"Content-Type: message/rfc822", b"Content-Type: text/plain")
    raw = raw.replace(b"\n", b"\r\n")
    assert read_dsn(raw).original_message_id == "<alert-12.contact-34@alerts.example.org>"


def test_a_heuristic_bounce_reports_permanent_failures_as_5_0_0_and_temporary_ones_as_4_0_0() -> None:
    hard = read_bounce((CORPUS / "flufl.bounce" / "qmail_01.txt").read_bytes())
    soft = read_bounce((CORPUS / "flufl.bounce" / "simple_03.txt").read_bytes())
    assert hard.reports == (
        BounceReport(
            recipient="userx@example.de",
            final_recipient="userx@example.de",
            action="failed",
            status="5.0.0",
            diagnostic="recognised by flufl.bounce",
            original_message_id=None,
        ),
    )
    assert [(r.recipient, r.final_recipient, r.action, r.status) for r in soft.reports] == [
        ("userx@example.za", "userx@example.za", "delayed", "4.0.0")
    ]
    assert hard.reports[0].hard and not soft.reports[0].hard
    assert soft.kind == "heuristic"


def test_a_heuristic_bounce_names_every_address_in_order() -> None:
    found = read_bounce((CORPUS / "flufl.bounce" / "yahoo_06.txt").read_bytes())
    assert [r.recipient for r in found.reports] == [
        "usera@example.com",
        "userx@example.com",
        "usery@example.com",
        "userz@example.com",
    ]


def test_a_heuristic_address_loses_the_spaces_around_it_and_an_empty_one_is_no_address() -> None:
    spaced = read_bounce(_qmail(b"  userx@example.de ", b"x\n"))
    assert [r.recipient for r in spaced.reports] == ["userx@example.de"]
    for empty in (b"", b" "):
        with pytest.raises(ValidationError) as caught:
            read_bounce(_qmail(empty, b"x\n"))
        assert caught.value.message.endswith("; flufl.bounce finds no failed address in it either")
        assert caught.value.details == {"reason": "content type is text/plain, expected multipart/report"}


def test_an_empty_message_is_refused_without_a_second_reader() -> None:
    for raw in (b"", b"\r\n"):
        with pytest.raises(ValidationError) as caught:
            read_bounce(raw)
        assert caught.value.message == NOT_DSN + "the message is empty"
        assert caught.value.details == {"reason": "the message is empty"}


def test_flufl_bounce_logs_nothing_while_it_reads_and_logs_again_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    read_bounce((CORPUS / "flufl.bounce" / "qmail_01.txt").read_bytes())
    with pytest.raises(ValidationError):
        read_bounce(b"From: a@example.org\r\nSubject: hello\r\n\r\nJust a letter.\r\n")
    assert [r for r in caplog.records if r.name.startswith("flufl")] == []
    logging.getLogger("flufl.bounce").warning("a later message")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("flufl")] == ["a later message"]


def test_a_detector_tripping_on_a_message_makes_it_unrecognised_logged_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """flufl.bounce's Yale detector fails on a message without a From header: the message is
    refused like one it does not recognise, and only our DEBUG line says why."""
    import logging

    caplog.set_level(logging.DEBUG)
    raw = b"Subject: failure notice\nContent-Type: text/plain; charset=unknown-8bit\n\nhello \xe9\n"
    with pytest.raises(ValidationError) as caught:
        read_bounce(raw)
    assert caught.value.message == (
        NOT_DSN + "content type is text/plain, expected multipart/report; "
        "flufl.bounce finds no failed address in it either"
    )
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "alerts.delivery.bounce_scan",
            "DEBUG",
            "flufl.bounce could not read a message: IndexError('list index out of range')",
        )
    ]
