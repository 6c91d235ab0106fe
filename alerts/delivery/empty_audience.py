"""Why an alert's audience is empty, in words an officer can act on.

``outbox.fan_out`` refuses an alert that would reach nobody rather than leave it ``sending``
with nothing to send. Only then does this module count, in one grouped query, why each contact
that matches the alert's lists and kinds is left out — the first reason that applies, in the
order fan-out applies them: not active (unsubscribed, pending, erased), public without the
defender's consent, no address for the alert's channels, chose other channels, chose other
topics, suppressed. An update counts the same way over the deliveries its original made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy import String, and_, case, cast, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from alerts.core.channels import address_space
from alerts.core.errors import Conflict
from alerts.delivery.audience import PRESS_KINDS, matching_contacts
from alerts.store.models import Alert, Contact, Delivery, Suppression

#: Each reason a matching contact is left out, as the refusal says it.
REASONS: dict[str, str] = {
    "inactive": "{n} unsubscribed or not active",
    "no_consent": "{n} public, without the defender's consent to publicity",
    "other_kinds": "{n} of other kinds than the update's",
    "no_address": "{n} with no address for {channels}",
    "other_channels": "{n} chose other channels",
    "other_topics": "{n} chose other topics",
    "suppressed": "{n} suppressed (unsubscribed, bounced or blocked the bot)",
    "not_configured": "{n} reachable only on channels not configured here",
    "shared_address": "{n} sharing an address with another recipient (one copy each)",
}


def _has_address(channel: str) -> ColumnElement[bool]:
    column = Contact.telegram if channel == "telegram" else Contact.email
    eligible = and_(column.is_not(None), column != "")
    return and_(eligible, Contact.kind.in_(PRESS_KINDS)) if channel == "press" else eligible


def _chose(channel: Any) -> ColumnElement[bool]:
    """The contact's channel preference allows ``channel`` (press arrives by email)."""
    pref = case((channel == "press", literal("email")), else_=channel)
    return or_(
        Contact.channels.is_(None), cast(Contact.channels, String).like(literal('%"') + pref + literal('"%'))
    )


def _suppressed(channel: str) -> ColumnElement[bool]:
    key = Contact.telegram if channel == "telegram" else func.lower(Contact.email)
    return exists().where(Suppression.channel == address_space(channel)).where(Suppression.address_key == key)


def _names(values: Sequence[str]) -> str:
    return ", ".join(values)


def _scope(lists: Sequence[str], kinds: Sequence[str]) -> tuple[str, str]:
    """(what matches: "its lists (a) and kinds (b)", nobody matches: "no contact is on …")."""
    if lists and kinds:
        return (
            f"its lists ({_names(lists)}) and kinds ({_names(kinds)})",
            f"no contact is on its lists ({_names(lists)}) with its kinds ({_names(kinds)})",
        )
    if lists:
        return f"its lists ({_names(lists)})", f"no contact is on its lists ({_names(lists)})"
    if kinds:
        return f"its kinds ({_names(kinds)})", f"no contact has its kinds ({_names(kinds)})"
    return "it", "there are no contacts"


def original_reason(
    contact_channels: Sequence[str],
    *,
    exclude_kinds: Sequence[str],
    topics: ColumnElement[bool] | None,
    unconfigured: Sequence[str] = (),
    otherwise: str = "suppressed",
) -> ColumnElement[str]:
    """SQL: why a contact matching an original alert's lists and kinds gets nothing — the first
    reason that applies, in the order fan-out applies them (a key of ``REASONS``).

    ``unconfigured``: channels the alert could use that this deployment has not configured (a
    contact reachable only there is ``not_configured``); ``otherwise``: what is left when no
    reason applies (for an empty audience, only a suppression can remain)."""
    reachable = [_has_address(c) for c in contact_channels] or [literal(False)]
    elsewhere = [_has_address(c) for c in unconfigured if c != "webhook"]
    return case(
        (Contact.status != "active", "inactive"),
        (Contact.kind.in_(list(exclude_kinds)) if exclude_kinds else literal(False), "no_consent"),
        (and_(~or_(*reachable), or_(*elsewhere)) if elsewhere else literal(False), "not_configured"),
        (~or_(*reachable), "no_address"),
        (
            ~or_(*(and_(_has_address(c), _chose(literal(c))) for c in contact_channels))
            if contact_channels
            else literal(False),
            "other_channels",
        ),
        (~topics if topics is not None else literal(False), "other_topics"),
        (
            or_(*(_suppressed(c) for c in contact_channels)) if contact_channels else literal(False),
            "suppressed",
        ),
        else_=otherwise,
    )


