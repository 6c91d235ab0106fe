"""Who an alert will reach (or reached), and who it leaves out and why — before anything is sent.

The report runs the very ``SELECT``s that ``outbox.fan_out`` feeds into its ``INSERT``
(``audience.audience_select``, ``audience.previous_recipients_select``), so what it shows is
what a send would write, counted in the database:

- ``reached``: deliveries by contact kind × channel × language;
- ``fallbacks``: contacts whose own language the alert has no text in, and the language they
  will read instead;
- ``left_out``: every contact that matches the alert's lists and kinds (an update: every
  recipient of its original) and gets nothing, with the first reason that applies, in the
  words of ``empty_audience.REASONS`` (no consent for the public, unsubscribed, suppressed or
  bounced, no address, channel not configured here, other channels or topics chosen);
- ``not_configured``: channels the alert asks for that this service cannot send on (a send
  would be refused until they are configured or removed).

Once the alert has gone out, ``reached`` counts the deliveries written instead, and
``left_out`` those matching contacts who have none.

Who is left out: the matching that the reached do not hold. On PostgreSQL that is an
anti-join (``LEFT JOIN … WHERE reached IS NULL``), never ``NOT IN (reached)``: PostgreSQL hashes
a ``NOT IN`` subquery only while it fits in ``work_mem`` (4 MB by default, about 100,000
contacts) and past that reads it again for every contact; at a million contacts the report
ran for over 15 minutes on three cores. The anti-join is hashed at any size (given
statistics, as every plan). SQLite is the other way round: it indexes a ``NOT IN`` subquery
once, but scanned the reached of an update again for each of its original's recipients when
they were joined. The same rows either way: a contact id is never NULL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Select, Subquery, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ALL, CONTACT_ADDRESSED, ChannelName
from alerts.core.msgids import Text
from alerts.delivery.audience import fan_out_selects, matching_contacts, topics_match
from alerts.delivery.empty_audience import REASONS, original_reason, reason_text, update_reason
from alerts.store.models import Alert, Contact, Delivery

#: Left-out contacts listed one by one (the counts by reason always cover all of them).
LIST_LIMIT = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Deliveries to contacts of one kind, on one channel, in one language."""

    kind: str
    channel: str
    language: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeftOut:
    """One contact the alert does not reach, and why."""

    contact_id: int
    name: str
    organisation: str | None
    kind: str
    reason: str  # a key of empty_audience.REASONS


@dataclass(frozen=True, slots=True, kw_only=True)
class Fallback:
    """Contacts whose language the alert lacks: they read ``shown`` instead of ``wanted``."""

    wanted: str
    shown: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudienceReport:
    alert_id: int
    languages: tuple[str, ...]  # the texts the counts assume (approved ones once any are)
    channels: tuple[str, ...]  # the channels it goes out on here
    reached: tuple[Group, ...]
    fallbacks: tuple[Fallback, ...]
    left_out: tuple[LeftOut, ...]  # at most LIST_LIMIT, by contact id
    left_out_counts: dict[str, int] = field(default_factory=dict)
    not_configured: tuple[str, ...] = ()
    webhook: bool = False  # one more delivery, to the configured webhook

    @property
    def deliveries(self) -> int:
        return sum(g.count for g in self.reached) + (1 if self.webhook else 0)

    @property
    def left_out_total(self) -> int:
        return sum(self.left_out_counts.values())

    def why(self, reason: str) -> str:
        """A reason (a key of ``empty_audience.REASONS``) in English: "with no address for email"."""
        return str(self.reason_text(reason))

    def reason_text(self, reason: str) -> Text:
        """A reason as a msgid and its values, for a face to show in its reader's language."""
        return reason_text(reason, [c for c in self.channels if c != ChannelName.WEBHOOK])

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert_id,
            "languages": list(self.languages),
            "channels": list(self.channels),
            "deliveries": self.deliveries,
            "webhook": self.webhook,
            "reached": [
                {"kind": g.kind, "channel": g.channel, "language": g.language, "count": g.count}
                for g in self.reached
            ],
            "language_fallbacks": [
                {"wanted": f.wanted, "shown": f.shown, "count": f.count} for f in self.fallbacks
            ],
            "left_out_total": self.left_out_total,
            "left_out_counts": dict(self.left_out_counts),
            "left_out": [
                {
                    "contact": c.contact_id,
                    "name": c.name,
                    "organisation": c.organisation,
                    "kind": c.kind,
                    "reason": c.reason,
                    "why": self.why(c.reason),
                }
                for c in self.left_out
            ],
            "left_out_listed": len(self.left_out),
            "not_configured": list(self.not_configured),
        }


