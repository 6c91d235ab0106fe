"""Opt-in engagement tracking: signed per-delivery tokens for the open pixel and tracked links.

Off by default (``[tracking] opens clicks``): a tracking pixel or a rewritten link tells a
third party, or a state watching the network, that someone opened an alert about a defender.
When an organisation turns it on, each email delivery gets:

- an open pixel ``/t/o/{token}.gif``; the token names the delivery;
- tracked links ``/t/c/{token}`` for every http(s) link of the HTML part; the token names the
  delivery *and* the destination, so the redirect can only ever go where the message pointed
  (never an open redirect: a changed URL breaks the signature).

A token is ``base64url(payload) "." base64url(HMAC-SHA256)`` over ``[server] secret_key``
with its own domain separator, so a token of another kind (unsubscribe links, sessions) never
verifies here. A forged or garbled token is refused before anything asks the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from alerts.core import urls
from alerts.core.hrefs import is_trackable, link_spans

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
        self, secret_key: str, *, public_url: str, opens: bool = False, clicks: bool = False
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key is empty")
        self._key = secret_key.encode("utf-8")
        self.public_url = public_url.rstrip("/")
        self.opens = opens
        self.clicks = clicks

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"alerts.track:" + payload, hashlib.sha256).digest()

    def token(self, kind: TrackKind, delivery_id: int, url: str = "") -> str:
        """A signed token naming the delivery (and, for a click, its destination)."""
        if kind is TrackKind.CLICK and not is_trackable(url):
            raise ValueError("a tracked link needs an http(s) URL")
        payload = f"{kind.value}:{delivery_id}:{url}".encode("ascii")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def read(self, token: str, kind: TrackKind) -> Tracked | None:
        """What a token names; None when it is garbled, forged or of another kind."""
        encoded, dot, mac = token.partition(".")
        payload = _unb64(encoded)
        # compared as text: one token per payload (base64's unused low bits may not vary)
        if not dot or payload is None or _b64(payload) != encoded or not _B64.match(mac):
            return None
        if not hmac.compare_digest(mac.encode("ascii"), _b64(self._mac(payload)).encode("ascii")):
            return None
        prefix, _, rest = payload.decode("ascii", "replace").partition(":")
        number, _, url = rest.partition(":")
        if prefix != kind.value or not number.isdigit() or len(number) > 18:
            return None
        if kind is TrackKind.CLICK and not is_trackable(url):
            return None
        return Tracked(kind=kind, delivery_id=int(number), url=url)

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
