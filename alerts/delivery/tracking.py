"""Counts by channel and state; delivery listings; responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ALL
from alerts.core.clock import iso
from alerts.core.errors import ValidationError
from alerts.core.states import DeliveryState, EventType
from alerts.core.text import check_line, check_text
from alerts.delivery.retention import pruned_counts
from alerts.store.events import is_engagement
from alerts.store.models import ENGAGEMENTS, Alert, Contact, Delivery, DeliveryEvent, PrunedCount, Response

#: ({channel: {state: n}}, {channel: {"opened": n, "clicked": n}}, responses)
Figures = tuple[dict[str, dict[str, int]], dict[str, dict[str, int]], int]


async def figures(session: AsyncSession, alert_id: int) -> Figures:
    """({channel: {state: n}}, {channel: {"opened": n, "clicked": n}}, responses) for one alert.

    Every state is present (zeros included) and the counts ``alerts prune`` kept of deleted
    deliveries are added in. One statement: the alert page, the stats API and ``alert status``
    ask for them while a send runs, when each round-trip waits behind the dispatcher's work.
    """
    query = union_all(
        select(literal("state").label("part"), Delivery.channel, Delivery.state, func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.channel, Delivery.state),
        select(literal("kept"), PrunedCount.channel, PrunedCount.name, PrunedCount.n).where(
            PrunedCount.alert_id == alert_id
        ),
        # deliveries with each engagement; the (alert_id, type) index reads only these events
        select(
            literal("engaged"),
            Delivery.channel,
            DeliveryEvent.type,
            func.count(func.distinct(DeliveryEvent.delivery_id)),
        )
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(DeliveryEvent.alert_id == alert_id, is_engagement())
        .group_by(Delivery.channel, DeliveryEvent.type),
        select(literal("responses"), literal(""), literal(""), func.count())
        .select_from(Response)
        .where(Response.alert_id == alert_id),
    )
    states = {str(s) for s in DeliveryState}
    by_channel: dict[str, dict[str, int]] = {}
    engaged: dict[str, dict[str, int]] = {}
    responses = 0
    for kind, channel, name, n in (await session.execute(query)).all():
        if kind == "responses":
            responses = int(n)
        elif name in states and kind != "engaged":
            by_channel.setdefault(channel, {str(s): 0 for s in DeliveryState})[name] += int(n)
        elif name in ENGAGEMENTS and kind != "state":
            engaged.setdefault(channel, dict.fromkeys(ENGAGEMENTS, 0))[name] += int(n)
    return by_channel, engaged, responses


async def totals_by_alert(session: AsyncSession, alert_ids: list[int]) -> dict[int, dict[str, int]]:
    """{alert id: {state: n}} over every channel, pruned deliveries included (the dashboard)."""
    totals: dict[int, dict[str, int]] = {}
    if not alert_ids:
        return totals
    rows = await session.execute(
        select(Delivery.alert_id, Delivery.state, func.count())
        .where(Delivery.alert_id.in_(alert_ids))
        .group_by(Delivery.alert_id, Delivery.state)
    )
    states = {str(s) for s in DeliveryState}
    kept = [(a, name, n) for a, _, name, n in await pruned_counts(session, alert_ids) if name in states]
    for aid, state, n in [*rows.all(), *kept]:
        by_state = totals.setdefault(aid, {})
        by_state[state] = by_state.get(state, 0) + int(n)
    return totals


#: States a delivery can still leave (not final).
OPEN_STATES = (str(DeliveryState.QUEUED), str(DeliveryState.SENDING), str(DeliveryState.DEFERRED))


async def has_open(session: AsyncSession, alert_id: int, *, channels: Iterable[str] = ()) -> bool:
    """Whether any delivery of the alert is still open (queued, sending or deferred).

    Every channel is named (``channels`` adds any beyond ``core.channels.ALL``, a test's
    ``memory`` say), so the (alert_id, channel, state) index yields open rows directly: a
    count, or a condition on the state alone, read every delivery of the alert, each time the
    dispatcher polled for completion (tens of ms at 10,000 recipients, seconds at a million).
    """
    names = sorted({str(c) for c in ALL} | set(channels))
    found = await session.execute(
        select(Delivery.id)
        .where(Delivery.alert_id == alert_id, Delivery.channel.in_(names), Delivery.state.in_(OPEN_STATES))
        .limit(1)
    )
    return found.first() is not None


def total_count(by_channel: dict[str, dict[str, int]]) -> int:
    """Every delivery in ``figures``' counts by channel."""
    return sum(n for states in by_channel.values() for n in states.values())