async def report(
    session: AsyncSession,
    alert: Alert,
    *,
    languages: Sequence[str],
    exclude_kinds: Sequence[str],
    available: Collection[str] | None,
    webhook_url: str,
    country: str | None,
) -> AudienceReport:
    """Count what fan-out would write for ``alert`` now, and who it would leave out."""
    audience = alert.audience or {}
    requested = requested_channels(alert)
    not_configured = tuple(
        c for c in audience.get("channels") or () if available is not None and c not in available
    )
    channels = sending_channels(alert, available)
    contact_channels = [c for c in channels if c in CONTACT_ADDRESSED]
    unconfigured = [c for c in requested if c not in channels and c in CONTACT_ADDRESSED]
    languages = list(languages) or ["en"]
    kinds = list(audience.get("kinds") or ())
    topics = topics_match(family=alert.family, country=country)
    if alert.fanned_out_at is not None:  # it went out: count what was written, not what would be
        selects: list[Select[Any]] = [_written(alert)]
    else:
        selects = fan_out_selects(
            alert,
            channels=channels,
            approved_languages=languages,
            exclude_kinds=exclude_kinds,
            topics=topics,
        )
    reached, fallbacks = await _reached(session, selects)
    dialect = session.get_bind().dialect.name
    if not selects:
        left_out_rows: Select[Any] | None = None
    elif alert.parent_id is not None:
        left_out_rows = _update_left_out(
            alert, selects, channels=channels, kinds=kinds, exclude=exclude_kinds, dialect=dialect
        )
    else:
        left_out_rows = _original_left_out(
            alert,
            selects,
            contact_channels,
            unconfigured,
            exclude=exclude_kinds,
            topics=topics,
            dialect=dialect,
        )
    counts, listed = await _left_out(session, left_out_rows) if left_out_rows is not None else ({}, ())
    return AudienceReport(
        alert_id=alert.id,
        languages=tuple(languages),
        channels=tuple(channels),
        reached=reached,
        fallbacks=fallbacks,
        left_out=listed,
        left_out_counts={r: counts[r] for r in REASONS if counts.get(r)},
        not_configured=not_configured,
        webhook=ChannelName.WEBHOOK in channels and bool(webhook_url) and alert.parent_id is None,
    )


def requested_channels(alert: Alert) -> list[str]:
    """The channels the alert asks for: those it names, or every one if it names none."""
    return list((alert.audience or {}).get("channels") or ()) or [c.value for c in ALL]


def sending_channels(alert: Alert, available: Collection[str] | None) -> list[str]:
    """The channels the alert goes out on here: those it asks for that this service can send
    on (``available``; None: every one)."""
    return [c for c in requested_channels(alert) if available is None or c in available]


async def _reached(
    session: AsyncSession, selects: Sequence[Select[Any]]
) -> tuple[tuple[Group, ...], tuple[Fallback, ...]]:
    groups: Counter[tuple[str, str, str]] = Counter()
    fallbacks: Counter[tuple[str, str]] = Counter()
    for base in selects:
        rows = base.subquery()
        query = (
            select(rows.c.audience, rows.c.channel, rows.c.language, Contact.language, func.count())
            .join(Contact, Contact.id == rows.c.contact_id)
            .group_by(rows.c.audience, rows.c.channel, rows.c.language, Contact.language)
        )
        for kind, channel, language, wanted, n in (await session.execute(query)).all():
            groups[(kind, channel, language)] += int(n)
            if wanted and wanted != language:
                fallbacks[(wanted, language)] += int(n)
    return (
        tuple(Group(kind=k, channel=c, language=lang, count=n) for (k, c, lang), n in sorted(groups.items())),
        tuple(Fallback(wanted=w, shown=s, count=n) for (w, s), n in sorted(fallbacks.items())),
    )


