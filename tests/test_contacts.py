"""Contacts API: create, find, update, search, delete, lists; export and erasure."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts.users import create_user
from alerts.actions import contacts as contact_actions
from alerts.actions import responses
from alerts.app import open_app
from alerts.contacts.csv_import import import_csv
from alerts.contacts.directory import (
    add_to_list,
    create_contact,
    delete_contact,
    get_contact,
    get_or_create_list,
    list_lists,
    remove_from_list,
    search_contacts,
    update_contact,
)
from alerts.contacts.erasure import erase_contact, export_contact
from alerts.contacts.suppressions import hashed_key, is_suppressed, suppress, suppressed_keys
from alerts.core.config import Settings
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.states import SuppressionReason
from alerts.store.models import (
    Alert,
    AuditEntry,
    Contact,
    ContactList,
    Delivery,
    DeliveryEvent,
    ListMember,
    Response,
    Suppression,
    User,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def count(session: AsyncSession, model: type[object]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_and_get_by_every_kind_of_reference(session: AsyncSession) -> None:
    ana = await create_contact(
        session, name=" Ana ", email="Ana@EXAMPLE.org", kind="Media", language="ES", lists=["press"], now=NOW
    )
    chan = await create_contact(session, name="Chan", telegram="@chan_name", kind="partner")
    group = await create_contact(session, name="Group", telegram="-100200", kind="partner")
    await session.commit()
    assert (ana.name, ana.email, ana.email_key, ana.kind, ana.language, ana.status) == (
        "Ana",
        "Ana@example.org",
        "ana@example.org",
        "media",
        "es",
        "active",
    )
    assert chan.language == "en" and ana.token != chan.token
    for ref in (ana.id, str(ana.id), f"id:{ana.id}", "ANA@example.org"):
        assert (await get_contact(session, ref)).id == ana.id
    assert (await get_contact(session, "@chan_name")).id == chan.id
    assert (await get_contact(session, "-100200")).id == group.id
    assert (await get_contact(session, "telegram:@chan_name")).id == chan.id


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (999, "no contact with id 999"),
        ("nobody@example.org", "no contact with email nobody@example.org"),
        ("@nobody_here", "no contact with Telegram id @nobody_here"),
        ("Jane", "no contact 'Jane': give an id, an email or a Telegram id"),
    ],
)
async def test_get_contact_not_found(session: AsyncSession, ref: int | str, message: str) -> None:
    with pytest.raises(NotFound) as caught:
        await get_contact(session, ref)
    assert caught.value.message == message
    assert caught.value.details == {"contact": str(ref)}


async def test_an_id_past_any_integer_column_names_no_contact(session: AsyncSession) -> None:
    """An id no column can hold is not looked up (the database would overflow): NotFound, not a 500."""
    await create_contact(session, name="Ana", email="ana@example.org", kind="media")
    for ref in (2**63, 10**20):
        with pytest.raises(NotFound) as caught:
            await get_contact(session, ref)
        assert (caught.value.message, caught.value.details) == (
            f"no contact with id {ref}",
            {"contact": str(ref)},
        )


async def test_ambiguous_numeric_reference_is_refused(session: AsyncSession) -> None:
    first = await create_contact(session, name="A", email="a@example.org", kind="public")
    other = await create_contact(session, name="B", telegram=str(first.id), kind="public")
    with pytest.raises(Conflict) as caught:
        await get_contact(session, str(first.id))
    assert caught.value.message == (
        f"contact reference {first.id} is ambiguous: it is contact id {first.id} and the Telegram chat of "
        f"contact {other.id}; write id:{first.id} or telegram:{first.id}"
    )
    assert (await get_contact(session, f"telegram:{first.id}")).id == other.id


@pytest.mark.parametrize(
    ("fields", "message", "details"),
    [
        ({"email": "a@example.org", "kind": "public"}, "name is required", {"field": "name"}),
        ({"name": "A", "kind": "public"}, "an email or a telegram is required", {"field": "email"}),
        ({"name": 5, "email": "a@example.org", "kind": "public"}, "name must be text", {"field": "name"}),
        (
            {"name": "A", "email": "a@example.org", "kind": "king"},
            "kind 'king' is not one of authority, media, press, partner, public",
            {"field": "kind"},
        ),
        (
            {"name": "A", "email": "a@example.org", "kind": "public", "language": "zz"},
            "language 'zz' is not a two-letter ISO 639-1 code",
            {"field": "language"},
        ),
        (
            {"name": "A", "email": "a@example.org", "kind": "public", "phone": "1"},
            "unknown field 'phone'",
            {"field": "phone"},
        ),
        (
            {"name": "A", "email": "a@example.org", "kind": "public", "status": "erased"},
            "status 'erased' is not one of active, pending, unsubscribed",
            {"field": "status"},
        ),
        (
            {"name": "A", "email": "a@example.org", "kind": "public", "channels": ["fax"]},
            "channels: 'fax' is not one of email, telegram",
            {"field": "channels"},
        ),
        (  # press arrives at the email address: a contact chooses "email" for it
            {"name": "A", "email": "a@example.org", "kind": "media", "channels": ["press"]},
            "channels: 'press' is not one of email, telegram",
            {"field": "channels"},
        ),
        (
            {"name": "A", "email": "a@example.org", "kind": "public", "lists": ["a;b"]},
            "a list name may not contain ';'",
            {"field": "lists"},
        ),
    ],
)
async def test_create_refusals_write_nothing(
    session: AsyncSession, fields: dict[str, object], message: str, details: dict[str, str]
) -> None:
    """The whole refusal, as the API returns it: the message and the details naming the field."""
    with pytest.raises(ValidationError) as caught:
        await create_contact(session, **fields)  # type: ignore[arg-type]
    assert (caught.value.message, caught.value.details) == (message, details)
    assert await count(session, Contact) == 0


async def test_clearing_a_contacts_language_gives_it_the_default_language(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s, s.begin():
        ana = await create_contact(s, name="Ana", email="ana@example.org", kind="media", language="es")
        assert (await update_contact(s, ana.id, language="  ")).language == "en"
    async with sessions() as s:
        stored = await s.get(Contact, ana.id)
        assert stored is not None and stored.language == "en"


async def test_a_contact_and_a_new_list_are_logged_by_id_and_list_name_never_by_address(
    session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="alerts")
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media", lists=["press"])
    await update_contact(session, ana.id, name="Ana Ruiz")
    await get_or_create_list(session, "press")  # there already: not created again
    assert [r.getMessage() for r in caplog.records if r.name == "alerts.contacts.directory"] == [
        "list 'press' created",
        f"contact {ana.id} created",
        f"contact {ana.id} updated",
    ]
    assert "ana" not in caplog.text.lower()


async def test_duplicate_email_is_a_conflict(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media")
    with pytest.raises(Conflict, match=rf"^email is already used by contact {ana.id}$"):
        await create_contact(session, name="Other", email="ANA@example.org", kind="media")
    bob = await create_contact(session, name="Bob", email="bob@example.org", kind="media")
    with pytest.raises(Conflict, match=rf"^email is already used by contact {ana.id}$"):
        await update_contact(session, bob.id, email="Ana@example.org")


async def test_update_contact(session: AsyncSession) -> None:
    ana = await create_contact(
        session, name="Ana", email="ana@example.org", kind="media", organisation="Diario"
    )
    updated = await update_contact(
        session,
        "ana@example.org",
        organisation="",
        telegram="@ana_ruiz",
        status="unsubscribed",
        channels=["telegram"],
        now=NOW,
    )
    assert (updated.id, updated.organisation, updated.telegram, updated.status, updated.channels) == (
        ana.id,
        None,
        "@ana_ruiz",
        "unsubscribed",
        ["telegram"],
    )
    assert updated.updated_at == NOW
    with pytest.raises(ValidationError, match="^name is required$"):
        await update_contact(session, ana.id, name="  ")
    with pytest.raises(ValidationError, match="^an email or a telegram is required$"):
        await update_contact(session, ana.id, email="", telegram="")
    with pytest.raises(ValidationError, match="^language 'zz' is not a two-letter ISO 639-1 code$"):
        await update_contact(session, ana.id, language="zz")
    with pytest.raises(ValidationError) as refused:
        await update_contact(session, ana.id, channels=["sms"])
    assert (refused.value.message, refused.value.details) == (
        "channels: 'sms' is not one of email, telegram",
        {"field": "channels"},
    )
    with pytest.raises(ValidationError) as refused:
        await update_contact(session, ana.id, topics=["  "])
    assert (refused.value.message, refused.value.details) == (
        "topics has an invalid entry",
        {"field": "topics"},
    )
    with pytest.raises(ValidationError) as refused:
        await update_contact(session, ana.id, status="erased")
    assert refused.value.details == {"field": "status"}
    # a contact with a Telegram id only keeps it when another field changes
    carla = await create_contact(session, name="Carla", telegram="@carla_100", kind="media")
    renamed = await update_contact(session, carla.id, name="Carla Sur")
    assert (renamed.name, renamed.email, renamed.telegram) == ("Carla Sur", None, "@carla_100")


async def test_search_contacts(session: AsyncSession) -> None:
    await create_contact(session, name="Ana Ruiz", email="ana@example.org", kind="media", lists=["press"])
    await create_contact(session, name="Bob", email="bob@diario.example.org", kind="public")
    await create_contact(
        session, name="Carla", telegram="@carla_100", kind="media", organisation="Diario Sur"
    )
    await create_contact(session, name="Dan_x%", email="dan@example.org", kind="public")
    names = [c.name for c in await search_contacts(session, "DIARIO")]
    assert names == ["Bob", "Carla"]
    assert [c.name for c in await search_contacts(session, "", kind="media")] == ["Ana Ruiz", "Carla"]
    assert [c.name for c in await search_contacts(session, "", list_name="press")] == ["Ana Ruiz"]
    assert [c.name for c in await search_contacts(session, "_x%")] == ["Dan_x%"]  # wildcards are literal
    assert [c.name for c in await search_contacts(session, "", limit=2, offset=1)] == ["Bob", "Carla"]
    with pytest.raises(NotFound, match="^no list named 'nope'$"):
        await search_contacts(session, "", list_name="nope")
    # any script's case, on both databases (SQLite's own lower() folds ASCII only)
    await create_contact(session, name="Élise Ångström", email="elise@example.org", kind="partner")
    await create_contact(session, name="Ирина Петрова", email="irina@example.org", kind="partner")
    for query, name in (
        ("élise", "Élise Ångström"),
        ("ÅNGSTRÖM", "Élise Ångström"),
        ("ирина", "Ирина Петрова"),
    ):
        assert [c.name for c in await search_contacts(session, query)] == [name], query


async def test_lists(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media")
    await get_or_create_list(session, "empty", "nobody yet")
    assert await add_to_list(session, ana.id, "press")
    assert not await add_to_list(session, "ana@example.org", "press")
    assert [(s.name, s.members, s.description) for s in await list_lists(session)] == [
        ("empty", 0, "nobody yet"),
        ("press", 1, ""),
    ]
    assert await remove_from_list(session, ana.id, "press")
    assert not await remove_from_list(session, ana.id, "press")
    with pytest.raises(NotFound, match="^no list named 'ghost'$"):
        await remove_from_list(session, ana.id, "ghost")
    with pytest.raises(ValidationError, match="^list name is empty$") as refused:
        await get_or_create_list(session, "  ")
    assert refused.value.details == {"field": "lists"}


async def test_delete_contact(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media", lists=["press"])
    assert await delete_contact(session, "ana@example.org") == ana.id
    assert (await count(session, Contact), await count(session, ListMember)) == (0, 0)
    assert await count(session, ContactList) == 1


async def _alert_with_delivery(session: AsyncSession, contact: Contact) -> Delivery:
    user = User(name="officer", role="officer")
    session.add(user)
    await session.flush()
    alert = Alert(title="Journalist detained", family="detention", author_id=user.id)
    session.add(alert)
    await session.flush()
    delivery = Delivery(
        alert_id=alert.id,
        contact_id=contact.id,
        channel="email",
        audience="media",
        language="es",
        address=contact.email,
        state="bounced",
        last_error="550 5.1.1 <ana@example.org>: unknown",
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(delivery)
    await session.flush()
    session.add(
        DeliveryEvent(
            delivery_id=delivery.id,
            alert_id=alert.id,
            type="bounced",
            at=NOW,
            detail="550 <ana@example.org>",
            payload={"rcpt": "ana@example.org"},
        )
    )
    await session.flush()
    return delivery


async def test_export_contact_holds_everything(session: AsyncSession) -> None:
    ana = await create_contact(
        session,
        name="Ana",
        email="ana@example.org",
        telegram="@ana_ruiz",
        kind="media",
        lists=["press", "urgent"],
        now=NOW,
    )
    delivery = await _alert_with_delivery(session, ana)
    await suppress(
        session, channel="email", address="ana@example.org", reason=SuppressionReason.BOUNCED, now=NOW
    )
    data = await export_contact(session, ana.id)
    json.dumps(data)  # JSON-able
    assert data["contact"]["email"] == "ana@example.org" and data["contact"]["telegram"] == "@ana_ruiz"
    assert "token" not in data["contact"]
    assert data["lists"] == ["press", "urgent"]
    assert data["deliveries"] == [
        {
            "alert_id": delivery.alert_id,
            "channel": "email",
            "address": "ana@example.org",
            "language": "es",
            "state": "bounced",
            "attempts": 0,
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
            "events": [{"type": "bounced", "at": NOW.isoformat()}],
        }
    ]
    assert [(s["channel"], s["reason"]) for s in data["suppressions"]] == [("email", "bounced")]


async def test_erase_contact(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    async with sessions() as s, s.begin():
        ana = await create_contact(
            s, name="Ana Ruiz", email="Ana@example.org", telegram="@ana_ruiz", kind="media", lists=["press"]
        )
        delivery = await _alert_with_delivery(s, ana)
        await suppress(
            s,
            channel="email",
            address="ana@example.org",
            reason=SuppressionReason.BOUNCED,
            detail="550 <ana@example.org>",
        )
    caplog.set_level(logging.DEBUG, logger="alerts")
    async with sessions() as s, s.begin():
        report = await erase_contact(s, "ana@example.org", now=NOW)
    # one hashed key per address space: email (which press shares) and telegram
    assert (report.contact_id, report.deliveries_anonymised, report.suppressions_hashed) == (ana.id, 1, 2)
    assert "ana" not in caplog.text.lower()
    async with sessions() as s:
        assert await count(s, Contact) == 0 and await count(s, ListMember) == 0
        kept = await s.get(Delivery, delivery.id)
        assert kept is not None
        assert (kept.contact_id, kept.address, kept.last_error, kept.state) == (None, None, None, "bounced")
        event = await s.scalar(select(DeliveryEvent))
        assert event is not None and (event.detail, event.payload, event.type) == ("", None, "bounced")
        keys = {
            (r.channel, r.address_key)
            for r in await s.execute(select(Suppression.channel, Suppression.address_key))
        }
        assert keys == {
            ("email", hashed_key("email", "ana@example.org")),
            ("telegram", hashed_key("telegram", "@ana_ruiz")),
        }
        assert {r for r in await s.scalars(select(Suppression.reason))} == {"erased"}
        assert await is_suppressed(s, "email", "ANA@example.org")
        with pytest.raises(NotFound):
            await export_contact(s, "ana@example.org")
    # a later import brings the address back: it stays suppressed, in the fan-out's one-query form too
    csv_text = (
        "name,email,telegram,kind,language,organisation,country,lists\nAna,ana@example.org,,media,,,,\n"
    )
    imported = await import_csv(sessions, io.BytesIO(csv_text.encode()))
    assert (imported.created, imported.previously_erased) == (1, 1)
    assert imported.summary().endswith("; 1 previously erased (kept suppressed)")
    async with sessions() as s:
        assert "ana@example.org" in set(await s.scalars(suppressed_keys("email")))


async def test_create_contact_restores_erased_suppression(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media")
    await erase_contact(session, ana.id, now=NOW)
    await create_contact(session, name="Ana", email="ana@example.org", kind="media")
    assert "ana@example.org" in set(await session.scalars(suppressed_keys("email")))


async def test_search_pages_within_bounds_and_matches_any_case(session: AsyncSession) -> None:
    for i in range(51):
        await create_contact(session, name=f"Person {i:02d}", email=f"p{i}@example.org", kind="public")
    assert len(await search_contacts(session)) == 50  # a page of 50 unless asked otherwise
    assert [c.name for c in await search_contacts(session, limit=1)] == ["Person 00"]
    assert len(await search_contacts(session, limit=1000)) == 51
    for limit, offset in ((0, 0), (1001, 0), (10, -1)):
        with pytest.raises(ValidationError) as caught:
            await search_contacts(session, limit=limit, offset=offset)
        assert caught.value.message == "limit must be 1-1000 and offset at least 0"
        assert caught.value.details == {"field": "limit"}
    await create_contact(session, name="Lucía Peña", email="lucia@example.org", kind="media")
    assert [c.name for c in await search_contacts(session, "PEÑA")] == ["Lucía Peña"]


async def test_search_sorts_by_name_and_takes_like_wildcards_literally(session: AsyncSession) -> None:
    for name in ("Rex%", "Ed_xy", "Dan_x%", "C:\\temp", "Bea"):
        await create_contact(session, name=name, kind="public", telegram=f"@user_{len(name)}{name[0]}")
    assert [c.name for c in await search_contacts(session)] == ["Bea", "C:\\temp", "Dan_x%", "Ed_xy", "Rex%"]
    assert [c.name for c in await search_contacts(session, "_x%")] == ["Dan_x%"]
    assert [c.name for c in await search_contacts(session, "\\")] == ["C:\\temp"]


async def test_deleting_a_contact_keeps_the_other_members_of_its_lists(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media", lists=["press"])
    await create_contact(session, name="Bob", email="bob@example.org", kind="media", lists=["press"])
    await delete_contact(session, ana.id)
    assert [c.name for c in await search_contacts(session, list_name="press")] == ["Bob"]


async def test_export_lists_the_contacts_own_suppressions_only(session: AsyncSession) -> None:
    ana = await create_contact(
        session, name="Ana", email="ana@example.org", telegram="@ana_ruiz", kind="media", now=NOW
    )
    await suppress(
        session,
        channel="telegram",
        address="@ana_ruiz",
        reason=SuppressionReason.UNSUBSCRIBED,
        detail="unsubscribed via telegram",
        now=NOW,
    )
    # someone else's suppression is not part of Ana's data
    await suppress(
        session, channel="telegram", address="@bob", reason=SuppressionReason.UNSUBSCRIBED, now=NOW
    )
    await suppress(
        session, channel="email", address="bob@example.org", reason=SuppressionReason.BOUNCED, now=NOW
    )
    data = await export_contact(session, ana.id)
    assert data["suppressions"] == [
        {
            "channel": "telegram",
            "address": "@ana_ruiz",
            "reason": "unsubscribed",
            "detail": "unsubscribed via telegram",
            "created_at": NOW.isoformat(),
        }
    ]


async def test_removing_from_a_list_touches_that_membership_only(session: AsyncSession) -> None:
    ana = await create_contact(
        session, name="Ana", email="ana@example.org", kind="media", lists=["press", "urgent"]
    )
    await create_contact(session, name="Bob", email="bob@example.org", kind="media", lists=["press"])
    assert await remove_from_list(session, ana.id, "press")
    assert [c.name for c in await search_contacts(session, list_name="press")] == ["Bob"]
    assert [c.name for c in await search_contacts(session, list_name="urgent")] == ["Ana"]


async def test_export_holds_the_contacts_dates_and_own_responses_only(session: AsyncSession) -> None:
    ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media", now=NOW)
    bob = await create_contact(session, name="Bob", email="bob@example.org", kind="media", now=NOW)
    delivery = await _alert_with_delivery(session, ana)
    later = NOW.replace(hour=13)
    session.add(
        Response(alert_id=delivery.alert_id, contact_id=ana.id, summary="Will raise it", responded_at=later)
    )
    session.add(
        Response(alert_id=delivery.alert_id, contact_id=bob.id, summary="Bob's answer", responded_at=later)
    )
    await session.flush()
    data = await export_contact(session, ana.id)
    assert (data["contact"]["created_at"], data["contact"]["updated_at"]) == (
        NOW.isoformat(),
        NOW.isoformat(),
    )
    assert data["responses"] == [
        {"alert_id": delivery.alert_id, "summary": "Will raise it", "responded_at": later.isoformat()}
    ]


async def test_an_unknown_list_is_named_in_the_error_details(session: AsyncSession) -> None:
    with pytest.raises(NotFound) as caught:
        await search_contacts(session, list_name=" Nope ")
    assert caught.value.details == {"list": "Nope"}


async def test_the_contact_actions_audit_who_imported_changed_and_exported_what(db_url: str) -> None:
    header = "name,email,telegram,kind,language,organisation,country,lists\n"
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
        rows = "Ana Ruiz,ana@example.org,,media,en,Daily,,\nBad,not-an-email,,media,en,,,\n"
        await contact_actions.import_file(
            app, officer, io.BytesIO((header + rows).encode()), list_name="press"
        )
        again = header + "Ana Ruiz,ana@example.org,,media,en,Weekly,,\nBea Sol,bea@example.org,,media,en,,,\n"
        await contact_actions.import_file(app, officer, io.BytesIO(again.encode()), now=NOW)
        async with app.sessions() as session:
            ana = await get_contact(session, "ana@example.org")
        changes = {"organisation": "Wire", "channels": ["email"]}
        view = await contact_actions.update(app, officer, ana.id, changes=changes, now=NOW)
        assert (view.organisation, view.channels, view.lists) == ("Wire", ("email",), ("press",))
        data = await contact_actions.export(app, officer, "ana@example.org", now=NOW)
        assert (data["contact"]["id"], data["contact"]["organisation"]) == (ana.id, "Wire")
        async with app.sessions() as session:
            entries = [
                (e.user_id, e.action, e.object_type, e.object_id, e.details)
                for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                if e.action.startswith("contact.")
            ]
    imported = {"rows": 2, "created": 1, "unchanged": 0, "refused": 1}
    assert entries == [
        (officer.id, "contact.import", "contact", None, {**imported, "updated": 0, "list": "press"}),
        (
            officer.id,
            "contact.import",
            "contact",
            None,
            {**imported, "updated": 1, "refused": 0, "list": None},
        ),
        (officer.id, "contact.update", "contact", str(ana.id), {"fields": ["organisation", "channels"]}),
        (officer.id, "contact.export", "contact", str(ana.id), None),
    ]


async def test_a_responder_named_by_id_email_or_a_name_only_one_contact_has_is_matched(
    session: AsyncSession,
) -> None:
    """``alert respond --from``: the id wins over a Telegram chat with the same digits (the
    reference alone would be ambiguous), and a name matches when one contact has it, in any case."""
    ana = await create_contact(session, name="Ana Ruiz", email="ana@example.org", kind="media")
    chat = await create_contact(session, name="Desk", telegram=str(ana.id), kind="media")
    twins = [
        await create_contact(session, name="Lu", email=f"lu{i}@example.org", kind="media") for i in (1, 2)
    ]
    with pytest.raises(Conflict):  # the reference alone is ambiguous
        await get_contact(session, str(ana.id))
    match = responses.match_contact
    assert await match(session, str(ana.id)) is ana
    assert await match(session, f"telegram:{ana.id}") is chat
    assert await match(session, "ANA@example.org") is ana
    assert await match(session, "ana ruiz") is ana
    assert await match(session, "lu") is None and twins[0].name == "Lu"  # two contacts have it
    assert await match(session, "Ministry of Justice, by phone") is None


async def test_the_import_action_shows_its_progress_bar_on_stderr_when_asked(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``alerts contacts import`` at a terminal asks for the bar; the report is the same without it."""
    header = "name,email,telegram,kind,language,organisation,country,lists\n"
    rows = "Ana Ruiz,ana@example.org,,media,en,,,\nBea Sol,bea@example.org,,media,en,,,\n"
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
        capsys.readouterr()
        shown = await contact_actions.import_file(
            app, officer, io.BytesIO((header + rows).encode()), progress=True, now=NOW
        )
        bar = capsys.readouterr()
        quiet = await contact_actions.import_file(app, officer, io.BytesIO((header + rows).encode()), now=NOW)
        silent = capsys.readouterr()
    assert (shown.created, quiet.unchanged) == (2, 2)
    assert bar.out == "" and "import" in bar.err and "2/2" in bar.err
    assert silent == ("", "")


async def test_a_contact_updated_at_a_given_time_shows_that_time_as_its_last_change(db_url: str) -> None:
    later = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
            ana = await create_contact(session, name="Ana", email="ana@example.org", kind="media", now=NOW)
        view = await contact_actions.update(app, officer, ana.id, changes={"organisation": "Wire"}, now=later)
        assert view.to_json()["updated_at"] == later.isoformat()
        async with app.sessions() as session:
            assert (
                await contact_actions.view_of(session, await get_contact(session, ana.id))
            ).updated_at == later


async def test_an_ambiguous_reference_is_named_in_the_error_details(session: AsyncSession) -> None:
    first = await create_contact(session, name="A", email="a@example.org", kind="public")
    await create_contact(session, name="B", telegram=str(first.id), kind="public")
    with pytest.raises(Conflict) as caught:
        await get_contact(session, str(first.id))
    assert caught.value.details == {"contact": str(first.id)}
