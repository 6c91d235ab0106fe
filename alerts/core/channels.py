"""Channel names, and which channels share an address: the one definition.

Four channels deliver alerts (DESIGN.md, "Channels"):

- ``email`` and ``press`` both deliver to a contact's **email address**. They share one
  address space: one suppression (an unsubscribe, a bounce) stops both, an email address is
  compared case-insensitively on both, and a contact's channel choice calls both "email"
  (press is the form of an alert that press and media contacts get by email).
- ``telegram`` delivers to a contact's Telegram chat (``alerts.core.telegram`` holds the syntax).
- ``webhook`` delivers to the one partner URL of the deployment, not to a contact.

Every module that needs a list of channels, or to know which address a channel uses,
imports it from here (``channels/`` included: it may import ``alerts.core`` only).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ChannelName(StrEnum):
    """A delivery channel (stored as the lower-case word in ``Delivery.channel``)."""

    EMAIL = "email"  # an email with text and HTML parts
    PRESS = "press"  # a press release by email, with embargo line and attachments
    TELEGRAM = "telegram"  # a Telegram message to a chat or channel
    WEBHOOK = "webhook"  # a signed JSON POST to the partner URL


#: Every channel, in the order forms and messages list them.
ALL: tuple[ChannelName, ...] = tuple(ChannelName)
#: Channels that deliver to a contact's email address (one address space, case-insensitive).
EMAIL_ADDRESSED: frozenset[ChannelName] = frozenset({ChannelName.EMAIL, ChannelName.PRESS})
#: Channels that deliver to an address of the contact's own (every one but the webhook).
CONTACT_ADDRESSED: tuple[ChannelName, ...] = (ChannelName.EMAIL, ChannelName.PRESS, ChannelName.TELEGRAM)
#: Channels a contact (or a subscriber on the preferences page) chooses between: press
#: arrives by email, so choosing email is choosing press too.
SUBSCRIBER_CHANNELS: tuple[ChannelName, ...] = (ChannelName.EMAIL, ChannelName.TELEGRAM)
#: Channels every deployment can send on (the SMTP relay is always configured).
ALWAYS_CONFIGURED: frozenset[ChannelName] = EMAIL_ADDRESSED

AddressColumn = Literal["email", "telegram"]


def address_column(channel: str) -> AddressColumn:
    """The contact field a channel delivers to; ValueError for the webhook (no contact address)."""
    if channel in EMAIL_ADDRESSED:
        return "email"
    if channel == ChannelName.TELEGRAM:
        return "telegram"
    raise ValueError(f"channel {channel!r} has no per-contact address")


def address_space(channel: str) -> str:
    """The channel whose address space ``channel`` uses: ``email`` for press, else itself.

    Suppressions are stored under it, and a contact's channel choice names it.
    """
    return ChannelName.EMAIL.value if channel in EMAIL_ADDRESSED else channel


def address_key(channel: str, address: str) -> str:
    """How an address compares on a channel: an email address lower-cased, anything else as given."""
    return address.lower() if channel in EMAIL_ADDRESSED else address


def rendered_as(channel: str) -> str:
    """The channel whose template form a channel sends: the webhook carries the email form."""
    return ChannelName.EMAIL.value if channel == ChannelName.WEBHOOK else channel
