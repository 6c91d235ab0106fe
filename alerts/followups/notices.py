"""Notices to officers: what a fired follow-up must tell whom, and getting it to them; and
the notice that tells reviewers an alert is waiting for them (``notify_reviewers``).

``Plan`` is the hand-over from deciding (``alerts.followups.reminders`` for reminders and updates,
``alerts.followups.digest`` for weekly digests, both inside the claiming transaction) to
delivering: ``deliver`` sends the plan's notices by email (and Telegram, for officers with a
chat) after the claim commits, and records the result, re-arming the row on a transient
failure for the officers not yet reached, when the delivery retry policy says
(``alerts.delivery.retry.RetryPolicy``, with the [dispatcher] settings: the same attempts,
backoff, ``retry_after`` and one retry of an unknown outcome as for alerts). Each message has
a deterministic Message-ID per (follow-up, officer), so the rare repeat after a crash
collapses in mail clients. A failure on one channel never holds back another. Officers'
addresses are never logged above DEBUG.

Each firing claims the row with its own token (``result`` is ``"firing <token>"``): every
write ``deliver`` makes is guarded by that token, so a firing that was given up as stalled
(``followups_fire.rearm_stalled``) and finishes late changes nothing the next firing owns.
Each send is bounded (``SEND_TIMEOUT``) and so is a whole delivery (``DELIVER_BUDGET``), well
under the stall window; who was reached is recorded after every successful send, so a
firing that replaces a stalled one does not reach the same officer twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, update

from alerts.core import urls
from alerts.core.channels import ChannelName
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage
from alerts.delivery.retry import RetryPolicy
from alerts.delivery.system_messages import system_message
from alerts.store.models import Followup, User

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

SUBJECT_MAX = 200
#: ``Followup.result`` while a claimed follow-up's notices are being sent (then a claim token).
FIRING = "firing"
#: Longest wait for one message to one officer on one channel (seconds).
SEND_TIMEOUT = 30.0
#: Longest a whole delivery may take (seconds): well under ``followups_fire.STALLED_AFTER``.
DELIVER_BUDGET = 120.0


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


def new_claim() -> str:
    """The ``Followup.result`` of a row claimed by one firing: FIRING and a token of its own."""
    return f"{FIRING} {secrets.token_hex(8)}"


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
    return urls.office_alert(app.settings.server.public_url, alert_id)


def footer(f: Followup) -> str:
    """The signature line of every notice about follow-up ``f``."""
    return f"\n-- \nUrgent Alerts, follow-up {f.id}. Times are shown in the service's time zone.\n"


def _message(app: App, tag: str, alert_id: int | None, notice: Notice, channel: str) -> RenderedMessage:
    """The notice to one officer on one channel; its Message-ID is deterministic per (``tag``,
    officer), so a repeat collapses in mail clients."""
    address = notice.email if channel == ChannelName.EMAIL else notice.telegram
    assert address is not None
    return system_message(
        channel=channel,
        recipient_name=notice.name,
        address=address,
        language="en",
        subject=notice.subject,
        text=notice.text,
        telegram_text=notice.telegram_text,
        key=f"{tag}.u{notice.user_id}",
        sender=app.settings.email.from_,
        alert_id=alert_id or 0,
    )


#: A notice the delivery budget left no time for: transient, it was never tried.
_NOT_TRIED = Outcome(kind=OutcomeKind.TRANSIENT, detail="not tried, out of time")


def _retry_decisions(
    app: App, plan: Plan, data: dict[str, Any], retry: list[tuple[str, Outcome]], *, now: datetime
) -> tuple[datetime | None, list[str]]:
    """When to fire again for the notices not delivered (the latest time any of them needs),
    and the ones the retry policy gives up on (attempts exhausted, a second unknown outcome)."""
    policy = RetryPolicy.from_settings(app.settings.dispatcher)
    unknown_before = int(data.get("unknown_outcomes", 0))
    times: list[datetime] = []
    gave_up: list[str] = []
    for why, outcome in retry:
        at = policy.decide(
            attempts=plan.attempts + 1, unknown_before=unknown_before, outcome=outcome, now=now
        )
        if at is None:
            gave_up.append(why)
        else:
            times.append(at)
    return (max(times) if times else None), gave_up


async def _guarded(app: App, followup_id: int, claim: str, values: dict[str, Any]) -> bool:
    """Write ``values`` to the row if this firing's claim still holds it."""
    async with app.sessions.begin() as session:
        done = cast(
            CursorResult[Any],
            await session.execute(
                update(Followup)
                .where(Followup.id == followup_id, Followup.result == claim)
                .values(**values)
                .execution_options(synchronize_session=False)
            ),
        )
    return done.rowcount == 1


