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
from alerts.core.msgids import N_, Joined, Text
from alerts.delivery.audience import PRESS_KINDS, matching_contacts
from alerts.store.models import Alert, Contact, Delivery, Suppression

#: Each reason a matching contact is left out, in words (msgids, ``alerts.core.msgids``): the
#: refusal says "3 chose other channels", the audience panel lists them by contact.
REASONS: dict[str, str] = {
    "inactive": N_("unsubscribed or not active"),
    "no_consent": N_("public, without the defender's consent to publicity"),
    "other_kinds": N_("of other kinds than the update's"),
    "no_address": N_("with no address for %(channels)s"),
    "other_channels": N_("chose other channels"),
    "other_topics": N_("chose other topics"),
    "suppressed": N_("suppressed (unsubscribed, bounced or blocked the bot)"),
    "not_configured": N_("reachable only on channels not configured here"),
    "shared_address": N_("sharing an address with another recipient (one copy each)"),
}


def reason_text(reason: str, channels: Sequence[str]) -> Text:
    """A reason (a key of ``REASONS``) in words, for the alert's contact ``channels``."""
    named: str | Text = ", ".join(channels) if channels else Text(N_("any channel"))
    return Text(REASONS[reason], {"channels": named} if "%(channels)s" in REASONS[reason] else {})


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


def _scope(lists: Sequence[str], kinds: Sequence[str]) -> tuple[Text, Text]:
    """(what matches: "its lists (a) and kinds (b)", nobody matches: "no contact is on …")."""
    names = {"lists": _names(lists), "kinds": _names(kinds)}
    if lists and kinds:
        return (
            Text(N_("its lists (%(lists)s) and kinds (%(kinds)s)"), names),
            Text(N_("no contact is on its lists (%(lists)s) with its kinds (%(kinds)s)"), names),
        )
    if lists:
        return Text(N_("its lists (%(lists)s)"), names), Text(
            N_("no contact is on its lists (%(lists)s)"), names
        )
    if kinds:
        return Text(N_("its kinds (%(kinds)s)"), names), Text(
            N_("no contact has its kinds (%(kinds)s)"), names
        )
    return Text(N_("it")), Text(N_("there are no contacts"))


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


def _refuse(alert: Alert, counts: dict[str, int], *, matching: Text, channels: Sequence[str]) -> NoReturn:
    total = sum(counts.values())
    parts = Joined(
        [
            Text(N_("%(n)s %(why)s"), {"n": counts[r], "why": reason_text(r, channels)})
            for r in REASONS
            if counts.get(r)
        ]
    )
    raise Conflict.said(
        N_(
            "alert %(alert)s has no recipients: %(n)s contact matches %(matching)s "
            "and every one is left out: %(reasons)s."
        )
        if total == 1
        else N_(
            "alert %(alert)s has no recipients: %(n)s contacts match %(matching)s "
            "and every one is left out: %(reasons)s."
        ),
        details={"alert": alert.id, "reason": "all_left_out", "matching": total, "left_out": counts},
        alert=alert.id,
        n=total,
        matching=matching,
        reasons=parts,
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
    contact_channels = [c for c in channels if c != "webhook"]
    if not contact_channels:  # an original or an update
        raise Conflict.said(
            N_(
                "alert %(alert)s has no recipients: it goes to no contact channel and the webhook "
                "has no URL configured ([webhook] url)."
            ),
            details={"alert": alert.id, "reason": "no_channel", "matching": 0, "left_out": {}},
            alert=alert.id,
        )
    if alert.parent_id is not None:
        await _refuse_update(session, alert, channels=channels, exclude_kinds=exclude_kinds)
    audience = alert.audience or {}
    lists, kinds = list(audience.get("lists") or ()), list(audience.get("kinds") or ())
    matching, nobody = _scope(lists, kinds)
    reason = original_reason(contact_channels, exclude_kinds=exclude_kinds, topics=topics).label("reason")
    query = select(reason, func.count()).where(*matching_contacts(lists, kinds)).group_by(reason)
    counts = {r: int(n) for r, n in (await session.execute(query)).all()}
    if not counts:
        raise Conflict.said(
            N_("alert %(alert)s has no recipients: %(nobody)s."),
            details={"alert": alert.id, "reason": "no_match", "matching": 0, "left_out": {}},
            alert=alert.id,
            nobody=nobody,
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
        raise Conflict.said(
            N_(
                "alert %(alert)s has no recipients: it is an update, and the original alert "
                "%(original)s has not reached anyone yet."
            ),
            details={"alert": alert.id, "reason": "original_reached_nobody", "original": alert.parent_id},
            alert=alert.id,
            original=alert.parent_id,
        )
    _refuse(
        alert,
        counts,
        matching=Text(
            N_("the recipients its original alert %(original)s reached"), {"original": alert.parent_id}
        ),
        channels=[c for c in channels if c != "webhook"],
    )
