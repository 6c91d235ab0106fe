"""Opt-in engagement tracking: signed per-delivery tokens for the open pixel and tracked links.

Off by default (``[tracking] opens clicks``): a tracking pixel or a rewritten link tells a
third party, or a state watching the network, that someone opened an alert about a defender.
When an organisation turns it on, each email delivery gets:

- an open pixel ``/t/o/{token}.gif``; the token names the delivery;
- tracked links ``/t/c/{token}`` for every http(s) link of the HTML part; the token names the
  delivery *and* the destination, so the redirect can only ever go where the message pointed
  (never an open redirect: a changed URL breaks the signature).

A token is signed by ``alerts.core.signing`` with its own salt (current and old keys), so a
token of another kind (unsubscribe links, sessions) never verifies here. Tokens of messages
sent before, ``base64url(payload) "." base64url(HMAC-SHA256)``, are still read under the same
keys. A forged or garbled token is refused before anything asks the database.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import BadSignature

from alerts.core import urls
from alerts.core.hrefs import is_trackable, link_spans
from alerts.core.signing import TRACK, Signing

_B64 = re.compile(r"^[A-Za-z0-9_-]{1,4096}$")


class TrackKind(StrEnum):
    """What a tracking token is for."""

    OPEN = "o"  # the pixel: /t/o/{token}.gif
    CLICK = "c"  # a tracked link: /t/c/{token}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tracked:
    """What a verified token names."""

    kind: TrackKind
    delivery_id: int
    url: str = ""  # clicks only: the one destination this token may redirect to


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not _B64.match(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


class TrackingLinks:
    """Signs and reads tracking tokens; builds a delivery's pixel and link URLs."""

    def __init__(
        self, signing: Signing, *, public_url: str, opens: bool = False, clicks: bool = False
    ) -> None:
        self._signing = signing
        self._serializer = signing.serializer(TRACK)
        self.public_url = public_url.rstrip("/")
        self.opens = opens
        self.clicks = clicks

    def token(self, kind: TrackKind, delivery_id: int, url: str = "") -> str:
        """A signed token naming the delivery (and, for a click, its destination)."""
        if kind is TrackKind.CLICK and not is_trackable(url):
            raise ValueError("a tracked link needs an http(s) URL")
        return self._serializer.dumps([kind.value, delivery_id, url])

    def read(self, token: str, kind: TrackKind) -> Tracked | None:
        """What a token names; None when it is garbled, forged or of another kind."""
        if len(token) > 8192:
            return None
        try:
            value = self._serializer.loads(token)
        except BadSignature:
            value = self._read_legacy(token)
        if (
            not isinstance(value, list)
            or len(value) != 3
            or value[0] != kind.value
            or not isinstance(value[1], int)
            or isinstance(value[1], bool)
            or not 0 < value[1] < 10**18
            or not isinstance(value[2], str)
        ):
            return None
        if kind is TrackKind.CLICK and not is_trackable(value[2]):
            return None
        return Tracked(kind=kind, delivery_id=value[1], url=value[2])

    def _read_legacy(self, token: str) -> list[object] | None:
        """[kind, delivery id, url] from a token of the format used before (same keys)."""
        encoded, dot, mac = token.partition(".")
        payload = _unb64(encoded)
        # compared as text: one token per payload (base64's unused low bits may not vary)
        if not dot or payload is None or _b64(payload) != encoded or not _B64.match(mac):
            return None
        if not self._signing.legacy_match(b"alerts.track:", payload, mac):
            return None
        prefix, _, rest = payload.decode("ascii", "replace").partition(":")
        number, _, url = rest.partition(":")
        if not number.isdigit() or len(number) > 18:
            return None
        return [prefix, int(number), url]

    def pixel_url(self, delivery_id: int) -> str:
        """The open pixel of one delivery."""
        return urls.open_pixel(self.public_url, self.token(TrackKind.OPEN, delivery_id))

    def click_url(self, delivery_id: int, url: str) -> str:
        """The tracked form of one link of one delivery."""
        return urls.tracked_click(self.public_url, self.token(TrackKind.CLICK, delivery_id, url))

    def extra(self, delivery_id: int, html_text: str | None) -> dict[str, object]:
        """Per-recipient ``RenderedMessage.extra`` entries for an HTML email: ``pixel_url``
        and ``link_urls`` ({original URL: tracked URL}), each only when switched on."""
        if html_text is None:
            return {}
        out: dict[str, object] = {}
        if self.opens:
            out["pixel_url"] = self.pixel_url(delivery_id)
        if self.clicks:
            urls = {url for _, _, url in link_spans(html_text)}
            if urls:
                out["link_urls"] = {url: self.click_url(delivery_id, url) for url in sorted(urls)}
        return out