async def deliver(app: App, followup_id: int, plan: Plan, *, now: datetime, claim: str) -> str:
    """Send the plan's notices, then record the result (re-arming the row on a transient failure).

    ``claim`` is the row's ``result`` as this firing claimed it; once another firing has taken
    the row over, nothing more is sent and nothing is written.
    """
    reached: set[str] = set(plan.already)
    retry: list[tuple[str, Outcome]] = []  # (whom, on which channel and why; outcome): for the retry policy
    failed: list[str] = []
    async with app.reads() as session:
        f = await session.get(Followup, followup_id)
        assert f is not None
        alert_id = f.alert_id
    data: dict[str, Any] = dict(f.data or {})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVER_BUDGET
    owned = True
    for notice in plan.notices:
        for channel, address in (("email", notice.email), ("telegram", notice.telegram)):
            key = f"{channel}:{notice.user_id}"
            if not owned or address is None or key in reached or channel not in app.channels:
                continue
            left = deadline - loop.time()
            if left <= 0:
                retry.append((f"{notice.name} ({channel}): {_NOT_TRIED.detail}", _NOT_TRIED))
                continue
            timeout = min(SEND_TIMEOUT, left)
            try:
                message = _message(app, f"followup-{followup_id}", alert_id, notice, channel)
                outcome = await asyncio.wait_for(app.channels[channel].send(message), timeout)
            except TimeoutError:
                logger.warning(
                    "follow-up %s: %s to user %s timed out after %.1f s",
                    followup_id,
                    channel,
                    notice.user_id,
                    timeout,
                )
                # the message may have gone out: an unknown outcome, as a channel's own timeout
                detail = f"no answer within {timeout:.1f} s"
                outcome = Outcome(kind=OutcomeKind.UNKNOWN, detail=detail)
                retry.append((f"{notice.name} ({channel}): {detail}", outcome))
                continue
            except Exception as exc:  # noqa: BLE001 - an adapter bug or unclassified network error: retry later
                logger.warning(
                    "follow-up %s: %s to user %s raised %s",
                    followup_id,
                    channel,
                    notice.user_id,
                    type(exc).__name__,
                )
                # as the dispatcher does: not in the adapter's table, so transient
                outcome = Outcome(kind=OutcomeKind.TRANSIENT, detail=type(exc).__name__)
                retry.append((f"{notice.name} ({channel}): {outcome.detail}", outcome))
                continue
            if outcome.kind is OutcomeKind.SENT:
                reached.add(key)
                # recorded at once: a firing that takes over from this one skips this officer
                data["notified"] = sorted(reached)
                owned = await _guarded(app, followup_id, claim, {"data": dict(data)})
                if not owned:
                    logger.warning("follow-up %s: another firing took over; stopping", followup_id)
            elif outcome.kind is OutcomeKind.PERMANENT:
                failed.append(f"{notice.name} ({channel}): {outcome.detail}")
            else:
                retry.append(
                    (f"{notice.name} ({channel}): {outcome.kind} {outcome.detail}".rstrip(), outcome)
                )
    names = sorted({n.name for n in plan.notices if any(k.endswith(f":{n.user_id}") for k in reached)})
    lead = plan.result if plan.result not in ("reminder", "digest") else f"{plan.result} sent"
    result = f"{lead}; sent to {', '.join(names) or 'nobody'}"
    if failed:
        result += "; refused for " + "; ".join(failed)
    data["notified"] = sorted(reached)
    values: dict[str, Any] = {"data": data}
    again, gave_up = _retry_decisions(app, plan, data, retry, now=now)
    if gave_up:
        result += "; gave up on " + "; ".join(gave_up)
        logger.error("follow-up %s: gave up reaching %d officer(s)", followup_id, len(gave_up))
    if again is not None:
        data["attempts"] = plan.attempts + 1
        if any(outcome.kind is OutcomeKind.UNKNOWN for _, outcome in retry):
            data["unknown_outcomes"] = int(data.get("unknown_outcomes", 0)) + 1
        waiting = [why for why, _ in retry if why not in gave_up]
        values |= {
            "fired_at": None,
            "due_at": again,
            "result": f"retrying at {again.isoformat()}: " + "; ".join(waiting),
        }
        result = str(values["result"])
        logger.warning(
            "follow-up %s: %d notice(s) not delivered; retrying at %s", followup_id, len(waiting), again
        )
    else:
        values["result"] = result
    if not owned or not await _guarded(app, followup_id, claim, values):
        logger.warning("follow-up %s changed while its notices were sent", followup_id)
        return f"superseded: another firing took over ({result})"
    return result


# -- reviewers -------------------------------------------------------------------------------


def review_notices(
    app: App, *, alert_id: int, version: int, author: str, reviewers: Sequence[User]
) -> tuple[Notice, ...]:
    """What each reviewer is told when alert ``alert_id`` is submitted (read inside the transaction).

    It names only the alert's number and its author, with a link to the review page: not the
    defender's name or the case. A reviewer's mailbox or chat is outside our control, and the
    alert is not approved yet.
    """
    subject = f"Alert {alert_id} is waiting for your review"
    return tuple(
        Notice(
            user_id=reviewer.id,
            name=reviewer.name,
            email=reviewer.email,
            telegram=reviewer.telegram,
            subject=subject,
            text=(
                f"Hello {reviewer.name},\n\n{author} submitted alert {alert_id} (version {version}) "
                "for review.\nPlease review it and approve it, or send it back:\n\n"
                f"{alert_link(app, alert_id)}\n\n"
                "The case is not described in this message on purpose: read it after signing in.\n"
            ),
        )
        for reviewer in reviewers
    )


async def notify_reviewers(
    app: App, notices: Sequence[Notice], *, alert_id: int, version: int
) -> tuple[str, ...]:
    """Send the review notices (after the submission committed); the names of the reviewers reached.

    Email, and Telegram for reviewers with a chat, each where this App has the channel. A
    failure is logged (by user id, never by address) and never raised: the submission stands
    and the reviewer still sees the alert on the dashboard.
    """
    reached: list[str] = []
    for notice in notices:
        ok = False
        for channel, address in (("email", notice.email), ("telegram", notice.telegram)):
            adapter = app.channels.get(channel)
            if not address or adapter is None:
                continue
            message = _message(app, f"review-{alert_id}.v{version}", alert_id, notice, channel)
            try:
                outcome = await asyncio.wait_for(adapter.send(message), SEND_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the submission stands; see the docstring
                logger.warning(
                    "alert %s: review notice by %s to user %s failed: %s",
                    alert_id,
                    channel,
                    notice.user_id,
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
                    notice.user_id,
                    outcome.kind,
                )
        if ok:
            reached.append(notice.name)
    logger.info("alert %s submitted: %d of %d reviewers notified", alert_id, len(reached), len(notices))
    return tuple(reached)
