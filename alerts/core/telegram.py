"""Telegram address syntax: the one rule, for contacts, users and the Telegram channel.

The Bot API's ``sendMessage`` takes ``chat_id``: "Unique identifier for the target chat or
username of the target channel (in the format @channelusername)"
(https://core.telegram.org/bots/api#sendmessage). So an address is one of:

- a **numeric chat id**: a user's id is positive, a group's negative, a supergroup's or a
  channel's ``-100…``. Telegram: "This number may have more than 32 significant bits … But it
  has at most 52 significant bits, so a signed 64-bit integer … [is] safe for storing this
  identifier" (https://core.telegram.org/bots/api#chat, and
  https://core.telegram.org/api/bots/ids for the ranges). We accept any non-zero integer
  that fits in 64 bits, written canonically (no ``+``, no leading zeros): the bot stores
  chats as ``str(chat_id)``, and one chat must have one spelling, or a suppression keyed on
  one spelling would miss the other.
- an **@username** of a public channel (or group). Telegram's FAQ (https://telegram.org/faq,
  "Usernames and t.me"): "You can use a-z, 0-9 and underscores. Usernames are
  case-insensitive, but … must be at least 5 characters long"; and "collectibles [usernames
  bought on Fragment] can be less than 5 characters long" (four at least, as sold). 32 is the
  longest username Telegram lets anyone set. Telegram's apps also refuse a username that does
  not start with a letter, ends with an underscore or has two in a row (not on telegram.org,
  but what every description of the rule reports, e.g. the username validators listed on
  rubydoc.info "validates_im" and in BotFather guides). Hence: ``@``, then 4–32 characters,
  a letter first, letters, digits and single underscores, not ending in one.

Anything else (a phone number, a t.me link, ``@_abcde``) is refused with a ``ValidationError``
naming the field, the same at import, in a user's settings and at send time.
"""

from __future__ import annotations

import re

from alerts.core.errors import ValidationError

#: Shortest and longest username, without the "@" (collectible usernames may have 4).
USERNAME_MIN, USERNAME_MAX = 4, 32
_USERNAME = re.compile(
    rf"@(?=[A-Za-z0-9_]{{{USERNAME_MIN},{USERNAME_MAX}}}\Z)[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*\Z"
)
_CHAT_ID = re.compile(r"-?[1-9][0-9]{0,18}\Z")
_INT64 = range(-(2**63), 2**63)

HINT = (
    "not a numeric chat id or an @channel name (@, then 4-32 letters, digits or single "
    "underscores, starting with a letter and not ending with _)"
)


def parse_chat(address: str, *, field: str = "telegram") -> int | str:
    """The Bot API's ``chat_id`` for an address (surrounding spaces ignored): an int for a
    numeric chat id, the ``@name`` as given for a username; ValidationError naming ``field``."""
    text = address.strip()
    if _CHAT_ID.match(text) and int(text) in _INT64:
        return int(text)
    if _USERNAME.match(text):
        return text
    raise ValidationError(f"{field}: {HINT}.", details={"field": field})


def check_address(address: str, *, field: str = "telegram") -> str:
    """The address as stored (trimmed), or ValidationError as ``parse_chat``."""
    parse_chat(address, field=field)
    return address.strip()
