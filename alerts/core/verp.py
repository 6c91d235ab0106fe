"""VERP return paths (``[bounces] verp = true``): the delivery in the envelope sender.

With VERP each email is sent with the envelope sender ``<local>+d<delivery id>-<mac>@<domain>``
built from the channel's own sender (``alerts+d42-5f0c…@example.org``). A relay returns a
bounce to that address, so the bounce names its delivery even when it quotes nothing of the
message (many non-standard bounces don't). The MAC (HMAC-SHA256 over ``[server] secret_key``,
its own domain separator, 64 bits in lower-case hex) makes the address unforgeable: a report
sent to a made-up tag names no delivery. Hex, because some relays lower-case the return path.

The relay must deliver ``<local>+anything@<domain>`` to the LMTP listener (Postfix:
``recipient_delimiter = +`` and a transport entry for the address).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

_TAG = re.compile(r"^d([1-9][0-9]{0,17})-([0-9a-f]{16})$")


def return_path(sender: str, tag: str) -> str:
    """``alerts@example.org`` with tag ``d42-…`` → ``alerts+d42-…@example.org``."""
    local, at, domain = sender.rpartition("@")
    if not at or not local:
        raise ValueError("a VERP sender needs local@domain")
    return f"{local}+{tag}@{domain}"


def split(address: str) -> tuple[str, str | None]:
    """``alerts+d42-…@example.org`` → (``alerts@example.org``, ``d42-…``); no tag → (address, None)."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    base, plus, tag = local.partition("+")
    if not at or not plus:
        return address.strip().strip("<>"), None
    return f"{base}@{domain}", tag


class Verp:
    """Signs delivery ids into VERP tags and reads them back.

    Key rotation as in ``alerts.core.signing``: the current key signs, the current key and
    ``old_keys`` (``[server] old_secret_keys``) verify, so a bounce of a message sent before a
    rotation still names its delivery. (Not an itsdangerous signature: the tag must survive a
    relay that lower-cases the return path, hence hex.)
    """

    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()) -> None:
        if not secret_key:
            raise ValueError("secret_key is empty")
        self._key = secret_key.encode("utf-8")
        self._keys = [self._key, *(k.encode("utf-8") for k in old_keys if k and k != secret_key)]

    @staticmethod
    def _mac(key: bytes, delivery_id: int) -> str:
        digest = hmac.new(key, f"alerts.verp:{delivery_id}".encode("ascii"), hashlib.sha256)
        return digest.hexdigest()[:16]

    def tag(self, delivery_id: int) -> str:
        """The tag naming one delivery: ``d42-<mac>``."""
        return f"d{delivery_id}-{self._mac(self._key, delivery_id)}"

    def delivery_id(self, address: str) -> int | None:
        """The delivery a VERP address names; None when it has no tag or a forged one."""
        _base, tag = split(address)
        found = _TAG.match((tag or "").lower())
        if found is None:
            return None
        number = int(found.group(1))
        matched = False
        for key in self._keys:  # every key compared: the time taken does not tell which
            matched |= hmac.compare_digest(found.group(2), self._mac(key, number))
        return number if matched else None
