"""Parsing delivery status notifications (RFC 3464 bounce reports).

A DSN is a ``multipart/report; report-type=delivery-status`` message whose
``message/delivery-status`` part holds one block of per-message fields, then one block per
recipient (``Final-Recipient``, ``Action``, ``Status``, optional ``Original-Recipient`` and
``Diagnostic-Code``). The returned message, whole (``message/rfc822``) or its headers only
(``text/rfc822-headers``), gives the ``Message-ID`` we sent, which identifies the delivery.
Applying a report to deliveries and suppressions is ``alerts.delivery.dispatch``'s job, not this one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser

from alerts.core.errors import ValidationError

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SPACES = re.compile(r"\s+")
MAX_DSN_BYTES = 10 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BounceReport:
    """One recipient's line of a delivery status notification."""

    recipient: str  # Original-Recipient when given (what we sent to), else Final-Recipient
    final_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # "5.1.1"
    diagnostic: str = ""  # "550 5.1.1 <x@y>: User unknown" (may quote the address: DEBUG logs only)
    original_message_id: str | None = None  # "<alert-12.contact-34@domain>"

    @property
    def hard(self) -> bool:
        """A permanent failure: the address should receive nothing more."""
        return self.action == "failed" and self.status.startswith("5")


def _not_dsn(reason: str) -> ValidationError:
    return ValidationError(f"not a delivery status notification: {reason}", details={"reason": reason})


def _malformed(reason: str) -> ValidationError:
    return ValidationError(f"malformed delivery status notification: {reason}", details={"reason": reason})


def _address(value: str) -> str:
    """``rfc822; Nobody@Example.com`` → ``Nobody@Example.com`` (angle brackets dropped)."""
    _type, sep, address = value.partition(";")
    address = (address if sep else value).strip().strip("<>").strip()
    return address


def _original_message_id(report: Message) -> str | None:
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                headers = HeaderParser(policy=policy.default).parsestr(text.decode("utf-8", "replace"))
                if headers.get("Message-ID"):
                    return str(headers["Message-ID"]).strip()
    return None


def parse_dsn(raw: bytes) -> list[BounceReport]:
    """The per-recipient reports of an RFC 3464 DSN; ValidationError for anything else."""
    if not raw.strip():
        raise _not_dsn("the message is empty")
    if len(raw) > MAX_DSN_BYTES:
        raise _not_dsn(f"the message is larger than {MAX_DSN_BYTES} bytes")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    ctype = message.get_content_type()
    if ctype != "multipart/report":
        raise _not_dsn(f"content type is {ctype}, expected multipart/report")
    report_type = str(message.get_param("report-type", "") or "").lower()
    if report_type != "delivery-status":
        raise _not_dsn(f"report type is {report_type or 'missing'}, expected delivery-status")
    status_part = next((p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        raise _not_dsn("it has no message/delivery-status part")
    blocks = status_part.get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise _malformed("no per-recipient fields")
    message_id = _original_message_id(message)
    reports = []
    for number, block in enumerate(blocks[1:], start=1):
        reports.append(_recipient(number, block, message_id))
    return reports


def _recipient(number: int, block: Message, message_id: str | None) -> BounceReport:
    final = block.get("Final-Recipient")
    if not final or not _address(str(final)):
        raise _malformed(f"recipient {number} has no Final-Recipient")
    action = str(block.get("Action", "")).strip().lower()
    if action not in ACTIONS:
        raise _malformed(
            f"recipient {number} has action {action or 'missing'!r}, expected one of "
            f"{', '.join(sorted(ACTIONS))}"
        )
    found = _STATUS.search(str(block.get("Status", "")))
    if found is None:
        raise _malformed(f"recipient {number} has no valid Status (like 5.1.1)")
    original = block.get("Original-Recipient")
    final_address = _address(str(final))
    diagnostic = str(block.get("Diagnostic-Code", ""))
    _type, sep, text = diagnostic.partition(";")
    return BounceReport(
        recipient=_address(str(original)) if original and _address(str(original)) else final_address,
        final_recipient=final_address,
        action=action,
        status=found.group(0),
        diagnostic=_SPACES.sub(" ", (text if sep else diagnostic)).strip(),
        original_message_id=message_id,
    )
