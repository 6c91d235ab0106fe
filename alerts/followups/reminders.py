"""What a fired follow-up tells officers: reminders, and updates or sends that went wrong.

``plan`` decides, inside the claiming transaction, what a fired follow-up does and whom it
tells (checking a reminder's condition; weekly digests are planned by
``alerts.followups.digest``). ``alerts.followups_notices.deliver`` sends the notices after
the claim commits. Notices name the alert and what is due, never a contact's address. An
alert's title is usually the defender's name, and Telegram chats with a bot are not
end-to-end encrypted: the Telegram form of a notice names the alert by its number only
unless the public archive shows it (marked public, the latest consent ``public``, sent or
closed: ``alerts.feeds.is_public``), and never carries the officer's free-text note (the
email form keeps both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.states import AlertStatus, FollowupKind
from alerts.delivery.archive import is_public
from alerts.followups.digest import plan_digest
from alerts.followups.notices import (
    FIRING,
    SUBJECT_MAX,
    Notice,
    Plan,
    alert_link,
    deliver,
    footer,
    lateness,
    when,
)
from alerts.store.models import Alert, Contact, Followup, Response, User

if TYPE_CHECKING:
    from alerts.app import App

__all__ = [
    "FIRING",
    "Notice",
    "Plan",
    "alert_link",
    "deliver",
    "lateness",
    "plan",
    "when",
]

K = FollowupKind
#: (subject, text) of a notice, given how to name an alert (with its title, or by number only)
#: and whether the officer's note may be included.
_Compose = Callable[[Callable[[Alert], str], bool], tuple[str, str]]


def _titled(alert: Alert) -> str:
    return f'alert {alert.id} "{alert.title}"'


def _numbered(alert: Alert) -> str:
    return f"alert {alert.id}"


async def _officers(session: AsyncSession, ids: Sequence[int | None]) -> list[User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return []
    rows = await session.scalars(
        select(User).where(User.id.in_(wanted), User.active.is_(True)).order_by(User.id)
    )
    return list(rows.all())


async def _notices(
    session: AsyncSession, users: Sequence[User], alert: Alert, compose: _Compose
) -> tuple[Notice, ...]:
    subject, text = compose(_titled, True)
    # Telegram: the title only when the archive shows the alert anyway; the note never
    public = await is_public(session, alert.id)
    short_subject, short_text = compose(_titled if public else _numbered, False)
    telegram_text = f"{short_subject[:SUBJECT_MAX]}\n\n{short_text}"
    return tuple(
        Notice(
            user_id=u.id,
            name=u.name,
            email=u.email,
            telegram=u.telegram,
            subject=subject[:SUBJECT_MAX],
            text=text,
            telegram_text=telegram_text,
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
        return await plan_digest(session, app, f, now=now, tz=tz, already=already, attempts=attempts)
    alert = await session.get(Alert, f.alert_id) if f.alert_id is not None else None
    if alert is None:
        return Plan(result="skipped: the alert no longer exists.")
    note = f"\nNote: {f.note}\n" if f.note else ""
    if acted is not None:
        result, waiting = acted
        if waiting is None and not result.startswith("failed"):
            return Plan(result=result)
        target = waiting.id if waiting is not None else alert.id

        def compose_acted(name: Callable[[Alert], str], with_note: bool) -> tuple[str, str]:
            if waiting is not None:
                subject = f"Update waiting for approval: alert {waiting.id} (follows alert {alert.id})"
                body = (
                    f"The update {waiting.id} to {name(alert)} was due at "
                    f"{when(f.due_at, tz)} {late}\nbut it is {waiting.status}: it must be approved before "
                    f"it can go out.\nOnce approved, send it: alerts alert send {waiting.id}\n"
                )
            else:
                subject = f"Follow-up failed: alert {alert.id}" + (
                    f" {alert.title}" if name is _titled else ""
                )
                body = (
                    f"The {f.kind} follow-up on {name(alert)}, due at {when(f.due_at, tz)} "
                    f"{late}\ncould not be carried out: {result.removeprefix('failed: ')}\n"
                )
            return subject, body + (
                note if with_note else ""
            ) + f"\nOpen it: {alert_link(app, target)}\n" + footer(f)

        users = await _officers(session, [alert.author_id, f.created_by])
        notices = await _notices(session, users, alert, compose_acted)
        return Plan(result=result, notices=notices, already=already, attempts=attempts)
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

    def compose_reminder(name: Callable[[Alert], str], with_note: bool) -> tuple[str, str]:
        lines = [
            f"A follow-up is due on {name(alert)} ({alert.status}).",
            f"Due: {when(f.due_at, tz)} {late}".rstrip(),
        ]
        if f.note and with_note:
            lines.append(f"Note: {f.note}")
        if f.condition == "no_response":
            who = " or ".join(data.get("kinds", [])) or "anyone"
            lines.append(f"No response from {who} has been recorded so far.")
        lines.append(f"\nOpen the alert: {alert_link(app, alert.id)}")
        subject = f"Follow-up due: alert {alert.id}" + (f" {alert.title}" if name is _titled else "")
        return subject, "\n".join(lines) + "\n" + footer(f)

    users = await _officers(session, [alert.author_id, f.created_by])
    notices = await _notices(session, users, alert, compose_reminder)
    if not notices:
        return Plan(
            result=f"not delivered: no active officer of alert {alert.id} has an email address "
            "or a Telegram chat."
        )
    return Plan(result="reminder", notices=notices, already=already, attempts=attempts)
