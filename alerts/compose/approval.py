"""Review, per-language approval by a second person, the defender's consent, and status changes.

draft -> in_review (submit) -> approved (every language of the current version approved by
someone other than its author) -> scheduled | sending -> sent -> closed. ``ready_to_send`` is
the gate the fan-out calls before anything leaves the building. Functions add to the session
and flush; the caller commits (or rolls back on an error: nothing is then written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.compose.drafts import ALERT_TRANSITIONS, current_version, move
from alerts.core.errors import ApprovalRequired, Conflict, ConsentRequired, PermissionDenied, ValidationError
from alerts.core.msgids import N_
from alerts.core.states import AlertStatus, ContactKind, Role
from alerts.core.text import check_text
from alerts.store import audit
from alerts.store.models import Alert, AlertVersion, Approval, Consent, User

A = AlertStatus
CONSENT_SCOPES = ("public", "restricted")
MAX_NOTE = 2000

#: The permission each target status needs (see users.PERMISSIONS).
_ACTION_FOR: dict[AlertStatus, str] = {
    A.DRAFT: "alert.edit",
    A.IN_REVIEW: "alert.submit",
    A.APPROVED: "alert.send",  # only from scheduled (unschedule); approval itself is approve()
    A.SCHEDULED: "alert.send",
    A.SENDING: "alert.send",
    A.SENT: "alert.send",
    A.CLOSED: "alert.close",
}

#: Statuses in which an alert's current version is approved.
_APPROVED_STATUSES = frozenset({A.APPROVED, A.SCHEDULED, A.SENDING, A.SENT})


async def _approved_in(session: AsyncSession, version: AlertVersion) -> set[str]:
    rows = await session.scalars(select(Approval.language).where(Approval.version_id == version.id))
    return set(rows.all())


async def approved_languages(session: AsyncSession, alert: Alert) -> list[str]:
    """The alert's languages approved in its current version, in the alert's order."""
    done = await _approved_in(session, await current_version(session, alert))
    return [language for language in alert.languages if language in done]


async def submit(session: AsyncSession, alert: Alert, *, user: User, now: datetime) -> list[User]:
    """Send a draft for review; returns the users to notify (active reviewers and admins who may approve)."""
    check(user, "alert.submit")
    if alert.status != A.DRAFT:
        raise Conflict.said(
            N_("alert %(alert)s is %(state)s: only a draft can be submitted for review"),
            alert=alert.id,
            state=alert.status,
        )
    version = await current_version(session, alert)
    await move(session, alert, A.IN_REVIEW, now=now)
    await audit.record(
        session,
        user_id=user.id,
        action="alert.submit",
        object_type="alert",
        object_id=alert.id,
        details={"version": version.number},
        now=now,
    )
    reviewers = await session.scalars(
        select(User)
        .where(
            User.role.in_([Role.REVIEWER.value, Role.ADMIN.value]),
            User.active.is_(True),
            User.id.not_in({alert.author_id, version.created_by}),
        )
        .order_by(User.name)
    )
    return list(reviewers.all())


async def approve(
    session: AsyncSession,
    alert: Alert,
    *,
    user: User,
    languages: Sequence[str] | None = None,
    require_second_approver: bool = True,
    now: datetime,
) -> list[str]:
    """Approve languages (default: all) of the current version; returns the languages still unapproved.

    The alert becomes approved when none remain.
    """
    check(user, "alert.approve")
    if alert.status != A.IN_REVIEW:
        raise Conflict.said(
            N_("alert %(alert)s is %(state)s: only an alert in review can be approved"),
            alert=alert.id,
            state=alert.status,
        )
    version = await current_version(session, alert)
    if require_second_approver:
        if user.id == alert.author_id:
            raise PermissionDenied.said(
                N_(
                    "alert %(alert)s: the author cannot approve their own alert; "
                    "a second person must approve it"
                ),
                alert=alert.id,
            )
        if user.id == version.created_by:
            raise PermissionDenied.said(
                N_(
                    "alert %(alert)s: %(user)r wrote version %(version)s and cannot approve it; "
                    "a second person must approve it"
                ),
                alert=alert.id,
                user=user.name,
                version=version.number,
            )
    wanted = list(alert.languages) if languages is None else list(dict.fromkeys(languages))
    for language in wanted:
        if language not in alert.languages:  # a well-formed code this alert lacks: its state, not the request
            raise Conflict(
                f"alert {alert.id}: language {language!r} is not one of the alert's languages "
                f"({', '.join(alert.languages)})",
                details={"field": "languages", "languages": list(alert.languages)},
            )
    done = await _approved_in(session, version)
    again = [language for language in wanted if language in done]
    if languages is not None and again:
        raise Conflict.said(
            N_("alert %(alert)s: version %(version)s is already approved in %(languages)s"),
            alert=alert.id,
            version=version.number,
            languages=", ".join(again),
        )
    new = [language for language in wanted if language not in done]
    for language in new:
        session.add(Approval(version_id=version.id, language=language, approved_by=user.id, approved_at=now))
    remaining = [language for language in alert.languages if language not in done and language not in new]
    # Compare-and-set even when the status stays: the approvals must be of the current version.
    await move(session, alert, A.IN_REVIEW if remaining else A.APPROVED, now=now)
    await audit.record(
        session,
        user_id=user.id,
        action="alert.approve",
        object_type="alert",
        object_id=alert.id,
        details={"version": version.number, "languages": new, "remaining": remaining},
        now=now,
    )
    return remaining


async def record_consent(
    session: AsyncSession, alert: Alert, *, user: User, scope: str, note: str = "", now: datetime
) -> Consent:
    """Record the defender's consent to publicity; the latest record is the one that counts.

    When the latest scope becomes ``restricted``, the alert's deliveries to public contacts
    that have not gone out yet (queued, deferred) are cancelled: consent is withdrawn.
    """
    check(user, "alert.consent")
    if scope not in CONSENT_SCOPES:
        raise ValidationError(f"consent scope: {scope!r} is not one of {', '.join(CONSENT_SCOPES)}")
    note = check_text(note, "consent note")
    if len(note) > MAX_NOTE:
        raise ValidationError(f"consent note: longer than {MAX_NOTE} characters")
    consent = Consent(alert_id=alert.id, scope=scope, recorded_by=user.id, recorded_at=now, note=note)
    session.add(consent)
    await session.flush()
    await audit.record(
        session,
        user_id=user.id,
        action="alert.consent",
        object_type="alert",
        object_id=alert.id,
        details={"scope": scope},
        now=now,
    )
    return consent


async def consent_scope(session: AsyncSession, alert: Alert) -> str | None:
    """The scope of the latest consent recorded for ``alert`` (a later "restricted" withdraws "public")."""
    return await session.scalar(
        select(Consent.scope)
        .where(Consent.alert_id == alert.id)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
    )


def addressed_to_public(alert: Alert) -> bool:
    """Whether the alert is public or names the public kind in its audience."""
    return alert.is_public or ContactKind.PUBLIC.value in (alert.audience or {}).get("kinds", [])


async def ready_to_send(session: AsyncSession, alert: Alert) -> None:
    """Raise ApprovalRequired or ConsentRequired unless ``alert`` may be published now."""
    if AlertStatus(alert.status) not in _APPROVED_STATUSES:
        raise ApprovalRequired.said(
            N_("alert %(alert)s is %(state)s: it must be approved before sending"),
            alert=alert.id,
            state=alert.status,
        )
    version = await current_version(session, alert)
    done = await _approved_in(session, version)
    missing = [language for language in alert.languages if language not in done]
    if missing:
        raise ApprovalRequired.said(
            N_("alert %(alert)s: version %(version)s is not approved in %(languages)s"),
            details={"languages": missing},
            alert=alert.id,
            version=version.number,
            languages=", ".join(missing),
        )
    if addressed_to_public(alert) and await consent_scope(session, alert) != "public":
        raise ConsentRequired.said(
            N_(
                "alert %(alert)s is addressed to the public: record the defender's consent "
                "(alerts alert consent %(alert)s --scope public) before sending"
            ),
            alert=alert.id,
        )


async def set_status(
    session: AsyncSession,
    alert: Alert,
    status: AlertStatus,
    *,
    user: User | None,
    send_at: datetime | None = None,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Move ``alert`` to ``status`` along ``ALERT_TRANSITIONS``; ``user`` None is the service itself.

    Scheduling and sending check ``ready_to_send``; scheduling needs ``send_at``. ``details``
    are added to the audit entry's.
    """
    old = AlertStatus(alert.status)
    if user is not None:
        check(user, _ACTION_FOR[status])
    if status not in ALERT_TRANSITIONS[old]:
        raise Conflict.said(
            N_("alert %(alert)s is %(state)s: it cannot become %(target_state)s"),
            alert=alert.id,
            state=old,
            target_state=status,
        )
    if old is A.IN_REVIEW and status is A.APPROVED:
        raise Conflict(
            f"alert {alert.id} is in review: a reviewer other than its author approves it "
            f"(alerts alert approve {alert.id} --as REVIEWER)"
        )
    values: dict[str, object] = {}
    if status is A.SCHEDULED:
        if send_at is None:
            raise ValidationError(f"alert {alert.id}: a time to send is needed to schedule it")
        if send_at <= now:
            raise ValidationError(
                f"alert {alert.id}: the time to send ({send_at.isoformat()}) is not in the future"
            )
        values["send_at"] = send_at
    if status is A.SCHEDULED or (status is A.SENDING and old is not A.SENT):
        # (sent → sending is resend-failed: the deliveries exist, and those to the public are
        # held back there when consent was withdrawn; the others must still go)
        await ready_to_send(session, alert)
    if old is A.SCHEDULED and status is A.APPROVED:
        values["send_at"] = None
        # a send follow-up for the old time must not publish it later (same transaction)
        from alerts.store.pending_sends import cancel_stale_sends

        await cancel_stale_sends(
            session, alert.id, keep_at=None, now=now, reason="cancelled: the alert was unscheduled"
        )
    if status is A.SENDING and alert.published_at is None:
        values["published_at"] = now
    if status is A.SENT:
        values["completed_at"] = now
    if status is A.CLOSED:
        values["closed_at"] = now
    await move(session, alert, status, now=now, values=values)
    await audit.record(
        session,
        user_id=user.id if user is not None else None,
        action="alert.close" if status is A.CLOSED else "alert.status",
        object_type="alert",
        object_id=alert.id,
        details={"from": old.value, "to": status.value, **(details or {})},
        now=now,
    )


async def close_alert(
    session: AsyncSession,
    alert: Alert,
    *,
    user: User,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Close the case: no more edits or sends (pending deliveries are the outbox's to cancel)."""
    await set_status(session, alert, A.CLOSED, user=user, now=now, details=details)
