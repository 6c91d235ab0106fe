"""The channel contract.

A channel adapter turns one ``RenderedMessage`` into one transport call and classifies the
transport's answer as an ``Outcome``:

- ``SENT`` with the provider's message id;
- ``TRANSIENT``: try again later. If the server named a delay (SMTP has none; Telegram's
  ``RetryAfter``; HTTP ``Retry-After``) put it in ``retry_after`` so the retry policy honours it;
- ``PERMANENT``: give up on this delivery. Set ``suppress`` when the transport says the
  address itself is dead (a 550 on the recipient, a bot blocked by the user), so that no later
  alert is sent there;
- ``UNKNOWN``: the data went out but no answer came back (a timeout after SMTP ``DATA``). The
  dispatcher records this and retries once after a grace period, never in a tight loop.

Rules every adapter keeps:

- ``send()`` returns an ``Outcome`` for every answer it recognizes, through one class-level
  table of error → outcome. Exceptions it does not recognize propagate; ``alerts.delivery.dispatch``
  records them with their cause and asks ``alerts.delivery.retry`` what to do.
- Adapters never sleep-and-retry by themselves. Only a rate limiter may wait (to stay under a
  provider's published limits); every retry decision is made in ``alerts.delivery.retry``.
- ``open()`` acquires long-lived resources (connection pools, HTTP sessions); ``close()``
  releases them and is safe to call twice. ``send()`` may be called concurrently.
- Options come in as a frozen dataclass built from the channel's config section; an adapter
  never reads config files or the environment itself.
- A message names exactly one recipient. Nothing about other recipients is ever in it.
- Adapters never log message bodies or recipient addresses above DEBUG.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from alerts.core.types import Outcome, RenderedMessage


@runtime_checkable
class Channel(Protocol):
    """A delivery channel adapter (see the module docstring for the contract)."""

    name: ClassVar[str]

    async def open(self) -> None:
        """Acquire connections and sessions."""

    async def close(self) -> None:
        """Release everything ``open()`` acquired; idempotent."""

    async def send(self, message: RenderedMessage) -> Outcome:
        """Send one message to its one recipient and classify the answer."""
        ...
