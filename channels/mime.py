"""Email message bytes, built for speed and header safety.

Building a message from scratch with the ``email`` package costs about a millisecond. Every
recipient of one ``RenderedContent`` gets the same body, so the MIME body (text + HTML parts,
attachments) is built and serialised once and cached; each message only prepends its own
header block as bytes (From, To, Subject, Date, Message-ID, Reply-To, List-Unsubscribe,
In-Reply-To/References).

Header safety: nothing from a name, subject, address, URL or id can add a header line.
Control characters (CR, LF, TAB, NUL…) in names and subjects are folded to one space; an
address that is not one valid address, or a URL or Message-ID that is not plain printable
ASCII, is refused with ``ValidationError`` naming the field (the channel answers PERMANENT).
"""

from __future__ import annotations

import base64
import email.policy
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from email.header import Header
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

import dkim
import email_validator

from alerts.errors import ValidationError
from alerts.types import Attachment, RenderedContent, RenderedMessage

logger = logging.getLogger(__name__)

# 7bit: bodies go out quoted-printable or base64, so no server needs 8BITMIME.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_SIMPLE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    # Any syntactically valid host name, dotless ones too: the demo sends to name@localhost.
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# Printable ASCII without space, "<" and ">": a msg-id's inside, a URL inside <...>.
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_URL = re.compile(r"(?:https?|mailto):[\x21-\x3b\x3d\x3f-\x7e]+")
# Configured From/Reply-To may use a local domain (alerts@localhost).
_LOOSE_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
MAX_NAME = 200
MAX_SUBJECT = 500

#: Headers covered by the DKIM signature (absent ones are signed as absent).
DKIM_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to", b"references",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DkimOptions:
    """DKIM signing key: selector, domain and the PEM private key."""

    selector: str
    domain: str
    private_key: bytes


@dataclass(frozen=True, slots=True)
class _Body:
    subject: bytes  # b"Subject: ...\r\n"
    raw: bytes  # MIME-Version, Content-Type… headers, blank line, body (CRLF)
    stuffed: bytes  # raw with leading dots doubled and the final b".\r\n" (ready for DATA)


