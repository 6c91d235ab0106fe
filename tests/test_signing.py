"""One signing scheme with key rotation: for every kind of signed value, one signed before a
rotation still verifies after it (the old key in ``old_secret_keys``), one signed with a key
that was removed does not; the formats of links sent before this scheme keep working under
the same rule; and no kind verifies as another."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer

from alerts.contacts.subscriptions import Signer
from alerts.core.signing import LINK, Signing
from alerts.delivery.links import TrackingLinks, TrackKind
from alerts.store.models import Contact, User
from alerts.web import auth

OLD = "the-key-before-the-rotation-0123"
NEW = "the-key-after-the-rotation-45678"
CONTACT_TOKEN = "abcdefghijklmnopqrstuvwxyz012345"

BEFORE = Signing(OLD)  # the deployment before the rotation
ROTATED = Signing(NEW, [OLD])  # after: the old key kept for what was already sent
REMOVED = Signing(NEW)  # later: the old key removed


@dataclass(frozen=True)
class Kind:
    """Sign with one Signing, read with another: the value back, or None."""

    name: str
    roundtrip: Callable[[Signing, Signing], object]
    expected: object


def _user() -> User:
    return User(
        id=7, name="olga", role="officer", password_hash="$argon2id$v=19$stub", session_epoch=3, active=True
    )


def _session(signer: Signing, reader: Signing) -> object:
    state = auth.AuthState(signing=signer, secure=False)
    cookie = auth.issue(state, _user())
    parsed = auth.parse(auth.AuthState(signing=reader, secure=False), cookie)
    if parsed is None:
        return None
    session, fingerprint = parsed
    users = auth.AuthState(signing=reader, secure=False).users
    return session.user_id if users.verify_signature(auth.user_value(_user()), fingerprint) else None


def _csrf(signer: Signing, reader: Signing) -> object:
    token = auth.AuthState(signing=signer, secure=False).csrf.get_signature("session|nonce").decode()
    return (
        "ok"
        if auth.AuthState(signing=reader, secure=False).csrf.verify_signature("session|nonce", token)
        else None
    )


def _contact() -> Contact:
    return Contact(id=11, token=CONTACT_TOKEN, status="pending")


def _confirm(signer: Signing, reader: Signing) -> object:
    return Signer(reader).read_confirm(Signer(signer).confirm_token(_contact()))


def _link(signer: Signing, reader: Signing) -> object:
    return Signer(reader).read_link(Signer(signer).link_token(CONTACT_TOKEN))


def _click(signer: Signing, reader: Signing) -> object:
    token = TrackingLinks(signer, public_url="https://x").token(TrackKind.CLICK, 5, "https://example.org/a")
    found = TrackingLinks(reader, public_url="https://x").read(token, TrackKind.CLICK)
    return None if found is None else (found.delivery_id, found.url)


def _open(signer: Signing, reader: Signing) -> object:
    token = TrackingLinks(signer, public_url="https://x").token(TrackKind.OPEN, 5)
    found = TrackingLinks(reader, public_url="https://x").read(token, TrackKind.OPEN)
    return None if found is None else found.delivery_id


KINDS = [
    Kind("session", _session, 7),
    Kind("csrf", _csrf, "ok"),
    Kind("confirm", _confirm, (11, CONTACT_TOKEN)),
    Kind("unsubscribe/preferences link", _link, CONTACT_TOKEN),
    Kind("tracked click", _click, (5, "https://example.org/a")),
    Kind("open pixel", _open, 5),
]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_signed_before_a_rotation_works_after_it_and_not_once_the_key_is_removed(kind: Kind) -> None:
    assert kind.roundtrip(BEFORE, BEFORE) == kind.expected
    assert kind.roundtrip(BEFORE, ROTATED) == kind.expected  # old key kept: still works
    assert kind.roundtrip(ROTATED, ROTATED) == kind.expected  # signed now, with the new key
    assert kind.roundtrip(ROTATED, REMOVED) == kind.expected  # ... which stays
    assert kind.roundtrip(BEFORE, REMOVED) is None  # the old key removed: refused
    assert kind.roundtrip(Signing("somebody-else-entirely-0123"), ROTATED) is None


def test_the_new_key_signs_and_an_old_key_never_does() -> None:
    # what ROTATED signs verifies under the new key alone, not under the old key alone
    token = Signer(ROTATED).link_token(CONTACT_TOKEN)
    assert Signer(REMOVED).read_link(token) == CONTACT_TOKEN
    assert Signer(BEFORE).read_link(token) is None


def test_one_kind_never_verifies_as_another() -> None:
    link = Signer(ROTATED).link_token(CONTACT_TOKEN)
    confirm = Signer(ROTATED).confirm_token(_contact())
    links = TrackingLinks(ROTATED, public_url="https://x")
    click = links.token(TrackKind.CLICK, 5, "https://example.org/a")
    state = auth.AuthState(signing=ROTATED, secure=False)
    cookie = auth.issue(state, _user())
    assert Signer(ROTATED).read_link(confirm) is None
    assert Signer(ROTATED).read_confirm(link) is None and Signer(ROTATED).read_confirm(click) is None
    assert links.read(confirm, TrackKind.CLICK) is None and links.read(cookie, TrackKind.CLICK) is None
    assert auth.parse(state, click) is None and auth.parse(state, confirm) is None
    # the token part of an unsubscribe link signed as a CSRF value: refused
    csrf = state.csrf.get_signature(CONTACT_TOKEN).decode()
    assert Signer(ROTATED).read_link(f"{CONTACT_TOKEN}.{csrf}") is None


# -- links sent before this scheme ---------------------------------------------------------------


def _legacy_link(key: str) -> str:
    """An unsubscribe/preferences token as messages carried it before (HMAC-SHA256 of the token)."""
    digest = hmac.new(key.encode(), b"alerts.link:" + CONTACT_TOKEN.encode(), hashlib.sha256).digest()
    return f"{CONTACT_TOKEN}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def _legacy_tracking(key: str, payload: bytes) -> str:
    mac = hmac.new(key.encode(), b"alerts.track:" + payload, hashlib.sha256).digest()
    b64 = [base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in (payload, mac)]
    return ".".join(b64)


def test_unsubscribe_links_already_in_mailboxes_keep_working_under_the_same_keys() -> None:
    sent = _legacy_link(OLD)
    assert Signer(BEFORE).read_link(sent) == CONTACT_TOKEN  # the day it was sent
    assert Signer(ROTATED).read_link(sent) == CONTACT_TOKEN  # after a rotation
    assert Signer(REMOVED).read_link(sent) is None  # its key removed
    assert Signer(ROTATED).read_link(sent[:-2] + ("AA" if not sent.endswith("AA") else "BB")) is None
    # the bare random token of older List-Unsubscribe headers: unguessable, still accepted
    assert Signer(REMOVED).read_link(CONTACT_TOKEN) == CONTACT_TOKEN


def test_tracking_tokens_already_sent_keep_working_under_the_same_keys() -> None:
    click = _legacy_tracking(OLD, b"c:5:https://example.org/a")
    pixel = _legacy_tracking(OLD, b"o:5:")
    rotated = TrackingLinks(ROTATED, public_url="https://x")
    found = rotated.read(click, TrackKind.CLICK)
    assert found is not None and (found.delivery_id, found.url) == (5, "https://example.org/a")
    assert rotated.read(pixel, TrackKind.OPEN) is not None
    assert rotated.read(pixel, TrackKind.CLICK) is None and rotated.read(click, TrackKind.OPEN) is None
    evil = _legacy_tracking("not-our-key-0123456789", b"c:5:https://evil.example/")
    assert rotated.read(evil, TrackKind.CLICK) is None
    assert TrackingLinks(REMOVED, public_url="https://x").read(click, TrackKind.CLICK) is None


def test_pending_confirmations_signed_before_keep_working_until_they_expire() -> None:
    # itsdangerous's defaults (SHA-1), as confirmation links were signed before
    sent = URLSafeTimedSerializer(OLD, salt="alerts.subscribe.confirm").dumps([11, CONTACT_TOKEN])
    assert Signer(ROTATED).read_confirm(sent) == (11, CONTACT_TOKEN)
    assert Signer(ROTATED).read_confirm(sent, max_age=timedelta(seconds=-1)) is None  # expired
    assert Signer(REMOVED).read_confirm(sent) is None


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="secret_key is empty"):
        Signing("")


def test_verp_return_paths_follow_the_same_rotation() -> None:
    from alerts.core.verp import Verp, return_path

    sent = return_path("alerts@example.org", Verp(OLD).tag(42))  # a bounce of a message sent before
    assert Verp(NEW, [OLD]).delivery_id(sent) == 42
    assert Verp(NEW, [OLD]).delivery_id(sent.upper()) == 42  # a relay that lower- or upper-cases
    assert Verp(NEW).delivery_id(sent) is None  # the old key removed
    assert Verp(OLD).delivery_id(return_path("alerts@example.org", Verp(NEW, [OLD]).tag(42))) is None


@pytest.mark.parametrize("signing", [BEFORE, ROTATED, REMOVED], ids=["one key", "rotated", "old removed"])
def test_link_tokens_are_exactly_what_itsdangerous_signs(signing: Signing) -> None:
    # link_token computes the signature itself (once-derived key): it must stay the very token
    # itsdangerous makes, or links already in mailboxes would stop verifying
    for contact_token in (CONTACT_TOKEN, "Zq3" * 11, "a-b_c" * 4):
        expected = signing.signer(LINK).sign(contact_token).decode("ascii")
        assert Signer(signing).link_token(contact_token) == expected
