"""Every signature the service makes, with one library (itsdangerous) and key rotation.

One ``Signing`` holds ``[server] secret_key`` and ``[server] old_secret_keys``. Each kind of
signed value has its own salt, so a value signed for one purpose never verifies for another
(an unsubscribe token is not a session, a tracking token is not a confirmation):

=====================  ============================  ======================================
kind                   salt                          signed value
=====================  ============================  ======================================
sign-in session        ``alerts.session``            [user id, nonce, user fingerprint], timed
user fingerprint       ``alerts.session.user``       the password hash and session epoch
CSRF token             ``alerts.csrf``               the session nonce (or pre-sign-in cookie)
subscription confirm   ``alerts.subscribe.confirm``  [contact id, contact token], timed
unsubscribe/prefs      ``alerts.link``               the contact's random token
tracking pixel/link    ``alerts.track``              [kind, delivery id, destination URL]
=====================  ============================  ======================================

VERP return paths (``alerts.core.verp``) use the same keys and the same rotation, in a hex
format of their own because relays may change the case of an address.

Rotation: the current key signs; the current key and every old key verify. So after a
rotation (the old key moved to ``old_secret_keys``) links in messages already sent, pending
confirmations and open sessions keep working; once a key is removed from the list, nothing it
signed verifies any more.

Formats used before this module (kept, so links in mailboxes keep working): unsubscribe and
preference links ``<token>.<HMAC-SHA256>`` and tracking tokens
``<b64 payload>.<HMAC-SHA256>``, each MAC over a domain separator. ``legacy_macs`` computes
them under every key, current and old, so they obey rotation like everything else. Confirmation
links were signed with itsdangerous's default SHA-1 digest and the same salt: they are read
with ``timed(CONFIRM, sha1_fallback=True)`` too until they expire (days). Old session cookies are not
read: they last hours, and an officer signs in once more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from itsdangerous import Signer, URLSafeSerializer, URLSafeTimedSerializer

SESSION = "alerts.session"
USER = "alerts.session.user"
CSRF = "alerts.csrf"
CONFIRM = "alerts.subscribe.confirm"
LINK = "alerts.link"
TRACK = "alerts.track"
SECOND_STEP = "alerts.session.second_step"


class Signing:
    """Signers for each kind of value, from the current key and the old ones."""

    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()) -> None:
        if not secret_key:
            raise ValueError("secret_key is empty")
        # itsdangerous signs with the last key and verifies with any
        self.keys = [key for key in old_keys if key and key != secret_key] + [secret_key]

    def timed(self, salt: str, *, sha1_fallback: bool = False) -> URLSafeTimedSerializer:
        """A serializer whose tokens carry their signing time (sessions, confirmations).

        ``sha1_fallback``: also accept itsdangerous's default SHA-1 digest, with which
        confirmation links were signed before (they expire after days; never signs).
        """
        return URLSafeTimedSerializer(
            self.keys,
            salt=salt,
            signer_kwargs={"digest_method": hashlib.sha256},
            fallback_signers=[{"digest_method": hashlib.sha1}] if sha1_fallback else None,
        )

    def serializer(self, salt: str) -> URLSafeSerializer:
        """A serializer of JSON values without a time (tracking tokens)."""
        return URLSafeSerializer(self.keys, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})

    def signer(self, salt: str) -> Signer:
        """A signer of plain strings: ``value.signature`` (unsubscribe links, CSRF, fingerprints)."""
        return Signer(self.keys, salt=salt, digest_method=hashlib.sha256)

    def legacy_macs(self, domain: bytes, payload: bytes) -> list[str]:
        """The pre-itsdangerous MAC of ``payload`` under every key (``domain`` separated them)."""
        return [
            base64.urlsafe_b64encode(hmac.new(key.encode("utf-8"), domain + payload, hashlib.sha256).digest())
            .rstrip(b"=")
            .decode("ascii")
            for key in self.keys
        ]

    def legacy_match(self, domain: bytes, payload: bytes, mac: str) -> bool:
        """Whether ``mac`` is the old-format MAC of ``payload`` under one of the keys."""
        given = mac.encode("ascii", "replace")
        # every key is compared, so the time taken does not tell which one matched
        found = False
        for expected in self.legacy_macs(domain, payload):
            found |= hmac.compare_digest(given, expected.encode("ascii"))
        return found
