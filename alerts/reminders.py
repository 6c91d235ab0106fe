"""Messages to officers when a follow-up fires: reminders, updates waiting for approval, digests.

``plan`` decides, inside the claiming transaction, what a fired follow-up does and whom it
tells (checking a reminder's condition, publishing an update, scheduling the next digest).
``deliver`` sends the notices by email (and Telegram, for officers with a chat) after the
claim commits, and records the result. Each message has a deterministic Message-ID per
(follow-up, officer), so the rare repeat after a crash collapses in mail clients. Officers'
addresses are never logged above DEBUG.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.messages import message_domain
from alerts.models import Alert, Contact, Delivery, Followup, Response, User
from alerts.states import AlertStatus, DeliveryState, FollowupKind, Role
from alerts.types import OutcomeKind, Recipient, RenderedContent, RenderedMessage

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

K = FollowupKind
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
    """The officer page of an alert."""
    return f"{app.settings.server.public_url.rstrip('/')}/ui/alerts/{alert_id}"


async def _officers(session: AsyncSession, ids: Sequence[int | None]) -> list[User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return []
    rows = await session.scalars(
        select(User).where(User.id.in_(wanted), User.active.is_(True)).order_by(User.id)
    )
    return list(rows.all())


def _notices(users: Sequence[User], subject: str, text: str) -> tuple[Notice, ...]:
    return tuple(
        Notice(
            user_id=u.id,
            name=u.name,
            email=u.email,
            telegram=u.telegram,
            subject=subject[:SUBJECT_MAX],
            text=text,
        )
        for u in users
        if u.email or u.telegram
    )


async def _responded(session: AsyncSession, alert: Alert, kinds: Sequence[str]) -> Response | None:
    """The first response to the alert (or to one of its updates), from the given kinds if any."""
    thread = select(Alert.id).where((Alert.id == alert.id) | (Alert.parent_id == alert.id))
    query = select(Response).where(Response.alert_id.in_(thread)).order_by(Response.responded_at).limit(1)
    if kinds:
        query = query.join(Contact, Contact.id == Response.contact_id).where(Contact.kind.in_(list(kinds)))
    return (await session.scalars(query)).first()


def _footer(f: Followup) -> str:
    return f"\n-- \nUrgent Alerts, follow-up {f.id}. Times are shown in the service's time zone.\n"


async def plan(
    session: AsyncSession,
    app: App,
    f: Followup,
    *,
    now: datetime,
    acted: tuple[str, Alert | None] | None = None,
) -> Plan:
    """Whom a just-claimed follow-up must tell (inside the claim's transaction).

    ``acted`` is what ``followups.act_on_alert`` did for an update or send follow-up: its
    result and the update still waiting for approval (None when nothing waits).
    """
    tz = ZoneInfo(app.settings.scheduler.timezone)
    data = dict(f.data or {})
    already = frozenset(data.get("notified", []))
    attempts = int(data.get("attempts", 0))
    late = lateness(f.late_seconds)
    if f.kind == K.DIGEST:
        return await _digest(session, app, f, now=now, tz=tz, already=already, attempts=attempts)
    alert = await session.get(Alert, f.alert_id) if f.alert_id is not None else None
    if alert is None:
        return Plan(result="skipped: the alert no longer exists.")
    if acted is not None:
        result, waiting = acted
        if waiting is None and not result.startswith("failed"):
            return Plan(result=result)
        target = waiting.id if waiting is not None else alert.id
        if waiting is not None:
            subject = f"Update waiting for approval: alert {waiting.id} (follows alert {alert.id})"
            body = (
                f'The update {waiting.id} to alert {alert.id} "{alert.title}" was due at '
                f"{when(f.due_at, tz)} {late}\nbut it is {waiting.status}: it must be approved before it "
                f"can go out.\nOnce approved, send it: alerts alert send {waiting.id}\n"
            )
        else:
            subject = f"Follow-up failed: alert {alert.id} {alert.title}"
            body = (
                f'The {f.kind} follow-up on alert {alert.id} "{alert.title}", due at {when(f.due_at, tz)} '
                f"{late}\ncould not be carried out: {result.removeprefix('failed: ')}\n"
            )
        text = (
            body
            + (f"\nNote: {f.note}\n" if f.note else "")
            + f"\nOpen it: {alert_link(app, target)}\n"
            + _footer(f)
        )
        users = await _officers(session, [alert.author_id, f.created_by])
        return Plan(result=result, notices=_notices(users, subject, text), already=already, attempts=attempts)
    # a reminder
    if f.condition == "no_response":
        response = await _responded(session, alert, data.get("kinds", []))
        if response is not None:
            return Plan(
                result=f"skipped: a response was recorded on {when(response.responded_at, tz)} "
                "(condition: no response)."
            )
    if f.condition == "case_open" and alert.status == AlertStatus.CLOSED:
        return Plan(result="skipped: the case is closed (condition: case open).")
    lines = [
        f'A follow-up is due on alert {alert.id} "{alert.title}" ({alert.status}).',
        f"Due: {when(f.due_at, tz)} {late}".rstrip(),
    ]
    if f.note:
        lines.append(f"Note: {f.note}")
    if f.condition == "no_response":
        who = " or ".join(data.get("kinds", [])) or "anyone"
        lines.append(f"No response from {who} has been recorded so far.")
    lines.append(f"\nOpen the alert: {alert_link(app, alert.id)}")
    subject = f"Follow-up due: alert {alert.id} {alert.title}"
    users = await _officers(session, [alert.author_id, f.created_by])
    notices = _notices(users, subject, "\n".join(lines) + "\n" + _footer(f))
    if not notices:
        return Plan(
            result=f"not delivered: no active officer of alert {alert.id} has an email address "
            "or a Telegram chat."
        )
    return Plan(result="reminder", notices=notices, already=already, attempts=attempts)


async def _digest(
    session: AsyncSession,
    app: App,
    f: Followup,
    *,
    now: datetime,
    tz: ZoneInfo,
    already: frozenset[str],
    attempts: int,
) -> Plan:
    every = timedelta(days=int((f.data or {}).get("every_days", 7)))
    if attempts == 0:  # the next digest, once: committed with this one's claim
        due = f.due_at + every
        while due <= now:
            due += every
        session.add(
            Followup(
                kind=K.DIGEST.value,
                due_at=due,
                note=f.note,
                data={"every_days": every.days},
                created_by=f.created_by,
                created_at=now,
            )
        )
    officers = (
        await session.scalars(
            select(User)
            .where(
                User.role.in_([Role.OFFICER.value, Role.ADMIN.value]),
                User.active.is_(True),
                User.email.is_not(None),
            )
            .order_by(User.id)
        )
    ).all()
    notices = []
    for officer in officers:
        text = await digest_text(session, app, officer, now=now, tz=tz, horizon=every)
        if text is not None:
            notices.append(
                Notice(
                    user_id=officer.id,
                    name=officer.name,
                    email=officer.email,
                    telegram=None,
                    subject=f"Weekly digest: your open cases ({when(now, tz)[:10]})",
                    text=text + _footer(f),
                )
            )
    if not notices:
        return Plan(result="digest: no officer has open cases.")
    return Plan(result="digest", notices=tuple(notices), already=already, attempts=attempts)


async def digest_text(
    session: AsyncSession, app: App, officer: User, *, now: datetime, tz: ZoneInfo, horizon: timedelta
) -> str | None:
    """One officer's digest: open cases, follow-ups due soon, authorities without a response."""
    cases = (
        await session.scalars(
            select(Alert)
            .where(
                Alert.author_id == officer.id,
                Alert.status != AlertStatus.CLOSED.value,
                Alert.parent_id.is_(None),
            )
            .order_by(Alert.id)
        )
    ).all()
    if not cases:
        return None
    ids = [a.id for a in cases]
    lines = [f"Digest for {officer.name}, {when(now, tz)}.", "", f"Open cases ({len(cases)}):"]
    lines += [f'  - alert {a.id} "{a.title}" ({a.status}): {alert_link(app, a.id)}' for a in cases]
    due = (
        await session.scalars(
            select(Followup)
            .where(
                Followup.alert_id.in_(ids),
                Followup.fired_at.is_(None),
                Followup.cancelled_at.is_(None),
                Followup.due_at <= now + horizon,
            )
            .order_by(Followup.due_at)
        )
    ).all()
    lines += ["", f"Follow-ups due by {when(now + horizon, tz)} ({len(due)}):"]
    lines += [
        f"  - {when(x.due_at, tz)}: {x.kind} on alert {x.alert_id}" + (f": {x.note}" if x.note else "")
        for x in due
    ] or ["  (none)"]
    responded = select(Response.contact_id).where(
        Response.alert_id == Delivery.alert_id, Response.contact_id == Delivery.contact_id
    )
    silent = (
        await session.execute(
            select(Delivery.alert_id, Contact.name, Contact.title)
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(
                Delivery.alert_id.in_(ids),
                Delivery.audience == "authority",
                Delivery.state.in_([DeliveryState.SENT.value, DeliveryState.DELIVERED.value]),
                ~responded.exists(),
            )
            .group_by(Delivery.alert_id, Contact.id, Contact.name, Contact.title)
            .order_by(Delivery.alert_id, Contact.name)
        )
    ).all()
    by_alert: dict[int, list[str]] = {}
    for alert_id, name, title in silent:
        by_alert.setdefault(alert_id, []).append(f"{name}, {title}" if title else name)
    lines += ["", f"Authorities that have not responded ({len(silent)}):"]
    for alert_id, names in by_alert.items():
        shown = "; ".join(names[:10]) + (f"; and {len(names) - 10} more" if len(names) > 10 else "")
        lines.append(f"  - alert {alert_id}: {shown}")
    if not by_alert:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"


def _message(app: App, f_id: int, alert_id: int | None, notice: Notice, channel: str) -> RenderedMessage:
    text = (
        html.escape(f"{notice.subject}\n\n{notice.text}", quote=False)
        if channel == "telegram"
        else notice.text
    )
    address = notice.email if channel == "email" else notice.telegram
    assert address is not None
    return RenderedMessage(
        delivery_id=0,
        alert_id=alert_id or 0,
        content=RenderedContent(
            channel=channel, audience="officer", language="en", subject=notice.subject, text=text
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