def open_count(by_channel: dict[str, dict[str, int]]) -> int:
    """Deliveries still queued, sending or deferred, in ``figures``' counts by channel."""
    return sum(states.get(s, 0) for states in by_channel.values() for s in OPEN_STATES)


async def alert_figures(session: AsyncSession, alert: Alert) -> Figures:
    """``figures`` of the alert, counted now (``stats``' own way)."""
    return await figures(session, alert.id)


async def stats(
    session: AsyncSession,
    alert: Alert,
    *,
    count: Callable[[AsyncSession, Alert], Awaitable[Figures]] = alert_figures,
) -> dict[str, Any]:
    """The ``alert status --json`` / ``GET alerts/{id}/stats`` document; ``count``: where the
    figures come from (the web's ``App.counts.figures`` shares large sends' counts)."""
    by_channel, engagement, responses = await count(session, alert)
    total = total_count(by_channel)
    open_ = open_count(by_channel)
    return {
        "id": alert.id,
        "state": alert.status,
        "paused": alert.paused,
        "total": total,
        "open": open_,
        "channels": by_channel,
        "engagement": engagement,
        "responses": responses,  # authorities that answered
    }


async def deliveries(
    session: AsyncSession,
    alert_id: int,
    *,
    state: str | None = None,
    channel: str | None = None,
    search: str | None = None,
    with_address: bool = False,
    limit: int = 100,
    offset: int = 0,
    after: int = 0,
) -> list[dict[str, Any]]:
    """Deliveries of an alert with their contact's name, organisation and kind, filterable by
    state, channel and ``search`` (part of the contact's name or organisation, any case);
    the address only ``with_address`` (for the roles that may see contact details).

    In order of id: ``after`` starts past a delivery id (the last one read), which costs the
    same on every page; ``offset`` skips rows, each of them read first (at a million
    deliveries, seconds for a page near the end: a reader of them all goes by ``after``)."""
    if state is not None and state not in {str(s) for s in DeliveryState}:
        raise ValidationError(f"state: {state!r} is not a delivery state.", details={"field": "state"})
    query = (
        select(Delivery, Contact.name, Contact.organisation)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.alert_id == alert_id)
        .order_by(Delivery.id)
        .limit(limit)
        .offset(offset)
    )
    if after:
        query = query.where(Delivery.id > after)
    if state:
        query = query.where(Delivery.state == state)
    if channel:
        query = query.where(Delivery.channel == channel)
    if search:
        needle = check_line(search.strip()[:200], "q")
        query = query.where(
            or_(
                func.lower(Contact.name).contains(needle.lower(), autoescape=True),
                func.lower(Contact.organisation).contains(needle.lower(), autoescape=True),
            )
        )
    rows = (await session.execute(query)).all()
    return [
        {
            "id": d.id,
            "contact_id": d.contact_id,
            "name": name,
            "organisation": organisation,
            "channel": d.channel,
            "audience": d.audience,
            "language": d.language,
            "state": d.state,
            "attempts": d.attempts,
            "next_attempt_at": iso(d.next_attempt_at),
            "provider_id": d.provider_id,
            "last_error": d.last_error,
            "updated_at": d.updated_at.isoformat(),
            **({"address": d.address} if with_address else {}),
        }
        for d, name, organisation in rows
    ]


async def record_response(
    session: AsyncSession,
    alert: Alert,
    *,
    contact_id: int | None,
    summary: str,
    recorded_by: int | None,
    now: datetime,
    responded_at: datetime | None = None,
    sender: str | None = None,
) -> Response:
    """An authority answered: keep who, when and what; mark their deliveries ``responded``.

    ``sender`` is who answered when they are not a contact (free text, already checked).
    """
    summary = check_text(summary, "summary").strip()
    if not summary:
        raise ValidationError("summary: a response needs a summary.", details={"field": "summary"})
    response = Response(
        alert_id=alert.id,
        contact_id=contact_id,
        sender=sender,
        summary=summary,
        responded_at=responded_at or now,
        recorded_by=recorded_by,
    )
    session.add(response)
    if contact_id is not None:
        for d in (
            await session.execute(
                select(Delivery).where(Delivery.alert_id == alert.id, Delivery.contact_id == contact_id)
            )
        ).scalars():
            session.add(
                DeliveryEvent(
                    delivery_id=d.id,
                    alert_id=alert.id,
                    type=str(EventType.RESPONDED),
                    at=now,
                    from_state=d.state,
                    to_state=d.state,
                    attempt=d.attempts,
                    detail="response recorded",
                )
            )
    await session.flush()
    return response
