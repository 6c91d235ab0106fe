"""VERP return paths: the signed delivery id in the envelope sender, read back from the
address a bounce comes to (alerts.core.verp), and carried by the email channel."""

from __future__ import annotations

import dataclasses

import pytest

from alerts.core.config import EmailSettings
from alerts.core.verp import Verp, return_path, split
from channels.email import EmailChannel
from tests.channels.test_email import make_message
from tests.smtpd import SMTPTestServer

VERP = Verp("a-long-enough-test-secret-key-for-verp")


def test_tag_round_trip_and_lower_casing_relays() -> None:
    address = return_path("alerts@example.org", VERP.tag(42))
    assert address.startswith("alerts+d42-") and address.endswith("@example.org")
    assert VERP.delivery_id(address) == 42
    assert VERP.delivery_id(address.upper()) == 42  # some relays change the case
    assert VERP.delivery_id(f"<{address}>") == 42
    assert split(address) == ("alerts@example.org", VERP.tag(42))


@pytest.mark.parametrize(
    "address",
    [
        "alerts@example.org",  # no tag
        return_path("alerts@example.org", VERP.tag(42)).replace("d42-", "d43-"),  # another id
        return_path("alerts@example.org", Verp("another-secret-key-entirely-xx").tag(42)),
        "alerts+d42-@example.org",
        "alerts+d0-0000000000000000@example.org",
        "alerts+d42-zzzzzzzzzzzzzzzz@example.org",
        "not an address",
    ],
)
def test_forged_or_garbled_tags_name_nothing(address: str) -> None:
    assert VERP.delivery_id(address) is None


def test_return_path_needs_a_mailbox() -> None:
    with pytest.raises(ValueError, match="local@domain"):
        return_path("localhost", "d1-0000000000000000")


async def test_email_channel_sends_with_the_verp_return_path(
    smtpd_settings: EmailSettings, smtpd_server: SMTPTestServer
) -> None:
    channel = EmailChannel(smtpd_settings)
    await channel.open()
    try:
        tagged = dataclasses.replace(make_message(1), delivery_id=7, verp_tag=VERP.tag(7))
        await channel.send(tagged)
        await channel.send(make_message(2))  # no tag: the plain sender
    finally:
        await channel.close()
    first, second = smtpd_server.messages()
    assert VERP.delivery_id(first.mail_from) == 7
    assert first.mail_from == f"alerts+{VERP.tag(7)}@example.org"
    assert second.mail_from == "alerts@example.org"
    assert b"alerts+" not in first.raw  # the tag is in the envelope only, never in a header