def clean_text(text: str, *, limit: int) -> str:
    """Fold every run of control characters (CR, LF, TAB…) to one space; trim to ``limit``."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def check_address(address: str, *, field: str) -> str:
    """The one ASCII email address in ``address``, or ValidationError naming ``field``."""
    address = address.strip()
    if _SIMPLE_ADDRESS.fullmatch(address):
        return address
    try:
        valid = email_validator.validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(
            f"{field}: not a single valid email address ({exc}).", details={"field": field}
        ) from None
    return str(valid.ascii_email or valid.normalized)


def format_address(name: str, address: str) -> str:
    """``Name <address>`` with the name quoted or RFC 2047-encoded; safe for one header."""
    name = clean_text(name, limit=MAX_NAME)
    if not name:
        return address
    if name.isascii():
        if not _ATOM_PHRASE.fullmatch(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        encoded = base64.b64encode(name.encode("utf-8")).decode("ascii")
        if len(encoded) <= 63:  # one encoded-word of at most 75 characters (RFC 2047)
            name = f"=?utf-8?b?{encoded}?="
        else:
            name = Header(name, "utf-8", header_name="To").encode(linesep="\r\n")
    return f"{name} <{address}>"


def parse_mailbox(value: str, *, field: str) -> tuple[str, str]:
    """Split a configured ``Name <address>`` into (header text, envelope address)."""
    parsed = getaddresses([value])
    if len(parsed) != 1 or _CONTROL.search(value) or not _LOOSE_ADDRESS.fullmatch(parsed[0][1]):
        raise ValidationError(f"{field}: {value!r} is not a single email address.", details={"field": field})
    name, address = parsed[0]
    return format_address(name, address), address


def safe_filename(filename: str) -> str:
    """An attachment filename without path components or control characters."""
    name = re.split(r"[\\/]", clean_text(filename, limit=1000))[-1].strip().lstrip(".")
    return name[:100] or "attachment"


def _subject_line(subject: str) -> bytes:
    subject = clean_text(subject, limit=MAX_SUBJECT)
    charset = "us-ascii" if subject.isascii() else "utf-8"
    encoded = Header(subject, charset, header_name="Subject").encode(linesep="\r\n")
    return f"Subject: {encoded}\r\n".encode("ascii")


def build_body(content: RenderedContent, attachments: tuple[Attachment, ...] = ()) -> bytes:
    """The MIME entity shared by all recipients: text (+ HTML) (+ attachments), CRLF lines."""
    part = EmailMessage(policy=_POLICY)
    part.set_content(content.text, charset="utf-8")
    if content.html is not None:
        part.add_alternative(content.html, subtype="html", charset="utf-8")
    for attachment in attachments:
        ctype = attachment.content_type.lower()
        maintype, subtype = ctype.split("/") if _CONTENT_TYPE.fullmatch(ctype) else ("application", "octet-stream")
        part.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=safe_filename(attachment.filename)
        )
    return part.as_bytes(policy=_POLICY)


class MessageBuilder:
    """Turns RenderedMessages into DATA payloads; caches each content's body (bounded LRU)."""

    def __init__(
        self, *, from_: str, reply_to: str = "", dkim_options: DkimOptions | None = None, cache_size: int = 256
    ) -> None:
        from_header, self.sender = parse_mailbox(from_, field="from")
        self._fixed = f"From: {from_header}\r\n".encode("ascii")
        if reply_to:
            reply_header, _ = parse_mailbox(reply_to, field="reply_to")
            self._fixed += f"Reply-To: {reply_header}\r\n".encode("ascii")
        self._dkim = dkim_options
        self._cache: OrderedDict[tuple[RenderedContent, tuple[Attachment, ...]], _Body] = OrderedDict()
        self._cache_size = cache_size
        self._date_second = -1
        self._date = b""

    def _body(self, message: RenderedMessage) -> _Body:
        key = (message.content, message.attachments)
        body = self._cache.get(key)
        if body is not None:
            self._cache.move_to_end(key)
            return body
        raw = build_body(message.content, message.attachments)
        stuffed = _LEADING_DOT.sub(b"..", raw)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        body = _Body(subject=_subject_line(message.content.subject), raw=raw, stuffed=stuffed + b".\r\n")
        self._cache[key] = body
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return body

    def _date_header(self, now: float) -> bytes:
        second = int(now)
        if second != self._date_second:
            self._date = f"Date: {formatdate(second, usegmt=True)}\r\n".encode("ascii")
            self._date_second = second
        return self._date

    def build(self, message: RenderedMessage, *, now: float | None = None) -> tuple[str, bytes]:
        """(envelope recipient, DATA payload) for one message; the payload is dot-stuffed and
        ends in ``.\\r\\n``. Raises ValidationError naming a field that cannot be made safe."""
        recipient = message.recipient
        address = check_address(recipient.address, field="recipient address")
        if not _MSG_ID.fullmatch(message.message_id):
            raise ValidationError("message_id: not a valid <id@domain> Message-ID.", details={"field": "message_id"})
        lines = [f"To: {format_address(recipient.name, address)}\r\nMessage-ID: {message.message_id}\r\n"]
        thread = [mid for mid in message.thread_ids if _MSG_ID.fullmatch(mid)]
        if thread:
            lines.append(f"In-Reply-To: {thread[-1]}\r\nReferences: {' '.join(thread)}\r\n")
        if recipient.unsubscribe_url is not None:
            if not _URL.fullmatch(recipient.unsubscribe_url):
                raise ValidationError(
                    "unsubscribe_url: not a plain http(s) or mailto URL.", details={"field": "unsubscribe_url"}
                )
            lines.append(
                f"List-Unsubscribe: <{recipient.unsubscribe_url}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
        body = self._body(message)
        head = b"".join(
            (self._fixed, "".join(lines).encode("ascii"), body.subject, self._date_header(now or time.time()))
        )
        if self._dkim is None:
            return address, head + body.stuffed
        signature: bytes = dkim.sign(
            head + body.raw,
            self._dkim.selector.encode("ascii"),
            self._dkim.domain.encode("ascii"),
            self._dkim.private_key,
            include_headers=list(DKIM_HEADERS),
        )
        return address, signature + head + body.stuffed
