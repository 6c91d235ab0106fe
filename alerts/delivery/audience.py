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
- without the defender's consent to publicity, public contacts are left out (``exclude_kinds``);
- language: the contact's language when the alert has an approved text in it, else English,
  else the alert's first approved language.

Everything is one ``SELECT`` per channel that ``outbox.fan_out`` feeds straight into an
``INSERT … SELECT``: the audience never passes through Python memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, case, cast, exists, func, literal, or_, select
from sqlalchemy.sql import Select

from alerts.core.channels import EMAIL_ADDRESSED, ChannelName, address_column, address_space
from alerts.store.models import Contact, ContactList, ListMember, Suppression

PRESS_KINDS = ("press", "media")
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
    conditions.append(
        or_(
            Contact.channels.is_(None),
            cast(Contact.channels, String).like(literal('%"') + pref + literal('"%')),
        )
    )
    if kinds:
        conditions.append(Contact.kind.in_(list(kinds)))
    if exclude_kinds:
        conditions.append(Contact.kind.not_in(list(exclude_kinds)))
    return (
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


def audience_select(
    *,
    alert_id: int,
    channel: str,
    lists: Sequence[str],
    kinds: Sequence[str],
    channels: Sequence[str],
    approved_languages: Sequence[str],
    exclude_kinds: Sequence[str] = (),
) -> Select[Any]:
    """Rows (alert_id, contact_id, channel, audience, language, address) for one channel."""
    address = Contact.email if address_column(channel) == "email" else Contact.telegram
    conditions: list[Any] = [Contact.status == "active", address.is_not(None), address != ""]
    if lists:
        conditions.append(
            exists()
            .where(ListMember.contact_id == Contact.id)
            .where(ListMember.list_id == ContactList.id)
            .where(ContactList.name.in_(list(lists)))
        )
    if kinds:
        conditions.append(Contact.kind.in_(list(kinds)))
    if exclude_kinds:
        conditions.append(Contact.kind.not_in(list(exclude_kinds)))
    if channel == ChannelName.PRESS:
        conditions.append(Contact.kind.in_(PRESS_KINDS))
    elif channel == ChannelName.EMAIL and ChannelName.PRESS in channels:
        conditions.append(Contact.kind.not_in(PRESS_KINDS))
    # Contact.channels is a JSON list; LIKE on its text form works on SQLite and PostgreSQL.
    pref = address_space(channel)
    conditions.append(or_(Contact.channels.is_(None), cast(Contact.channels, String).like(f'%"{pref}"%')))
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
    ranked = rows.add_columns(
        func.row_number().over(partition_by=Contact.telegram, order_by=Contact.id).label("rank")
    ).subquery()
    return select(
        ranked.c.alert_id,
        ranked.c.contact_id,
        ranked.c.channel,
        ranked.c.audience,
        ranked.c.language,
        ranked.c.address,
    ).where(ranked.c.rank == 1)
