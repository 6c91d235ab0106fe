"""Email message bytes, built for speed and header safety.

Building a message from scratch with the ``email`` package costs about a millisecond. Every
recipient of one ``RenderedContent`` gets the same body, so the MIME body (text + HTML parts,
attachments) is built and serialised once and cached; each message only prepends its own
header block as bytes (From, To, Subject, Date, Message-ID, Reply-To, List-Unsubscribe,
In-Reply-To/References).

Header safety: nothing from a name, subject, address, URL or id can add a header line.
Control characters (CR, LF, TAB, NUL…: the one-line policy of ``alerts.core.text``) in names
and subjects are folded to one space; an address that is not one valid address, or a URL or
Message-ID that is not plain printable ASCII, is refused with ``ValidationError`` naming the
field (the channel answers PERMANENT).
"""

from __future__ import annotations

import base64
import email.policy
import html
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email import quoprimime
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

import dkim
import email_validator

from alerts.core.errors import ValidationError
from alerts.core.hrefs import link_spans, pixel_position
from alerts.core.text import REFUSED_IN_LINE, one_line
from alerts.core.types import Attachment, RenderedContent, RenderedMessage

logger = logging.getLogger(__name__)

# 7bit: bodies go out quoted-printable or base64, so no server needs 8BITMIME.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
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
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
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


@dataclass(frozen=True, slots=True)
class _Tracked:
    """A shared body with per-recipient slots in its HTML part (opt-in tracking).

    The HTML part goes out quoted-printable, and a soft line break (``=CRLF``) decodes to
    nothing, so a recipient's pixel and tracked links are spliced in between pre-encoded
    pieces, each put on its own lines: the body is still built and encoded once per content.
    """

    subject: bytes
    before: bytes  # MIME headers and parts up to the HTML part's payload
    pieces: tuple[bytes, ...]  # the HTML, QP-encoded, between the slots (one more than slots)
    slots: tuple[tuple[str, str] | None, ...]  # (original attribute text, URL) per link; None: the pixel
    after: bytes  # the rest of the MIME body after the HTML payload


_SOFT_BREAK = b"=\r\n"


def _qp(text: str) -> bytes:
    """Quoted-printable, CRLF lines of at most 76 characters (as email.contentmanager does)."""
    return quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), 76, "\r\n").encode("ascii")


def pixel_tag(url: str) -> str:
    """The 1x1 open-tracking image."""
    return f'<img src="{html.escape(url)}" width="1" height="1" alt="" style="display:block;border:0;">'


def clean_text(text: str, *, limit: int) -> str:
    """Fold every run of control characters (CR, LF, TAB…) to one space; trim to ``limit``."""
    return one_line(text)[:limit]


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
    if len(parsed) != 1 or REFUSED_IN_LINE.search(value) or not _LOOSE_ADDRESS.fullmatch(parsed[0][1]):
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


def build_body(
    content: RenderedContent, attachments: tuple[Attachment, ...] = (), *, html_placeholder: str | None = None
) -> bytes:
    """The MIME entity shared by all recipients: text (+ HTML) (+ attachments), CRLF lines.

    With ``html_placeholder``, the HTML part holds only that line, quoted-printable (see _Tracked)."""
    part = EmailMessage(policy=_POLICY)
    part.set_content(content.text, charset="utf-8")
    if content.html is not None and html_placeholder is not None:
        part.add_alternative(html_placeholder + "\n", subtype="html", charset="utf-8", cte="quoted-printable")
    elif content.html is not None:
        part.add_alternative(content.html, subtype="html", charset="utf-8")
    for attachment in attachments:
        ctype = attachment.content_type.lower()
        maintype, subtype = (
            ctype.split("/") if _CONTENT_TYPE.fullmatch(ctype) else ("application", "octet-stream")
        )
        part.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=safe_filename(attachment.filename)
        )
    return part.as_bytes(policy=_POLICY)


