"""What people read about alerts: the list of alerts, the officers' board of them, and who an
alert will reach and who it leaves out and why (``delivery.audience_report``).

Every face calls these functions and only presents what they return (see ``alerts.actions``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from alerts.accounts.users import check
from alerts.app import App
from alerts.compose import approval, drafts
from alerts.compose.casedata import case_country
from alerts.core.clock import iso
from alerts.delivery import tracking
from alerts.delivery.audience import PUBLIC, public_withdrawn
from alerts.delivery.audience_report import AudienceReport, report
from alerts.store.models import Alert, User
from channels import configured_channels


@dataclass(frozen=True, slots=True, kw_only=True)
class Listed:
    """An alert as listed."""

    id: int
    title: str
    family: str
    status: str
    languages: tuple[str, ...]
    is_public: bool
    parent_id: int | None
    paused: bool
    created_at: datetime
    published_at: datetime | None
    author_id: int
    updated_at: datetime

    @classmethod
    def of(cls, alert: Alert) -> Listed:
        return cls(
            id=alert.id,
            title=alert.title,
            family=alert.family,
            status=alert.status,
            languages=tuple(alert.languages),
            is_public=alert.is_public,
            parent_id=alert.parent_id,
            paused=alert.paused,
            created_at=alert.created_at,
            published_at=alert.published_at,
            author_id=alert.author_id,
            updated_at=alert.updated_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "family": self.family,
            "status": self.status,
            "languages": list(self.languages),
            "is_public": self.is_public,
            "parent_id": self.parent_id,
            "paused": self.paused,
            "created_at": iso(self.created_at),
            "published_at": iso(self.published_at),
        }


async def list_alerts(
    app: App, actor: User, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[Listed]:
    """Alerts, newest first; ``status`` narrows to one status."""
    check(actor, "view")
    query = select(Alert).order_by(Alert.id.desc()).limit(limit).offset(offset)
    if status:
        query = query.where(Alert.status == status)
    async with app.reads() as session:
        return [Listed.of(a) for a in (await session.scalars(query)).all()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Board:
    """The officers' board: the alerts touched last, their deliveries by state, the authors."""

    alerts: list[Listed]
    totals: dict[int, dict[str, int]]  # alert id → delivery state → count
    by_status: dict[str, int]  # every alert, by status
    authors: dict[int, str]  # user id → name, for the alerts listed


async def board(app: App, actor: User, *, status: str | None = None, limit: int = 200) -> Board:
    """The alerts touched last (``status`` narrows), with their delivery totals and authors."""
    check(actor, "view")
    query = select(Alert).order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(limit)
    if status:
        query = query.where(Alert.status == status)
    async with app.reads() as session:
        alerts = [Listed.of(a) for a in (await session.scalars(query)).all()]
        ids = [a.id for a in alerts]
        totals = await tracking.totals_by_alert(session, ids)  # pruned alerts' kept counts too
        counted = await session.execute(select(Alert.status, func.count()).group_by(Alert.status))
        by_status = {str(s): int(n) for s, n in counted.all()}
        author_ids = {a.author_id for a in alerts}
        names = await session.execute(select(User.id, User.name).where(User.id.in_(author_ids)))
        authors = {uid: name for uid, name in names.all()} if author_ids else {}
    return Board(alerts=alerts, totals=totals, by_status=by_status, authors=authors)


async def audience(app: App, actor: User, alert_id: int, *, kept: bool = False) -> AudienceReport:
    """The alert's audience as a send would write it now (as written, once it went out).

    Counted with the languages approved so far, or, before any approval, every language the
    alert is written in; public contacts count only with the defender's consent. Asked again
    within seconds about the alert as it stands, the same report answers
    (``delivery.audience_reports``: at a million contacts it takes seconds).
    """
    found = await audience_within(app, actor, alert_id, within=None, kept=kept)
    assert found is not None  # with no time limit there is always a report
    return found


async def audience_within(
    app: App, actor: User, alert_id: int, *, within: float | None, kept: bool = False
) -> AudienceReport | None:
    """``audience``, or None if it is not ready within ``within`` seconds: the work goes on,
    and the next call about the alert as it stands gets its report (the alert's page shows
    without it, then asks for it). ``kept``: a report counted up to ``KEEP`` seconds ago
    for a page that stopped waiting will do (the officers' pages)."""
    check(actor, "view")
    async with app.reads() as session:
        alert = await drafts.get_alert(session, alert_id)
        languages = await approval.approved_languages(session, alert) or list(alert.languages)
        withdrawn = alert.id in await public_withdrawn(session, [alert.id])
        country = case_country((await drafts.current_version(session, alert)).case_data)
    exclude = (PUBLIC,) if withdrawn else ()
    # everything the report reads of the alert, its approvals and consent: a change to any of
    # them is another question; the contacts' changes show once the kept report is KEEP old
    question = (
        alert.id,
        alert.updated_at,
        alert.status,
        json.dumps(alert.audience, sort_keys=True),
        tuple(languages),
        exclude,
        country,
        alert.fanned_out_at,
    )

    async def work() -> AudienceReport:
        async with app.reads() as session:
            return await report(
                session,
                alert,  # as the question read it (its columns stay loaded: reads do not expire)
                languages=languages,
                exclude_kinds=exclude,
                available=configured_channels(app.settings),
                webhook_url=app.settings.webhook.url,
                country=country,
            )

    return await app.reports.get(question, work, within=within, kept=kept)