def update_reason(
    channels: Sequence[str],
    *,
    kinds: Sequence[str],
    exclude_kinds: Sequence[str],
    otherwise: str = "suppressed",
) -> ColumnElement[str]:
    """SQL over (Delivery of the original, its Contact): why an update leaves that recipient out."""
    address = case((Delivery.channel == "telegram", Contact.telegram), else_=Contact.email)
    key = case((Delivery.channel == "telegram", Contact.telegram), else_=func.lower(Contact.email))
    suppressed = (
        exists()
        .where(Suppression.channel == case((Delivery.channel == "telegram", "telegram"), else_="email"))
        .where(Suppression.address_key == key)
    )
    return case(
        (Contact.status != "active", "inactive"),
        (Contact.kind.in_(list(exclude_kinds)) if exclude_kinds else literal(False), "no_consent"),
        (Contact.kind.not_in(list(kinds)) if kinds else literal(False), "other_kinds"),
        (Delivery.channel.not_in(list(channels)) if channels else literal(False), "other_channels"),
        (or_(address.is_(None), address == ""), "no_address"),
        (~_chose(Delivery.channel), "other_channels"),
        (suppressed, "suppressed"),
        else_=otherwise,
    )


def _refuse(alert: Alert, counts: dict[str, int], *, matching: str, channels: Sequence[str]) -> NoReturn:
    total = sum(counts.values())
    parts = [REASONS[r].format(n=counts[r], channels=_names(channels)) for r in REASONS if counts.get(r)]
    raise Conflict(
        f"alert {alert.id} has no recipients: {total} contact{'s match' if total != 1 else ' matches'} "
        f"{matching} and every one is left out: {'; '.join(parts)}.",
        details={"alert": alert.id, "reason": "all_left_out", "matching": total, "left_out": counts},
    )


async def refuse_empty(
    session: AsyncSession,
    alert: Alert,
    *,
    channels: Sequence[str],
    exclude_kinds: Sequence[str],
    topics: ColumnElement[bool] | None,
) -> NoReturn:
    """Raise Conflict saying why the alert's audience (fan-out found nobody) is empty."""
    if alert.parent_id is not None:
        await _refuse_update(session, alert, channels=channels, exclude_kinds=exclude_kinds)
    audience = alert.audience or {}
    lists, kinds = list(audience.get("lists") or ()), list(audience.get("kinds") or ())
    contact_channels = [c for c in channels if c != "webhook"]
    matching, nobody = _scope(lists, kinds)
    if not contact_channels:
        raise Conflict(
            f"alert {alert.id} has no recipients: it goes to no contact channel and the webhook "
            "has no URL configured ([webhook] url).",
            details={"alert": alert.id, "reason": "no_channel", "matching": 0, "left_out": {}},
        )
    reason = original_reason(contact_channels, exclude_kinds=exclude_kinds, topics=topics).label("reason")
    query = select(reason, func.count()).where(*matching_contacts(lists, kinds)).group_by(reason)
    counts = {r: int(n) for r, n in (await session.execute(query)).all()}
    if not counts:
        raise Conflict(
            f"alert {alert.id} has no recipients: {nobody}.",
            details={"alert": alert.id, "reason": "no_match", "matching": 0, "left_out": {}},
        )
    _refuse(alert, counts, matching=matching, channels=contact_channels)


async def _refuse_update(
    session: AsyncSession, alert: Alert, *, channels: Sequence[str], exclude_kinds: Sequence[str]
) -> NoReturn:
    """An update goes to whom its original reached: say which of them are left out, and why."""
    kinds = list((alert.audience or {}).get("kinds") or ())
    reason = update_reason(channels, kinds=kinds, exclude_kinds=exclude_kinds).label("reason")
    counts = {
        r: int(n)
        for r, n in (
            await session.execute(
                select(reason, func.count())
                .select_from(Delivery)
                .join(Contact, Contact.id == Delivery.contact_id)
                .where(Delivery.alert_id == alert.parent_id, Delivery.state.in_(["sent", "delivered"]))
                .group_by(reason)
            )
        ).all()
    }
    if not counts:
        raise Conflict(
            f"alert {alert.id} has no recipients: it is an update, and the original alert "
            f"{alert.parent_id} has not reached anyone yet.",
            details={"alert": alert.id, "reason": "original_reached_nobody", "original": alert.parent_id},
        )
    _refuse(
        alert,
        counts,
        matching=f"the recipients its original alert {alert.parent_id} reached",
        channels=[c for c in channels if c != "webhook"],
    )