class MessageBuilder:
    """Turns RenderedMessages into DATA payloads; caches each content's body (bounded LRU)."""

    def __init__(
        self,
        *,
        from_: str,
        reply_to: str = "",
        dkim_options: DkimOptions | None = None,
        cache_size: int = 256,
    ) -> None:
        from_header, self.sender = parse_mailbox(from_, field="from")
        self._fixed = f"From: {from_header}\r\n".encode("ascii")
        if reply_to:
            reply_header, _ = parse_mailbox(reply_to, field="reply_to")
            self._fixed += f"Reply-To: {reply_header}\r\n".encode("ascii")
        self._dkim = dkim_options
        self._cache: OrderedDict[tuple[RenderedContent, tuple[Attachment, ...]], _Body] = OrderedDict()
        self._tracked: OrderedDict[tuple[RenderedContent, tuple[Attachment, ...], bool, bool], _Tracked] = (
            OrderedDict()
        )
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

    def _tracked_body(self, message: RenderedMessage, *, pixel: bool, links: bool) -> _Tracked:
        key = (message.content, message.attachments, pixel, links)
        found = self._tracked.get(key)
        if found is not None:
            self._tracked.move_to_end(key)
            return found
        text = message.content.html or ""
        cuts: list[tuple[int, int, tuple[str, str] | None]] = []
        if links:
            cuts.extend((start, end, (text[start:end], url)) for start, end, url in link_spans(text))
        if pixel:
            at = pixel_position(text)
            cuts.append((at, at, None))
        cuts.sort(key=lambda cut: cut[0])
        pieces, position = [], 0
        for start, end, _ in cuts:
            pieces.append(_qp(text[position:start]))
            position = end
        pieces.append(_qp(text[position:]))
        placeholder = f"alerts-html-{secrets.token_hex(16)}"
        before, found_at, after = build_body(
            message.content, message.attachments, html_placeholder=placeholder
        ).partition(placeholder.encode("ascii"))
        if not found_at:  # pragma: no cover - the email package keeps a short ASCII line as is
            raise AssertionError("HTML placeholder not found in the serialised body")
        body = _Tracked(
            subject=_subject_line(message.content.subject),
            before=before,
            pieces=tuple(pieces),
            slots=tuple(cut[2] for cut in cuts),
            after=after,
        )
        self._tracked[key] = body
        if len(self._tracked) > self._cache_size:
            self._tracked.popitem(last=False)
        return body

    def _body_for(self, message: RenderedMessage) -> _Body:
        """The shared body, or (opt-in tracking) the shared body with this recipient's pixel and links."""
        pixel_url = message.extra.get("pixel_url")
        link_urls: dict[str, str] = message.extra.get("link_urls") or {}
        if message.content.html is None or (pixel_url is None and not link_urls):
            return self._body(message)
        for url in (pixel_url, *link_urls.values()):
            if url is not None and not _URL.fullmatch(url):
                raise ValidationError("tracking: not a plain http(s) URL.", details={"field": "tracking_url"})
        shared = self._tracked_body(message, pixel=pixel_url is not None, links=bool(link_urls))
        parts = [shared.before, shared.pieces[0]]
        for slot, piece in zip(shared.slots, shared.pieces[1:], strict=True):
            if slot is None:
                value = pixel_tag(str(pixel_url))
            else:
                tracked = link_urls.get(slot[1])
                value = html.escape(tracked) if tracked is not None else slot[0]
            parts += (_SOFT_BREAK, _qp(value), _SOFT_BREAK, piece)
        parts.append(shared.after)
        raw = b"".join(parts)
        stuffed = _LEADING_DOT.sub(b"..", raw)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        return _Body(subject=shared.subject, raw=raw, stuffed=stuffed + b".\r\n")

    def _date_header(self, now: float) -> bytes:
        second = int(now)
        if second != self._date_second:
            # RFC 5322 §3.3: a numeric zone, "+0000" for UTC ("GMT" is obsolete syntax, §4.3)
            stamp = format_datetime(datetime.fromtimestamp(second, UTC))
            self._date = f"Date: {stamp}\r\n".encode("ascii")
            self._date_second = second
        return self._date

    def build(self, message: RenderedMessage, *, now: float | None = None) -> tuple[str, bytes]:
        """(envelope recipient, DATA payload) for one message; the payload is dot-stuffed and
        ends in ``.\\r\\n``. Raises ValidationError naming a field that cannot be made safe."""
        recipient = message.recipient
        address = check_address(recipient.address, field="recipient address")
        if not _MSG_ID.fullmatch(message.message_id):
            raise ValidationError(
                "message_id: not a valid <id@domain> Message-ID.", details={"field": "message_id"}
            )
        lines = [f"To: {format_address(recipient.name, address)}\r\nMessage-ID: {message.message_id}\r\n"]
        thread = [mid for mid in message.thread_ids if _MSG_ID.fullmatch(mid)]
        if thread:
            lines.append(f"In-Reply-To: {thread[-1]}\r\nReferences: {' '.join(thread)}\r\n")
        if recipient.unsubscribe_url is not None:
            if not _URL.fullmatch(recipient.unsubscribe_url):
                raise ValidationError(
                    "unsubscribe_url: not a plain http(s) or mailto URL.",
                    details={"field": "unsubscribe_url"},
                )
            lines.append(
                f"List-Unsubscribe: <{recipient.unsubscribe_url}>\r\n"
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            )
        body = self._body_for(message)
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
