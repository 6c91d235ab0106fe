"""Tell reviewers the moment an alert is submitted: by email, and by Telegram for those with a chat.

The notice names only the alert's number, its template family and its author, with a link to
the review page: not the defender's name or the case. A reviewer's mailbox or chat is outside
our control, and the alert is not approved yet. Sends go through the app's own channels
(``app.channels["email"]`` / ``["telegram"]`` when configured); a failure is logged, never
raised: the submission itself has already been committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from alerts.app import App
from alerts.core import urls
from alerts.core.channels import ChannelName
from alerts.core.types import OutcomeKind, RenderedMessage
from alerts.delivery.system_messages import system_message
from alerts.store.models import User

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 15.0


def review_url(app: App, alert_id: int) -> str:
    """The reviewer's page for this alert."""
    return urls.office_alert(app.settings.server.public_url, alert_id)


def notice(
    app: App, *, alert_id: int, version: int, author: str, reviewer: User, channel: str
) -> RenderedMessage:
    """The message to one reviewer on one channel."""
    subject = f"Alert {alert_id} is waiting for your review"
    text = (
        f"Hello {reviewer.name},\n\n{author} submitted alert {alert_id} (version {version}) for review.\n"
        f"Please review it and approve it, or send it back:\n\n{review_url(app, alert_id)}\n\n"
        "The case is not described in this message on purpose: read it after signing in.\n"
    )
    address = reviewer.email if channel == ChannelName.EMAIL else reviewer.telegram
    assert address is not None
    return system_message(
        channel=channel,
        recipient_name=reviewer.name,
        address=address,
        language="en",
        subject=subject,
        text=text,
        key=f"review-{alert_id}.v{version}.u{reviewer.id}",
        sender=app.settings.email.from_,
        alert_id=alert_id,
    )


async def notify_reviewers(
    app: App, *, alert_id: int, version: int, author: str, reviewers: Sequence[User]
) -> list[str]:
    """Send the notices; returns the names of the reviewers reached on at least one channel."""
    reached: list[str] = []
    for reviewer in reviewers:
        ok = False
        for channel, address in (
            (ChannelName.EMAIL, reviewer.email),
            (ChannelName.TELEGRAM, reviewer.telegram),
        ):
            adapter = app.channels.get(channel)
            if not address or adapter is None:
                continue
            message = notice(
                app, alert_id=alert_id, version=version, author=author, reviewer=reviewer, channel=channel
            )
            try:
                outcome = await asyncio.wait_for(adapter.send(message), SEND_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the submission stands; the reviewer sees it on the dashboard
                logger.warning(
                    "alert %s: review notice by %s to user %s failed: %s",
                    alert_id,
                    channel,
                    reviewer.id,
                    type(exc).__name__,
                )
                continue
            if outcome.kind is OutcomeKind.SENT:
                ok = True
            else:
                logger.warning(
                    "alert %s: review notice by %s to user %s: %s",
                    alert_id,
                    channel,
                    reviewer.id,
                    outcome.kind,
                )
        if ok:
            reached.append(reviewer.name)
    logger.info("alert %s submitted: %d of %d reviewers notified", alert_id, len(reached), len(reviewers))
    return reached
