"""Retention: ``alerts prune --older-than 180d`` deletes the outbox rows and delivery events of
long-finished alerts and keeps their counts (``alerts.delivery.retention`` says which alerts).

Every face calls these functions and only presents what they return (see ``alerts.actions``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.accounts.users import check
from alerts.app import App
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.delivery import retention
from alerts.followups.add import parse_duration
from alerts.store import audit
from alerts.store.models import User

BATCH = 20  # alerts per transaction: short write locks, and a progress bar that moves

Progress = Callable[[int, int], None]  # (alerts done, alerts in all)


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneReport:
    """What was (``dry_run``: would be) deleted: alerts finished before ``before``."""

    before: datetime
    dry_run: bool
    alerts: list[int]
    deliveries: int
    events: int

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        n = len(self.alerts)
        return (
            f"{n} alert{'' if n == 1 else 's'} finished before {self.before.isoformat(timespec='seconds')}: "
            f"{verb} {self.deliveries} deliveries and {self.events} delivery events; "
            "their counts are kept"
        )


async def prune(
    app: App,
    actor: User,
    *,
    older_than: str,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PruneReport:
    """Delete the deliveries and events of the alerts finished more than ``older_than`` ago
    (``180d``, ``26w``), keeping their counts; ``dry_run``: only count. One audit entry per
    batch of alerts, in the transaction that deletes them."""
    check(actor, "data.prune")
    age = parse_duration(older_than, field="--older-than")
    if age < timedelta(days=1):
        raise ValidationError(
            f"--older-than: {older_than!r} is less than a day; "
            "retention keeps a day of delivery records at least.",
            details={"field": "older_than"},
        )
    now = utcnow()
    before = now - age
    async with app.reads() as session:
        ids = await retention.prunable(session, before=before)
        if dry_run:
            deliveries, events = await retention.rows_of(session, ids)
            return PruneReport(before=before, dry_run=True, alerts=ids, deliveries=deliveries, events=events)
    done: list[int] = []
    deliveries = events = 0
    if progress is not None:
        progress(0, len(ids))
    for start in range(0, len(ids), BATCH):
        async with app.sessions.begin() as session:
            # checked again where it deletes: a resend or a new follow-up since keeps the rows
            batch = await retention.prunable(session, before=before, among=ids[start : start + BATCH])
            pruned = [await retention.prune_alert(session, alert_id) for alert_id in batch]
            if pruned:
                await audit.record(
                    session,
                    user_id=actor.id,
                    action="deliveries.prune",
                    object_type="alert",
                    object_id=None,
                    details={
                        "older_than": older_than,
                        "before": before.isoformat(),
                        "alerts": [p.alert_id for p in pruned],
                        "deliveries": sum(p.deliveries for p in pruned),
                        "events": sum(p.events for p in pruned),
                    },
                    now=now,
                )
        done += [p.alert_id for p in pruned]
        deliveries += sum(p.deliveries for p in pruned)
        events += sum(p.events for p in pruned)
        if progress is not None:
            progress(min(start + BATCH, len(ids)), len(ids))
    return PruneReport(before=before, dry_run=False, alerts=done, deliveries=deliveries, events=events)
