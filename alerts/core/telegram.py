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

**Message length.** ``sendMessage`` takes "1-4096 characters after entities parsing", and
Telegram counts those characters in UTF-16 code units (https://core.telegram.org/api/entities:
"entity length … in UTF-16 code units"): tags do not count, ``&amp;`` counts as one, an emoji
outside the BMP counts two, a flag (two regional indicators) four, a ZWJ sequence far more.
``text_length`` counts that way; counting code points let a case with emoji and flags through
at 6,800 units, which Telegram refused as "message is too long", a permanent failure.

A message that does not fit is **split at paragraph boundaries into numbered parts**
(``split_message``), each ending in ``(k/n)`` and sent in order: the whole alert reaches every
chat, including those of alerts with no public page to link to. A paragraph longer than a part
is cut at a line, else at a space, else anywhere (never inside a tag or an entity; tags open at
the cut are closed and reopened). The channel records the ids of the parts already sent
(``Delivery.provider_id``, ``join_parts``), so a retry after part 2 of 3 failed sends part 3
only; the delivery is ``sent`` when the last part is, and its provider id is then the first
part's, which updates reply to.
"""

from __future__ import annotations

import functools
import html
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


#: ``sendMessage``'s limit: UTF-16 code units of the text after entity parsing.
MESSAGE_LIMIT = 4096
#: Room kept in each part for its number, ``"\n\n(k/n)"`` (ASCII; up to 99 parts).
_NUMBER_ROOM = len("\n\n(99/99)")
_TOKEN = re.compile(r"<[^<>]*>|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|.", re.DOTALL)
_TAG_NAME = re.compile(r"<(/?)([A-Za-z][\w-]*)")


_TAG = re.compile(r"<[^<>]*>")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _utf16(text: str) -> int:
    return len(text) + len(_ASTRAL.findall(text))  # outside the BMP: a surrogate pair


def _units(token: str) -> int:
    """UTF-16 code units a token of Telegram HTML adds to the parsed text (a tag: none)."""
    if len(token) == 1:
        return 2 if ord(token) > 0xFFFF else 1
    if token.startswith("<"):
        return 0
    return _utf16(html.unescape(token))


def text_length(message: str) -> int:
    """The length Telegram checks against ``MESSAGE_LIMIT``: UTF-16 units after entity parsing."""
    return _utf16(html.unescape(_TAG.sub("", message)))


def _tag_name(token: str) -> str | None:
    tag = _TAG_NAME.match(token)
    return tag.group(2).lower() if tag is not None else None


def _open_tags(tokens: list[str]) -> list[list[str]]:
    """For each position 0..len(tokens): the opening tags still open before it."""
    stacks: list[list[str]] = []
    stack: list[str] = []
    for token in tokens:
        stacks.append(list(stack))
        name = _tag_name(token)
        if name is None:
            continue
        if not token.startswith("</"):
            if not token.endswith("/>"):
                stack.append(token)
            continue
        names = [_tag_name(t) for t in stack]
        if name in names:
            del stack[len(names) - 1 - names[::-1].index(name) :]
    stacks.append(list(stack))
    return stacks


def _closing(opened: list[str]) -> str:
    return "".join(f"</{_tag_name(t)}>" for t in reversed(opened))


def _cut(paragraph: str, room: int) -> list[str]:
    """A paragraph longer than ``room`` units, in pieces of at most ``room``: cut after the last
    line break that fits, else the last space, else anywhere between two characters."""
    tokens = _TOKEN.findall(paragraph)
    stacks = _open_tags(tokens)
    pieces = []
    start = 0
    while start < len(tokens):
        used, end, line_at, space_at = 0, start, None, None
        while end < len(tokens) and used + _units(tokens[end]) <= room:
            used += _units(tokens[end])
            if tokens[end] == "\n":
                line_at = end
            elif tokens[end] == " ":
                space_at = end
            end += 1
        resume = end
        if end < len(tokens):
            at = line_at if line_at is not None else space_at
            if at is not None and at > start:
                end, resume = at, at + 1  # the break itself is dropped
            elif end == start:  # cannot happen with room >= 2; never loop forever
                end = resume = start + 1
        text = "".join(stacks[start]) + "".join(tokens[start:end]) + _closing(stacks[end])
        pieces.append(text)
        start = resume
    return pieces


@functools.lru_cache(maxsize=64)
def split_message(message: str, limit: int = MESSAGE_LIMIT) -> tuple[str, ...]:
    """``message`` as the parts to send: itself when it fits in ``limit``, else numbered parts
    of whole paragraphs (see the module docstring). Cached: every recipient of a form shares it."""
    if text_length(message) <= limit:
        return (message,)
    room = limit - _NUMBER_ROOM
    pieces: list[str] = []
    for paragraph in message.split("\n\n"):
        pieces += [paragraph] if text_length(paragraph) <= room else _cut(paragraph, room)
    parts: list[list[str]] = [[]]
    used = 0
    for piece in pieces:
        size = text_length(piece)
        if parts[-1] and used + 2 + size > room:
            parts.append([])
            used = 0
        used += size + (2 if len(parts[-1]) else 0)
        parts[-1].append(piece)
    total = len(parts)
    return tuple("\n\n".join(part) + f"\n\n({number}/{total})" for number, part in enumerate(parts, 1))


def join_parts(message_ids: list[str]) -> str | None:
    """How the ids of the parts sent so far are stored (``Delivery.provider_id``)."""
    return ",".join(message_ids) or None


def sent_parts(provider_id: str | None) -> tuple[str, ...]:
    """The ids of the parts already sent, from a stored provider id (``join_parts``)."""
    return tuple(part for part in (provider_id or "").split(",") if part.strip().isdigit())


def first_message_id(provider_id: str) -> int:
    """The message an update replies to: the first part of the original."""
    return int(sent_parts(provider_id)[0])