async def _left_out(session: AsyncSession, rows: Select[Any]) -> tuple[dict[str, int], tuple[LeftOut, ...]]:
    """The left-out contacts counted by reason, and the first ``LIST_LIMIT`` of them by id.

    Finding them means running the audience's selects again (the matching minus their union), a scan
    of the network: the list's query is made only when the counts found someone. (One query
    with window functions for both cost 2.7 times as much when most of the network was left
    out: it sorts them all, where the list's ``LIMIT`` stops at the first 500.)
    """
    left = rows.subquery()
    counted = await session.execute(select(left.c.reason, func.count()).group_by(left.c.reason))
    counts = {reason: int(n) for reason, n in counted.all()}
    if not counts:
        return counts, ()
    page = await session.execute(select(left).order_by(left.c.contact_id).limit(LIST_LIMIT))
    listed = [
        LeftOut(
            contact_id=r.contact_id, name=r.name, organisation=r.organisation, kind=r.kind, reason=r.reason
        )
        for r in page.all()
    ]
    return counts, tuple(listed)


def _written(alert: Alert) -> Select[Any]:
    """The contact deliveries fan-out wrote for the alert, in the columns of ``audience_select``."""
    written = select(
        Delivery.alert_id,
        Delivery.contact_id,
        Delivery.channel,
        Delivery.audience,
        Delivery.language,
        Delivery.address,
    ).where(Delivery.alert_id == alert.id, Delivery.contact_id.is_not(None))
    return cast(Select[Any], written)


def _not_reached(query: Select[Any], contact_id: Any, reached: Subquery, dialect: str) -> Select[Any]:
    """``query`` without its rows whose ``contact_id`` the ``reached`` hold (module docstring)."""
    if dialect == "postgresql":  # an anti-join
        return query.outerjoin(reached, reached.c.contact_id == contact_id).where(
            reached.c.contact_id.is_(None)
        )
    return query.where(contact_id.not_in(select(reached.c.contact_id)))


def _columns(reason: Any) -> list[Any]:
    return [
        Contact.id.label("contact_id"),
        Contact.name.label("name"),
        Contact.organisation.label("organisation"),
        Contact.kind.label("kind"),
        reason.label("reason"),
    ]


def _original_left_out(
    alert: Alert,
    selects: Sequence[Select[Any]],
    contact_channels: Sequence[str],
    unconfigured: Sequence[str],
    *,
    exclude: Sequence[str],
    topics: Any,
    dialect: str,
) -> Select[Any]:
    """Contacts matching the lists and kinds whom none of the channel selects reaches."""
    audience = alert.audience or {}
    reached = union(*(s.with_only_columns(s.selected_columns.contact_id) for s in selects)).subquery()
    reason = original_reason(
        contact_channels,
        exclude_kinds=exclude,
        topics=topics,
        unconfigured=unconfigured,
        otherwise="shared_address",
    )
    matching = select(*_columns(reason)).where(
        *matching_contacts(audience.get("lists") or (), audience.get("kinds") or ())
    )
    return _not_reached(matching, Contact.id, reached, dialect)


def _update_left_out(
    alert: Alert,
    selects: Sequence[Select[Any]],
    *,
    channels: Sequence[str],
    kinds: Sequence[str],
    exclude: Sequence[str],
    dialect: str,
) -> Select[Any]:
    """Recipients of the original whom the update does not reach (one row per contact)."""
    (base,) = selects
    reached = base.with_only_columns(base.selected_columns.contact_id).subquery()
    reason = update_reason(channels, kinds=kinds, exclude_kinds=exclude, otherwise="shared_address")
    first = func.min(Delivery.id)
    received = select(first.label("delivery_id")).where(
        Delivery.alert_id == alert.parent_id,
        Delivery.state.in_(["sent", "delivered"]),
        Delivery.contact_id.is_not(None),
    )
    per_contact = (
        _not_reached(received, Delivery.contact_id, reached, dialect).group_by(Delivery.contact_id).subquery()
    )
    return (
        select(*_columns(reason))
        .select_from(Delivery)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id.in_(select(per_contact.c.delivery_id)))
    )
