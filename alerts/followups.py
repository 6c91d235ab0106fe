"""Follow-ups: reminders to officers, update alerts, scheduled sends and weekly digests.

The ``Followup`` row is the truth; the scheduler (``alerts.scheduler``) only decides *when*
to call ``fire``. ``fire`` claims a row with one guarded UPDATE (``fired_at`` set only where
it is still NULL and the row is not cancelled), so however many processes or jobs call it,
exactly one acts. What a follow-up changes in the database (publishing an update, the next
digest) happens in the claiming transaction: committed together or not at all. Messages to
officers go out after the claim commits; a transient failure re-arms the row for a later
attempt (only to the officers not yet reached), so a reminder is neither lost nor doubled.

``add_followup``, ``cancel_followup`` and ``list_followups`` add to the session and flush;
the caller commits (or rolls back on an error: nothing is then written).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts import audit, drafts, reminders
from alerts.errors import AlertsError, Conflict, NotFound, ValidationError
from alerts.models import Alert, Followup, User
from alerts.publish import publish, schedule
from alerts.reminders import FIRING
from alerts.states import AlertStatus, ContactKind, FollowupKind
from alerts.users import check

if TYPE_CHECKING:
    from alerts.app import App

logger = logging.getLogger(__name__)

A = AlertStatus
K = FollowupKind

#: A due time this far in the past still fires at once (a typed "now" that took a while).
PAST_GRACE = timedelta(minutes=1)
MAX_NOTE = 2000
CONDITIONS = ("no_response", "case_open")
UPDATE_FAMILIES = ("update", "closure")
DIGEST_EVERY = timedelta(days=7)
#: A row claimed this long ago and still ``firing`` was cut short by a crash: fire it again.
STALLED_AFTER = timedelta(minutes=5)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_DURATION = re.compile(r"(\d+)([wdhms])")
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


def status_of(f: Followup) -> str:
    """pending | retrying | fired | cancelled."""
    if f.cancelled_at is not None:
        return "cancelled"
    if f.fired_at is not None:
        return "fired"
    return "retrying" if (f.data or {}).get("attempts") else "pending"


def to_json(f: Followup, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """The API / ``followup list --json`` form of a follow-up (times in UTC, plus local due time)."""
    data = dict(f.data or {})
    return {
        "id": f.id,
        "alert_id": f.alert_id,
        "kind": f.kind,
        "status": status_of(f),
        "due_at": f.due_at.isoformat(),
        "due_local": f.due_at.astimezone(tz).isoformat() if tz is not None else None,
        "note": f.note,
        "condition": f.condition,
        "kinds": data.get("kinds", []),
        "update_alert_id": data.get("update_alert_id"),
        "created_by": f.created_by,
        "created_at": f.created_at.isoformat(),
        "fired_at": f.fired_at.isoformat() if f.fired_at else None,
        "cancelled_at": f.cancelled_at.isoformat() if f.cancelled_at else None,
        "late_seconds": f.late_seconds,
        "result": f.result,
    }


def _clean_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ValidationError(f"note: longer than {MAX_NOTE} characters.", details={"field": "note"})
    if _CONTROL.search(note):
        raise ValidationError("note: must not contain control characters.", details={"field": "note"})
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
        raise ValidationError(
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
            raise ValidationError(
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


async def get_followup(session: AsyncSession, followup_id: int) -> Followup:
    """The follow-up with this id, freshly read; NotFound otherwise."""
    f = await session.get(Followup, followup_id, populate_existing=True)
    if f is None:
        raise NotFound(f"follow-up {followup_id} does not exist.")
    return f


async def list_followups(
    session: AsyncSession, *, alert_id: int | None = None, include_done: bool = True, limit: int = 1000
) -> list[Followup]:
    """Follow-ups by due time (of one alert if given); ``include_done`` False: pending only."""
    query = select(Followup).order_by(Followup.due_at, Followup.id).limit(limit)
    if alert_id is not None:
        query = query.where(Followup.alert_id == alert_id)
    if not include_done:
        query = query.where(Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
    return list((await session.scalars(query)).all())


async def cancel_followup(session: AsyncSession, followup_id: int, *, user: User, now: datetime) -> Followup:
    """Cancel a pending follow-up (a scheduled send is unscheduled too); refused once it has fired."""
    check(user, "followup.manage")
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Followup)
            .where(Followup.id == followup_id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None))
            .values(cancelled_at=now, result=f"cancelled by {user.name}")
            .execution_options(synchronize_session=False)
        ),
    )
    f = await get_followup(session, followup_id)
    if result.rowcount != 1:
        if f.cancelled_at is not None:
            raise Conflict(f"follow-up {followup_id} was already cancelled at {f.cancelled_at.isoformat()}.")
        assert f.fired_at is not None
        raise Conflict(
            f"follow-up {followup_id} fired at {f.fired_at.isoformat()}: it can no longer be cancelled.",
            details={"result": f.result},
        )
    if f.kind == K.SEND and f.alert_id is not None:
        # Unschedule the alert, unless someone rescheduled it for another time meanwhile.
        await session.execute(
            update(Alert)
            .where(Alert.id == f.alert_id, Alert.status == A.SCHEDULED.value, Alert.send_at == f.due_at)
            .values(status=A.APPROVED.value, send_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await audit.record(
        session,
        user_id=user.id,
        action="followup.cancel",
        object_type="followup",
        object_id=followup_id,
        details={"alert": f.alert_id, "kind": f.kind},
        now=now,
    )
    return f


async def pending(session: AsyncSession) -> dict[int, datetime]:
    """{id: due_at} of every follow-up neither fired nor cancelled (what the scheduler must hold)."""
    rows = await session.execute(
        select(Followup.id, Followup.due_at).where(
            Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
        )
    )
    return {fid: due for fid, due in rows.all()}


async def due_followups(session: AsyncSession, now: datetime) -> list[int]:
    """Ids of pending follow-ups due at ``now``, oldest first."""
    rows = await session.scalars(
        select(Followup.id)
        .where(Followup.fired_at.is_(None), Followup.cancelled_at.is_(None), Followup.due_at <= now)
        .order_by(Followup.due_at, Followup.id)
    )
    return list(rows.all())


async def rearm_stalled(session: AsyncSession, now: datetime) -> list[int]:
    """Follow-ups claimed but never finished (the process died while sending): fire them again."""
    rows = (
        await session.scalars(
            select(Followup.id).where(Followup.result == FIRING, Followup.fired_at < now - STALLED_AFTER)
        )
    ).all()
    for fid in rows:
        await session.execute(
            update(Followup)
            .where(Followup.id == fid, Followup.result == FIRING)
            .values(fired_at=None, result="interrupted while sending; fired again")
            .execution_options(synchronize_session=False)
        )
    if rows:
        logger.warning("%d follow-up(s) were interrupted while sending; firing them again", len(rows))
    return list(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fired:
    """What one ``fire`` call did."""

    followup_id: int
    kind: str
    result: str
    late_seconds: float


async def fire(app: App, followup_id: int, now: datetime) -> Fired | None:
    """Claim and act on one follow-up; None if another caller claimed it (or it was cancelled)."""
    async with app.sessions.begin() as session:
        won = cast(
            CursorResult[Any],
            await session.execute(
                update(Followup)
                .where(
                    Followup.id == followup_id, Followup.fired_at.is_(None), Followup.cancelled_at.is_(None)
                )
                .values(fired_at=now, result=FIRING)
                .execution_options(synchronize_session=False)
            ),
        )
        if won.rowcount != 1:
            return None
        f = await get_followup(session, followup_id)
        f.late_seconds = max(0.0, (now - f.due_at).total_seconds())
        acted = await act_on_alert(session, app, f, now=now) if f.kind in (K.UPDATE, K.SEND) else None
        plan = await reminders.plan(session, app, f, now=now, acted=acted)
        f.result = plan.result if not plan.notices else FIRING
        kind, late = f.kind, f.late_seconds
    if plan.notices:
        result = await reminders.deliver(app, followup_id, plan, now=now)
    else:
        result = plan.result
    logger.info(
        "follow-up %s (%s) fired %.0f s after its due time: %s",
        followup_id,
        kind,
        late,
        result.splitlines()[0] if result else "",
    )
    return Fired(followup_id=followup_id, kind=kind, result=result, late_seconds=late)


async def act_on_alert(
    session: AsyncSession, app: App, f: Followup, *, now: datetime
) -> tuple[str, Alert | None]:
    """The database effect of an update or send follow-up, inside the claim's transaction.

    Returns (result text, the update alert still waiting for approval or None). A refusal
    (approval or consent missing) is kept as the result; the claim itself stands.
    """
    data = f.data or {}
    target_id = data.get("update_alert_id") if f.kind == K.UPDATE else f.alert_id
    if not isinstance(target_id, int):
        return "failed: the follow-up names no alert to send.", None
    alert = await session.get(Alert, target_id, populate_existing=True)
    if alert is None:
        return f"failed: alert {target_id} no longer exists.", None
    what = "update" if f.kind == K.UPDATE else "alert"
    if f.kind == K.SEND:
        # The same guarded change as the dispatcher's publish_due: whoever moves it off
        # ``scheduled`` first publishes it; the other finds it already going.
        won = cast(
            CursorResult[Any],
            await session.execute(
                update(Alert)
                .where(Alert.id == alert.id, Alert.status == A.SCHEDULED.value)
                .values(status=A.APPROVED.value)
                .execution_options(synchronize_session=False)
            ),
        )
        await session.refresh(alert)
        if won.rowcount != 1:
            if alert.status in (A.SENDING, A.SENT):
                return f"alert {alert.id} was already published (at its scheduled time).", None
            return f"skipped: alert {alert.id} is {alert.status}, no longer scheduled.", None
    elif alert.status in (A.DRAFT, A.IN_REVIEW):
        return f"update alert {alert.id} is {alert.status}, not approved: officers reminded.", alert
    elif alert.status in (A.SCHEDULED, A.SENDING, A.SENT):
        return f"update alert {alert.id} is already {alert.status}.", None
    elif alert.status == A.CLOSED:
        return f"skipped: update alert {alert.id} is closed.", None
    try:
        async with session.begin_nested():
            n = await publish(session, alert, now=now, webhook_url=app.settings.webhook.url)
    except AlertsError as exc:
        return f"failed: {exc.message}", None
    return f"{what} {alert.id} published: {n} deliveries queued.", None
