"""Expand an alert's audience into (contact, channel, language, address) rows, in SQL.

Who gets what:
- a contact is in the audience when it is active, in any of the alert's lists (if lists are
  given) and of one of its kinds (if kinds are given): lists and kinds narrow each other,
  so an update can go to "the urgent-appeals list, authorities only";
- ``email``: contacts with an email address — except press and media contacts when the alert
  also goes out as a ``press`` release, who get the press form instead (one copy each);
- ``press``: press and media contacts with an email address;
- ``telegram``: contacts with a Telegram chat; two contacts sharing one chat count once;
- a contact that chose its channels (``Contact.channels``) gets only those;
- suppressed addresses (unsubscribed, blocked, bounced) are left out;
- without the defender's consent to publicity, public contacts are left out (``exclude_kinds``;
  ``public_withdrawn`` says, for a set of alerts, whose consent is missing or withdrawn);
- a contact that chose topics (``kind:<family>``, ``country:<name>``; see
  ``alerts.contacts.subscriptions.clean_topics``) gets only the alerts of those families and
  countries; no choice of a prefix means all of it;
- language: the contact's language when the alert has an approved text in it, else English,
  else the alert's first approved language.

Everything is one ``SELECT`` per channel that ``outbox.fan_out`` feeds straight into an
``INSERT … SELECT``: the audience never passes through Python memory.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import String, and_, case, cast, exists, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement, Select

from alerts.core.channels import (
    CONTACT_ADDRESSED,
    EMAIL_ADDRESSED,
    ChannelName,
    address_column,
    address_space,
)
from alerts.core.states import ContactKind
from alerts.store.models import Alert, Consent, Contact, ContactList, ListMember, Suppression

PRESS_KINDS = ("press", "media")
PUBLIC = ContactKind.PUBLIC.value


def needs_consent(audience: str, channel: str) -> bool:
    """Whether a delivery goes to the public (the defender's consent governs it): a public
    contact's, on any channel but the webhook (which carries only what was published)."""
    return audience == PUBLIC and channel != ChannelName.WEBHOOK


async def public_withdrawn(session: AsyncSession, alert_ids: Collection[int]) -> set[int]:
    """The alerts among ``alert_ids`` whose public contacts must get nothing (more).

    Public contacts need the defender's consent: the latest consent recorded for the alert
    itself must be ``public``, and the latest recorded for each alert it updates (its thread,
    up to the original) must not be ``restricted``: a withdrawal on the original holds for its
    updates until consent is recorded there again. One query for the whole set, however many
    deliveries it covers (the claim's hot path).
    """
    if not alert_ids:
        return set()
    parent = aliased(Alert)
    up = (
        select(Alert.id.label("alert_id"), Alert.id.label("ancestor_id"), Alert.parent_id.label("parent_id"))
        .where(Alert.id.in_(list(alert_ids)))
        .cte("thread", recursive=True)
    )
    # UNION, not UNION ALL: a (corrupt) cycle of parents ends instead of looping
    thread = up.union(
        select(up.c.alert_id, parent.id, parent.parent_id).join(parent, parent.id == up.c.parent_id)
    )
    rows = await session.execute(
        select(thread.c.alert_id, thread.c.ancestor_id, Consent.scope)
        .join(Consent, Consent.alert_id == thread.c.ancestor_id)
        .order_by(Consent.recorded_at, Consent.id)
    )
    latest: dict[tuple[int, int], str] = {}
    for alert_id, ancestor_id, scope in rows.all():  # oldest first: the last one seen counts
        latest[(alert_id, ancestor_id)] = scope
    withdrawn = {a for (a, ancestor), scope in latest.items() if ancestor != a and scope != "public"}
    return withdrawn | {a for a in alert_ids if latest.get((a, a)) != "public"}


def _topic_pattern(prefix: str, value: str) -> str:
    """How one topic reads inside the stored JSON list (quoted and escaped as json.dumps does)."""
    return json.dumps(f"{prefix}:{value.strip()}").lower()


def topics_match(*, family: str, country: str | None) -> ColumnElement[bool]:
    """SQL condition: the contact chose no topics, or topics that include this alert.

    For each prefix (``kind`` the alert's family, ``country`` the case's country) a contact
    that chose some values must have chosen this one; compared case-insensitively on the JSON
    list's text form (like ``Contact.channels``), which works on SQLite and PostgreSQL alike.
    """
    text = func.lower(cast(Contact.topics, String))
    conditions = []
    for prefix, value in (("kind", family), ("country", country)):
        chose = text.contains(f'"{prefix}:', autoescape=True)
        match = text.contains(_topic_pattern(prefix, value), autoescape=True) if value else false()
        conditions.append(or_(~chose, match))
    return or_(Contact.topics.is_(None), and_(*conditions))


_EMAIL_ADDRESSED = sorted(c.value for c in EMAIL_ADDRESSED)


def suppression_key_sql(channel: Any, address: Any) -> tuple[Any, Any]:
    """SQL for (suppression channel, address key) of a delivery's ``channel`` and ``address``
    columns: the rule of ``alerts.core.channels.address_space``/``address_key`` in SQL."""
    email_addressed = channel.in_(_EMAIL_ADDRESSED)
    return (
        case((email_addressed, literal(ChannelName.EMAIL.value)), else_=channel),
        case((email_addressed, func.lower(address)), else_=address),
    )


def contact_address_sql(channel: Any) -> Any:
    """SQL: the contact's address for a delivery's ``channel`` column (email or Telegram)."""
    return case((channel == ChannelName.TELEGRAM.value, Contact.telegram), else_=Contact.email)


def wants_channel(pref: Any) -> Any:
    """SQL condition: the contact chose no channels (SQL NULL, or a JSON ``null`` written before
    migration 0002) or chose ``pref``. ``Contact.channels`` is a JSON list; LIKE on its text form
    works on SQLite and PostgreSQL."""
    text = cast(Contact.channels, String)
    return or_(Contact.channels.is_(None), text == "null", text.like(literal('%"') + pref + literal('"%')))


def choose_language(approved: Sequence[str]) -> Any:
    """SQL expression: the contact's language if approved, else en, else the first approved."""
    fallback = "en" if "en" in approved else approved[0]
    return case((Contact.language.in_(list(approved)), Contact.language), else_=literal(fallback))


def previous_recipients_select(
    *,
    alert_id: int,
    parent_id: int,
    kinds: Sequence[str],
    approved_languages: Sequence[str],
    exclude_kinds: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> Select[Any]:
    """Rows for an update: exactly the contacts the parent alert reached, on the same channels.

    Only deliveries that were sent (or confirmed delivered) count; contacts who unsubscribed
    or were suppressed since are left out; ``kinds`` narrows to a subset (e.g. authorities).
    """
    from alerts.store.models import Delivery

    address = contact_address_sql(Delivery.channel)
    namespace, key = suppression_key_sql(Delivery.channel, address)
    conditions: list[Any] = [
        Delivery.alert_id == parent_id,
        Delivery.state.in_(["sent", "delivered"]),
        Contact.status == "active",
        address.is_not(None),
        ~exists().where(Suppression.channel == namespace).where(Suppression.address_key == key),
    ]
    if channels:  # the update's own channel choice narrows the original's
        conditions.append(Delivery.channel.in_(list(channels)))
    # and so does what the contact chose since (Contact.channels; press arrives by email)
    pref = case(
        (Delivery.channel.in_(_EMAIL_ADDRESSED), literal(ChannelName.EMAIL.value)), else_=Delivery.channel
    )
    conditions.append(wants_channel(pref))
    if kinds:
        conditions.append(Contact.kind.in_(list(kinds)))
    if exclude_kinds:
        conditions.append(Contact.kind.not_in(list(exclude_kinds)))
    rows = (
        select(
            literal(alert_id).label("alert_id"),
            Contact.id.label("contact_id"),
            Delivery.channel.label("channel"),
            Contact.kind.label("audience"),
            choose_language(approved_languages).label("language"),
            address.label("address"),
        )
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(*conditions)
    )
    # One delivery per channel and address, as the original's fan-out wrote: two of its
    # recipients may share a Telegram chat by now (one was edited to the other's group), and
    # the chat must get the update once.
    return _first_contact_per(rows, Delivery.channel, address)


def matching_contacts(lists: Sequence[str], kinds: Sequence[str]) -> list[ColumnElement[bool]]:
    """SQL conditions: the contact is on one of ``lists`` (if any) and of one of ``kinds`` (if any)."""
    conditions: list[ColumnElement[bool]] = []
    if lists:
        conditions.append(
            exists()
            .where(ListMember.contact_id == Contact.id)
            .where(ListMember.list_id == ContactList.id)
            .where(ContactList.name.in_(list(lists)))
        )
    if kinds:
        conditions.append(Contact.kind.in_(list(kinds)))
    return conditions


def fan_out_selects(
    alert: Alert,
    *,
    channels: Sequence[str],
    approved_languages: Sequence[str],
    exclude_kinds: Sequence[str],
    topics: ColumnElement[bool] | None,
) -> list[Select[Any]]:
    """The SELECTs fan-out inserts from: an update's previous recipients, else one per contact
    channel of ``channels`` (``outbox.fan_out`` writes them; ``audience_report`` counts them)."""
    audience = alert.audience or {}
    kinds = audience.get("kinds", [])
    if alert.parent_id is not None:
        return [
            previous_recipients_select(
                alert_id=alert.id,
                parent_id=alert.parent_id,
                kinds=kinds,
                approved_languages=approved_languages,
                exclude_kinds=exclude_kinds,
                channels=channels,
            )
        ]
    return [
        audience_select(
            alert_id=alert.id,
            channel=channel,
            lists=audience.get("lists", []),
            kinds=kinds,
            channels=channels,
            approved_languages=approved_languages,
            exclude_kinds=exclude_kinds,
            topics=topics,
        )
        for channel in channels
        if channel in CONTACT_ADDRESSED
    ]


def audience_select(
    *,
    alert_id: int,
    channel: str,
    lists: Sequence[str],
    kinds: Sequence[str],
    channels: Sequence[str],
    approved_languages: Sequence[str],
    exclude_kinds: Sequence[str] = (),
    topics: ColumnElement[bool] | None = None,
) -> Select[Any]:
    """Rows (alert_id, contact_id, channel, audience, language, address) for one channel.

    ``topics``: the ``topics_match`` condition for the alert (None: topics are not looked at).
    """
    address = Contact.email if address_column(channel) == "email" else Contact.telegram
    conditions: list[Any] = [Contact.status == "active", address.is_not(None), address != ""]
    conditions += matching_contacts(lists, kinds)
    if exclude_kinds:
        conditions.append(Contact.kind.not_in(list(exclude_kinds)))
    if topics is not None:
        conditions.append(topics)
    if channel == ChannelName.PRESS:
        conditions.append(Contact.kind.in_(PRESS_KINDS))
    elif channel == ChannelName.EMAIL and ChannelName.PRESS in channels:
        conditions.append(Contact.kind.not_in(PRESS_KINDS))
    conditions.append(wants_channel(literal(address_space(channel))))
    key = func.lower(address) if channel in EMAIL_ADDRESSED else address
    conditions.append(
        ~exists().where(Suppression.channel == address_space(channel)).where(Suppression.address_key == key)
    )
    rows = select(
        literal(alert_id).label("alert_id"),
        Contact.id.label("contact_id"),
        literal(channel).label("channel"),
        Contact.kind.label("audience"),
        choose_language(approved_languages).label("language"),
        address.label("address"),
    ).where(*conditions)
    if channel != ChannelName.TELEGRAM:
        return rows
    # One delivery per chat even if several contacts share it: the lowest id among those IN
    # this audience (deduplicating against all contacts could leave the chat with nothing).
    return _first_contact_per(rows, Contact.telegram)


def _first_contact_per(rows: Select[Any], *partition: Any) -> Select[Any]:
    """``rows`` (the fan-out columns) keeping, per value of ``partition``, the lowest contact id."""
    ranked = rows.add_columns(
        func.row_number().over(partition_by=partition, order_by=Contact.id).label("rank")
    ).subquery()
    return select(
        ranked.c.alert_id,
        ranked.c.contact_id,
        ranked.c.channel,
        ranked.c.audience,
        ranked.c.language,
        ranked.c.address,
    ).where(ranked.c.rank == 1)
