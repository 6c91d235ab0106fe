"""The service's own messages (not alerts): one builder for every one of them.

Reviewer notices, follow-up reminders and digests to officers, and subscription
confirmations are short plain texts the service writes itself. ``system_message`` turns one
into the ``RenderedMessage`` a channel sends, the same way for each:

- the Message-ID is ``<key@domain>``, the domain the service's own From address's, so a
  caller that passes a deterministic key (``review-7.v2.u3``) makes a repeat collapse in
  mail clients;
- email gets the subject and the text;
- Telegram gets one HTML message (the channel sends with ``parse_mode=HTML``): the subject,
  a blank line and the text, or ``telegram_text`` when that form must say less, with ``<``,
  ``>`` and ``&`` escaped, so a name or a title can never be read as markup.
"""

from __future__ import annotations

import html

from alerts.core.channels import ChannelName
from alerts.core.types import Recipient, RenderedContent, RenderedMessage
from alerts.delivery.messages import message_domain


def system_message(
    *,
    channel: str,
    recipient_name: str,
    address: str,
    language: str,
    subject: str,
    text: str,
    key: str,
    sender: str,
    telegram_text: str | None = None,
    kind: str = "officer",
    contact_id: int = 0,
    alert_id: int = 0,
) -> RenderedMessage:
    """One of the service's own messages to one address on one channel (email or telegram).

    ``sender`` is the configured From address (``[email] from``): its domain ends the
    Message-ID. ``kind`` and ``contact_id`` describe the recipient (an officer, or the
    subscriber being confirmed); ``alert_id`` the alert it is about, if any.
    """
    if channel == ChannelName.TELEGRAM:
        # one HTML message: Telegram has no subject line
        subject, text = "", html.escape(telegram_text or f"{subject}\n\n{text}", quote=False)
    elif channel != ChannelName.EMAIL:
        raise ValueError(f"the service's own messages go by email or telegram, not {channel!r}")
    content = RenderedContent(
        channel=str(channel), audience=kind, language=language, subject=subject, text=text
    )
    return RenderedMessage(
        delivery_id=0,
        alert_id=alert_id,
        content=content,
        recipient=Recipient(
            contact_id=contact_id, name=recipient_name, address=address, language=language, kind=kind
        ),
        message_id=f"<{key}@{message_domain(sender)}>",
    )
