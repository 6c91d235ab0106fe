"""Parsing delivery status notifications (RFC 3464 bounce reports) as real relays write them.

A DSN is a ``multipart/report; report-type=delivery-status`` message whose
``message/delivery-status`` part holds one block of per-message fields, then one block per
recipient (``Final-Recipient``, ``Action``, ``Status``, optional ``Original-Recipient`` and
``Diagnostic-Code``). The returned message, whole (``message/rfc822``) or its headers only
(``text/rfc822-headers``), gives the ``Message-ID`` we sent, which identifies the delivery.

Real relays bend the format, and each bend below is taken as the relay meant it:

- blank lines inside a block or between blocks (Office 365, Exchange, Amazon SES), and no
  blank line at all between the per-message and the per-recipient fields (AOL): blocks are
  not trusted; a recipient starts at each ``Final-Recipient`` (or an ``Original-Recipient``
  before it);
- the report wrapped in ``multipart/mixed`` (OpenSMTPD, gateways), or ``report-type``
  missing: the ``message/delivery-status`` part is what makes a DSN;
- ``Action: failed (comment)``, or an action RFC 3464 does not define (``failure``,
  ``expired``): the comment is dropped and an unknown word follows the Status class;
- a bare SMTP reply code as ``Status`` (``553 Too big``): its class, ``5.0.0``.

A recipient block that still makes no sense is left out with its reason in
``Dsn.refused``; the report is refused only when no recipient is left. Messages with no
delivery-status part at all are ``alerts.delivery.bounce_scan``'s (flufl.bounce) job, and
applying a report to deliveries is ``alerts.delivery.inbound``'s.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from alerts.core.errors import ValidationError

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
#: Status class (RFC 3463) → the action an unknown or missing ``Action`` word stands for.
ACTION_OF_CLASS = {"5": "failed", "4": "delayed", "2": "delivered"}
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY_CODE = re.compile(r"^\s*([245])\d\d\b")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_COMMENT = re.compile(r"\([^()]*\)")
_SPACES = re.compile(r"\s+")
_MESSAGE_ID_LINE = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,250}>)", re.I | re.M)
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient")
MAX_DSN_BYTES = 10 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BounceReport:
    """One recipient's line of a delivery status notification."""

    recipient: str  # Original-Recipient when given (what we sent to), else Final-Recipient
    final_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # "5.1.1"
    diagnostic: str = ""  # "550 5.1.1 <x@y>: User unknown" (may quote the address: DEBUG logs only)
    original_message_id: str | None = None  # "<alert-12.c34.<mac>@domain>"

    @property
    def hard(self) -> bool:
        """A permanent failure: the address should receive nothing more."""
        return self.action == "failed" and self.status.startswith("5")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dsn:
    """What one bounce message says: its usable recipients and the blocks left out."""

    reports: tuple[BounceReport, ...]
    refused: tuple[str, ...] = ()  # "recipient 2 has no Final-Recipient"
    original_message_id: str | None = None
    kind: str = "rfc3464"  # or "heuristic": recognised by flufl.bounce (alerts.delivery.bounce_scan)


def not_dsn(reason: str) -> ValidationError:
    """The error for a message that is not a delivery status notification."""
    return ValidationError(f"not a delivery status notification: {reason}", details={"reason": reason})


def malformed(reason: str) -> ValidationError:
    """The error for a DSN with no usable recipient block."""
    return ValidationError(f"malformed delivery status notification: {reason}", details={"reason": reason})


def read_message(raw: bytes) -> Message:
    """The parsed message (compat32: the most forgiving of malformed headers), size checked."""
    if not raw.strip():
        raise not_dsn("the message is empty")
    if len(raw) > MAX_DSN_BYTES:
        raise not_dsn(f"the message is larger than {MAX_DSN_BYTES} bytes")
    return message_from_bytes(raw, policy=policy.compat32)


def _parts(message: Message) -> Iterator[Message]:
    """Every part, without entering a returned message (it is ours, not the report)."""
    yield message
    if message.get_content_type() == "message/rfc822":
        return
    if message.get_content_type() == "message/delivery-status":
        return
    payload = message.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _parts(part)


def status_part(message: Message) -> Message | None:
    """The ``message/delivery-status`` part, wherever the relay put it."""
    return next((p for p in _parts(message) if p.get_content_type() == "message/delivery-status"), None)


