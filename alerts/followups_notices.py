"""Notices to officers: what a fired follow-up must tell whom, and getting it to them.

``Plan`` is the hand-over from deciding (``alerts.reminders`` for reminders and updates,
``alerts.followups_digest`` for weekly digests, both inside the claiming transaction) to
delivering: ``deliver`` sends the plan's notices by email (and Telegram, for officers with a
chat) after the claim commits, and records the result, re-arming the row on a transient
failure for the officers not yet reached. Each message has a deterministic Message-ID per
(follow-up, officer), so the rare repeat after a crash collapses in mail clients. A failure
on one channel never holds back another. Officers' addresses are never logged above DEBUG.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, update

from alerts.messages import message_domain
from alerts.models import Followup
from alerts.types import OutcomeKind, Recipient, RenderedContent, RenderedMessage

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

SUBJECT_MAX = 200
#: ``Followup.result`` while a claimed follow-up's notices are being sent.
FIRING = "firing"
#: Attempts at reaching officers before a notice is given up as undelivered.
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message to one officer."""

    user_id: int
    name: str
    email: str | None
    telegram: str | None
    subject: str
    text: str
    #: The Telegram form when it must say less than the email (None: subject and text).
    telegram_text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What a fired follow-up did in the database, and whom it must tell."""

    result: str
    notices: tuple[Notice, ...] = ()
    already: frozenset[str] = field(default_factory=frozenset)  # "email:3" reached on an earlier attempt
    attempts: int = 0


def when(value: datetime, tz: ZoneInfo) -> str:
    """A time as officers read it: in the [scheduler] time zone."""
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def lateness(late_seconds: float | None) -> str:
    """'(late by N min: the service was down)' when a follow-up fired a minute or more late."""
    if late_seconds is None or late_seconds < 60:
        return ""
    return f"(late by {round(late_seconds / 60)} min: the service was down)"


def alert_link(app: App, alert_id: int) -> str:
    """The officer page of an alert (under the officer UI's prefix)."""
    # imported here: the web package imports the App, which imports the follow-ups
    from alerts.web.ui import PREFIX

    return f"{app.settings.server.public_url.rstrip('/')}{PREFIX}/alerts/{alert_id}"


def footer(f: Followup) -> str:
    """The signature line of every notice about follow-up ``f``."""
    return f"\n-- \nUrgent Alerts, follow-up {f.id}. Times are shown in the service's time zone.\n"


def _message(app: App, f_id: int, alert_id: int | None, notice: Notice, channel: str) -> RenderedMessage:
    if channel == "telegram":
        text = html.escape(notice.telegram_text or f"{notice.subject}\n\n{notice.text}", quote=False)
    else:
        text = notice.text
    address = notice.email if channel == "email" else notice.telegram
    assert address is not None
    return RenderedMessage(
        delivery_id=0,
        alert_id=alert_id or 0,
        content=RenderedContent(
            channel=channel,
            audience="officer",
            language="en",
            subject=notice.subject if channel == "email" else "",  # Telegram sends only the text
            text=text,
        ),
        recipient=Recipient(contact_id=0, name=notice.name, address=address, language="en", kind="officer"),
        message_id=f"<followup-{f_id}.u{notice.user_id}@{message_domain(app.settings.email.from_)}>",
    )


async def deliver(app: App, followup_id: int, plan: Plan, *, now: datetime) -> str:
    """Send the plan's notices, then record the result (re-arming the row on a transient failure)."""
    reached, retry, failed = set(plan.already), [], []
    async with app.sessions() as session:
        f = await session.get(Followup, followup_id)
        assert f is not None
        alert_id = f.alert_id
    for notice in plan.notices:
        for channel, address in (("email", notice.email), ("telegram", notice.telegram)):
            key = f"{channel}:{notice.user_id}"
            if address is None or key in reached or channel not in app.channels:
                continue
            try:
                outcome = await app.channels[channel].send(
                    _message(app, followup_id, alert_id, notice, channel)
                )
            except Exception as exc:  # noqa: BLE001 - an adapter bug or unclassified network error: retry later
                logger.warning(
                    "follow-up %s: %s to user %s raised %s",
                    followup_id,
                    channel,
                    notice.user_id,
                    type(exc).__name__,
                )
                retry.append(f"{notice.name} ({channel}): {type(exc).__name__}")
                continue
            if outcome.kind is OutcomeKind.SENT:
                reached.add(key)
            elif outcome.kind is OutcomeKind.PERMANENT:
                failed.append(f"{notice.name} ({channel}): {outcome.detail}")
            else:
                retry.append(f"{notice.name} ({channel}): {outcome.kind} {outcome.detail}".rstrip())
    names = sorted({n.name for n in plan.notices if any(k.endswith(f":{n.user_id}") for k in reached)})
    lead = plan.result if plan.result not in ("reminder", "digest") else f"{plan.result} sent"
    result = f"{lead}; sent to {', '.join(names) or 'nobody'}"
    if failed:
        result += "; refused for " + "; ".join(failed)
    data: dict[str, Any] = dict(f.data or {})
    data["notified"] = sorted(reached)
    values: dict[str, Any] = {"data": data}
    if retry and plan.attempts + 1 < MAX_ATTEMPTS:
        data["attempts"] = plan.attempts + 1
        delay = timedelta(seconds=min(3600, 30 * 2**plan.attempts))
        values |= {
            "fired_at": None,
            "due_at": now + delay,
            "result": f"retrying at {(now + delay).isoformat()}: " + "; ".join(retry),
        }
        result = str(values["result"])
        logger.warning(
            "follow-up %s: %d notice(s) not delivered; retrying in %s", followup_id, len(retry), delay
        )
    else:
        if retry:
            result += "; gave up on " + "; ".join(retry)
            logger.error("follow-up %s: gave up reaching %d officer(s)", followup_id, len(retry))
        values["result"] = result
    async with app.sessions.begin() as session:
        done = cast(
            CursorResult[Any],
            await session.execute(
                update(Followup)
                .where(Followup.id == followup_id, Followup.result == FIRING)
                .values(**values)
                .execution_options(synchronize_session=False)
            ),
        )
        if done.rowcount != 1:
            logger.warning("follow-up %s changed while its notices were sent", followup_id)
    return result
