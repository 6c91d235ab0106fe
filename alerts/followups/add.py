"""Adding follow-ups: every refusal names what is wrong, and nothing is half-written.

``add_followup`` validates a reminder, update, send or digest and writes it (an update's
draft, a send's scheduling and the audit entry with it) into the caller's transaction;
``parse_duration`` and ``normalise_condition`` read what the CLI, API and UI were given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts.users import check
from alerts.compose import drafts
from alerts.core.errors import Conflict, ValidationError
from alerts.core.states import AlertStatus, ContactKind, FollowupKind
from alerts.core.text import check_text
from alerts.delivery.publish import schedule
from alerts.followups.digest import DIGEST_EVERY, lock_digests, pending_digest
from alerts.store import audit
from alerts.store.models import Alert, Followup, User

A = AlertStatus
K = FollowupKind

#: A due time this far in the past still fires at once (a typed "now" that took a while).
PAST_GRACE = timedelta(minutes=1)
MAX_NOTE = 2000
CONDITIONS = ("no_response", "case_open")
UPDATE_FAMILIES = ("update", "closure")
_DURATION = re.compile(r"([0-9]+)([wdhms])")  # ASCII digits only
#: The furthest a duration reaches: beyond what the API's 16-character form can say (about
#: 575 years), and far enough from datetime's year 9999 that adding it to now cannot overflow.
MAX_DURATION = timedelta(days=1000 * 366)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str, *, field: str = "--in") -> timedelta:
    """``7d``, ``36h``, ``1w2d``, ``90m`` → timedelta; ValidationError naming ``field`` otherwise."""
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValidationError(
            f"{field}: {text!r} is not a duration such as 7d, 36h, 90m or 1w2d.", details={"field": field}
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValidationError(f"{field}: {text!r} is not a positive duration.", details={"field": field})
    if seconds > MAX_DURATION.total_seconds():
        raise ValidationError(
            f"{field}: {text!r} is further than {MAX_DURATION.days} days ahead.", details={"field": field}
        )
    return timedelta(seconds=seconds)


def normalise_condition(condition: str | None) -> str | None:
    """``no-response``/``no_response`` → ``no_response``; ValidationError for an unknown one."""
    if condition is None or condition == "":
        return None
    value = condition.strip().lower().replace("-", "_")
    if value not in CONDITIONS:
        raise ValidationError(
            f"condition: {condition!r} is not a condition; conditions are no-response, case-open.",
            details={"field": "condition"},
        )
    return value


def _clean_note(note: str) -> str:
    note = check_text(note, "note").strip()
    if len(note) > MAX_NOTE:
        raise ValidationError(f"note: longer than {MAX_NOTE} characters.", details={"field": "note"})
    return note


def _check_kinds(kinds: Sequence[str], condition: str | None) -> list[str]:
    names = [k.value for k in ContactKind]
    out: list[str] = []
    for kind in kinds:
        if kind not in names:
            raise ValidationError(
                f"kind filter: unknown contact kind {kind!r}; kinds are {', '.join(names)}.",
                details={"field": "kinds"},
            )
        if kind not in out:
            out.append(kind)
    if out and condition != "no_response":
        raise ValidationError(
            "kind filter: only a no-response condition can be narrowed to contact kinds.",
            details={"field": "kinds"},
        )
    return out


async def add_followup(
    session: AsyncSession,
    *,
    alert: Alert | None,
    kind: str,
    due_at: datetime,
    user: User,
    now: datetime,
    note: str = "",
    data: Mapping[str, Any] | None = None,
    condition: str | None = None,
    kinds: Sequence[str] = (),
    validate_case: drafts.CaseValidator | None = None,
) -> Followup:
    """Schedule a follow-up; every refusal names what is wrong and nothing is written.

    ``update`` creates the update (or closure) draft at once, threaded under ``alert``, so it
    can be reviewed and approved before it is due; ``send`` schedules the approved alert for
    ``due_at`` exactly as ``alerts alert send --at`` does.
    """
    check(user, "followup.manage")
    if kind not in {k.value for k in FollowupKind}:
        raise ValidationError(
            f"kind: {kind!r} is not a follow-up kind; kinds are {', '.join(k.value for k in FollowupKind)}.",
            details={"field": "kind"},
        )
    if due_at.tzinfo is None:
        raise ValidationError(
            "due time: needs a time zone (or is taken as UTC by the CLI).", details={"field": "due_at"}
        )
    if due_at < now - PAST_GRACE:
        # A well-formed time that the clock has passed: refused as a conflict with the present,
        # like a send time in the past (delivery.publish), not as malformed input.
        raise Conflict(
            f"due time: {due_at.isoformat()} is in the past; give a future time "
            "(a time within the last minute fires at once).",
            details={"field": "due_at"},
        )
    note = _clean_note(note)
    cond = normalise_condition(condition)
    if cond is not None and kind != K.REMINDER:
        raise ValidationError(
            f"condition: only reminders are conditional, not {kind} follow-ups.",
            details={"field": "condition"},
        )
    stored: dict[str, Any] = {}
    kind_filter = _check_kinds(kinds, cond)
    if kind_filter:
        stored["kinds"] = kind_filter
    if data is not None and kind != K.UPDATE:
        raise ValidationError(
            f"data: only update follow-ups take case data, not {kind} follow-ups.", details={"field": "data"}
        )
    if kind == K.DIGEST:
        if alert is not None:
            raise ValidationError(
                "alert: a digest covers every open case; give no alert (CLI: '-').",
                details={"field": "alert"},
            )
        stored["every_days"] = DIGEST_EVERY.days
        await _check_no_pending_digest(session, user)
    else:
        if alert is None:
            raise ValidationError(
                f"alert: a {kind} follow-up needs the alert it follows up.", details={"field": "alert"}
            )
        if alert.status == A.CLOSED:
            raise Conflict(
                f"alert {alert.id} is closed: no more follow-ups on a closed case.",
                details={"alert": alert.id},
            )
    if kind == K.UPDATE:
        assert alert is not None
        stored.update(
            await _create_update_draft(
                session, alert, data=data, user=user, now=now, validate_case=validate_case
            )
        )
    elif kind == K.SEND:
        assert alert is not None
        await _check_no_pending_send(session, alert.id)
        if due_at <= now:
            raise Conflict(
                f"due time: {due_at.isoformat()} is not in the future; to send alert "
                f"{alert.id} now, use `alerts alert send {alert.id}`.",
                details={"field": "due_at"},
            )
        await schedule(session, alert, at=due_at, now=now)
    followup = Followup(
        alert_id=alert.id if alert is not None else None,
        kind=kind,
        due_at=max(due_at, now),
        note=note,
        data=stored or None,
        condition=cond,
        created_by=user.id,
        created_at=now,
    )
    session.add(followup)
    await session.flush()
    await audit.record(
        session,
        user_id=user.id,
        action="followup.add",
        object_type="followup",
        object_id=followup.id,
        now=now,
        details={
            "alert": followup.alert_id,
            "kind": kind,
            "due_at": followup.due_at.isoformat(),
            "condition": cond,
        },
    )
    return followup


async def _create_update_draft(
    session: AsyncSession,
    parent: Alert,
    *,
    data: Mapping[str, Any] | None,
    user: User,
    now: datetime,
    validate_case: drafts.CaseValidator | None,
) -> dict[str, Any]:
    if not data:
        raise ValidationError(
            "data: an update follow-up needs the update's case data (like templates/update/example.toml).",
            details={"field": "data"},
        )
    if validate_case is None:
        raise ValueError("validate_case is required for update follow-ups")  # a programming error
    if parent.status not in (A.SCHEDULED, A.SENDING, A.SENT):
        raise Conflict(
            f"alert {parent.id} is {parent.status}: an update follows an alert that is sent or scheduled.",
            details={"alert": parent.id, "status": parent.status},
        )
    case = dict(data)
    family = case.pop("family", "update")
    if family not in UPDATE_FAMILIES:
        raise ValidationError(
            f"data: family {family!r} is not an update family; use update or closure.",
            details={"field": "family"},
        )
    draft = await drafts.create_alert(
        session,
        author=user,
        family=family,
        case_data=case,
        audience=drafts.Audience.from_json(parent.audience),
        is_public=parent.is_public,
        validate_case=validate_case,
        now=now,
    )
    draft.parent_id = parent.id
    await session.flush()
    return {"update_alert_id": draft.id, "family": family}


async def _check_no_pending_send(session: AsyncSession, alert_id: int) -> None:
    pending = await session.scalar(
        select(Followup.id).where(
            Followup.alert_id == alert_id,
            Followup.kind == K.SEND.value,
            Followup.fired_at.is_(None),
            Followup.cancelled_at.is_(None),
        )
    )
    if pending is not None:
        raise Conflict(
            f"alert {alert_id} already has a scheduled send (follow-up {pending}): cancel it first.",
            details={"followup": pending},
        )


async def _check_no_pending_digest(session: AsyncSession, user: User) -> None:
    await lock_digests(session)  # held until the caller commits: no second digest slips in meanwhile
    existing = await pending_digest(session, user.id)
    if existing is not None:
        raise Conflict(
            f"{user.name} already has a weekly digest (follow-up {existing.id}, due "
            f"{existing.due_at.isoformat()}): cancel it first.",
            details={"followup": existing.id},
        )