def _status_text(part: Message) -> str:
    """The delivery-status fields as text, whatever blocks the MIME parser made of them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n".join(b.as_string(maxheaderlen=0) for b in payload if isinstance(b, Message))
    else:
        text = str(payload)
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if encoding == "base64":
            text = base64.b64decode("".join(text.split())).decode("utf-8", "replace")
        elif encoding == "quoted-printable":
            text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        pass  # not what the header claims: read it as it is
    return text


def paragraphs(text: str) -> list[list[tuple[str, str]]]:
    """The fields of each blank-line-separated paragraph, as ``(lower-case name, unfolded
    value)`` pairs; a stray line (no ``Name:``) only ends the field before it."""
    out: list[list[tuple[str, str]]] = [[]]
    continues = False
    for line in text.splitlines():
        if not line.strip():
            out.append([])
            continues = False
        elif line[:1] in (" ", "\t"):
            if continues:
                name, value = out[-1][-1]
                out[-1][-1] = (name, f"{value} {line.strip()}")
        elif (found := _FIELD.match(line)) is not None:
            out[-1].append((found.group(1).lower(), found.group(2).strip()))
            continues = True
        else:
            continues = False
    return [paragraph for paragraph in out if paragraph]


def _count(paragraph: list[tuple[str, str]], name: str) -> int:
    return sum(1 for field, _value in paragraph if field == name)


def recipient_blocks(text: str) -> list[dict[str, str]]:
    """The per-recipient field blocks of a delivery-status text.

    When the paragraphs are sound (each holds at most one recipient, and each after the first
    holds one), they are the blocks, whatever the order of their fields. Otherwise the fields
    are regrouped: a recipient starts at each ``Final-Recipient`` (or at an
    ``Original-Recipient`` before it); with one recipient only, the recipient fields written
    before it (Action, Status, Diagnostic-Code) are its own.
    """
    found = paragraphs(text)
    sound = all(
        _count(p, "final-recipient") <= 1 and _count(p, "original-recipient") <= 1 for p in found
    ) and all(_count(p, "final-recipient") + _count(p, "original-recipient") for p in found[1:])
    if sound:
        return [
            {name: value for name, value in reversed(p)}  # the first of a repeated field wins
            for p in found
            if any(name in _RECIPIENT_FIELDS for name, _value in p)
        ]
    blocks: list[dict[str, str]] = []
    before: dict[str, str] = {}
    current: dict[str, str] | None = None
    for name, value in (pair for p in found for pair in p):
        if name in _RECIPIENT_FIELDS and (
            current is None
            or name in current
            # Original-Recipient comes before its Final-Recipient, or straight after it
            or (name == "original-recipient" and "final-recipient" in current and len(current) > 1)
        ):
            current = {}
            blocks.append(current)
        (before if current is None else current).setdefault(name, value)
    if len(blocks) == 1:
        for name in ("action", "status", "diagnostic-code"):
            if name in before:
                blocks[0].setdefault(name, before[name])
    return blocks


def address(value: str) -> str:
    """``rfc822; Nobody@Example.com`` → ``Nobody@Example.com`` (angle brackets dropped)."""
    _type, sep, found = value.partition(";")
    return (found if sep else value).strip().strip("<>").strip()


def _returned_message_id(message: Message, raw: bytes) -> str | None:
    for part in _parts(message):
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip()
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                found = _MESSAGE_ID_LINE.search(text)
                if found is not None:
                    return found.group(1).decode("ascii", "replace")
    # the original quoted as text (qmail, Exim, gateways): the first Message-ID in the body
    _head, _sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    found = _MESSAGE_ID_LINE.search(body)
    return found.group(1).decode("ascii", "replace") if found is not None else None


def returned_message_id(raw: bytes) -> str | None:
    """The Message-ID of the message a bounce returns (or quotes), if it has one."""
    return _returned_message_id(read_message(raw), raw)


def read_dsn(raw: bytes) -> Dsn:
    """The recipients of an RFC 3464 DSN; ValidationError when it is none, or has none."""
    message = read_message(raw)
    report_type = str(message.get_param("report-type", "") or "").strip().lower()
    if message.get_content_type() == "multipart/report" and report_type not in ("", "delivery-status"):
        raise not_dsn(f"report type is {report_type}, expected delivery-status")
    part = status_part(message)
    if part is None:
        if message.get_content_type() == "multipart/report":
            raise not_dsn("it has no message/delivery-status part")
        raise not_dsn(f"content type is {message.get_content_type()}, expected multipart/report")
    blocks = recipient_blocks(_status_text(part))
    if not blocks:
        raise malformed("no per-recipient fields")
    message_id = _returned_message_id(message, raw)
    reports, refused = [], []
    for number, block in enumerate(blocks, start=1):
        report = _recipient(block, message_id)
        if isinstance(report, str):
            refused.append(f"recipient {number} {report}")
        else:
            reports.append(report)
    if not reports:
        raise malformed("; ".join(refused))
    return Dsn(reports=tuple(reports), refused=tuple(refused), original_message_id=message_id)


def parse_dsn(raw: bytes) -> list[BounceReport]:
    """The usable per-recipient reports of an RFC 3464 DSN; ValidationError for anything else."""
    return list(read_dsn(raw).reports)


def _status(block: dict[str, str]) -> str | None:
    """``Status``, else the class of a bare reply code there, else the Diagnostic-Code's."""
    diagnostic = block.get("diagnostic-code", "").partition(";")[2]
    for given in (block.get("status", ""), diagnostic):
        found = _STATUS.search(given)
        if found is not None:
            return found.group(0)
        code = _REPLY_CODE.match(given)
        if code is not None:
            return f"{code.group(1)}.0.0"
    return None


def _recipient(block: dict[str, str], message_id: str | None) -> BounceReport | str:
    """The report of one recipient block, or why it is left out."""
    original = address(block.get("original-recipient", ""))
    final = address(block.get("final-recipient", "")) or original
    if not final:
        return "has no Final-Recipient"
    status = _status(block)
    if status is None:
        return "has no valid Status (like 5.1.1)"
    words = _COMMENT.sub(" ", block.get("action", "")).split()
    action = words[0].lower() if words else ""
    if action not in ACTIONS:
        action = ACTION_OF_CLASS[status[0]]
    diagnostic = block.get("diagnostic-code", "")
    _type, sep, text = diagnostic.partition(";")
    return BounceReport(
        recipient=original or final,
        final_recipient=final,
        action=action,
        status=status,
        diagnostic=_SPACES.sub(" ", (text if sep else diagnostic)).strip(),
        original_message_id=message_id,
    )
