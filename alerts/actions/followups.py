"""Follow-ups as officers schedule them: add (a reminder, an update, a send, a digest), cancel.

Every face calls these functions and only presents what they return (see ``alerts.actions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerts.accounts.users import check
from alerts.app import App
from alerts.compose import drafts
from alerts.core.clock import utcnow
from alerts.followups import manage
from alerts.store.models import Followup, User


@dataclass(frozen=True, slots=True, kw_only=True)
class FollowupDone:
    """A follow-up as it stands after the action, in the API's form (``manage.to_json``)."""

    followup_id: int
    kind: str
    alert_id: int | None
    due_at: datetime
    update_alert_id: int | None  # an update follow-up's draft, to review before it is due
    doc: Mapping[str, Any]


def _done(app: App, f: Followup) -> FollowupDone:
    doc = manage.to_json(f, ZoneInfo(app.settings.scheduler.timezone))
    return FollowupDone(
        followup_id=f.id,
        kind=f.kind,
        alert_id=f.alert_id,
        due_at=f.due_at,
        update_alert_id=doc["update_alert_id"],
        doc=doc,
    )


async def add(
    app: App,
    actor: User,
    alert_id: int | None,
    *,
    kind: str,
    due_at: datetime,
    note: str = "",
    data: Mapping[str, Any] | None = None,
    condition: str | None = None,
    kinds: Sequence[str] = (),
) -> FollowupDone:
    """Schedule a follow-up of alert ``alert_id`` (None: a digest, which covers every case)."""
    check(actor, "followup.manage")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id) if alert_id is not None else None
        f = await manage.add_followup(
            session,
            alert=alert,
            kind=kind,
            due_at=due_at,
            note=note,
            data=data,
            condition=condition,
            kinds=kinds,
            user=actor,
            now=utcnow(),
            validate_case=app.renderer.validate_case,
        )
        return _done(app, f)


async def cancel(app: App, actor: User, followup_id: int) -> FollowupDone:
    """Cancel a pending follow-up (a scheduled send is unscheduled with it)."""
    check(actor, "followup.manage")
    async with app.sessions.begin() as session:
        f = await manage.cancel_followup(session, followup_id, user=actor, now=utcnow())
        return _done(app, f)
