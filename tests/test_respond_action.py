"""The respond action in process: who answered is linked to a contact when one matches, kept as
written otherwise, and a bad sender or contact id is refused naming the field."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from alerts.actions import responses
from alerts.app import open_app
from alerts.core.config import Settings
from alerts.core.errors import Conflict, ValidationError
from alerts.store.models import AuditEntry, Contact, Response
from tests.factories import add_contacts, approved_alert, make_users


async def test_a_sender_is_linked_to_the_contact_it_names_or_kept_as_written(db_url: str) -> None:
    async with open_app(Settings().replace("database", url=db_url)) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            first, second, third, fourth = await add_contacts(session, 4)
            alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
            # the second's chat id is the first's id: an id wins over a chat id
            await session.execute(update(Contact).where(Contact.id == second).values(telegram=str(first)))
            # two contacts of one name name nobody; an erased contact's name names nobody
            await session.execute(update(Contact).where(Contact.id == third).values(name="Ana Twin"))
            await session.execute(update(Contact).where(Contact.id == fourth).values(name="ana twin"))
            await session.execute(update(Contact).where(Contact.id == second).values(name="Gone Person"))
            await session.execute(update(Contact).where(Contact.id == second).values(status="erased"))
        said = {
            str(first): first,
            "PERSON0@example.org": first,
            "person 0": first,
            "Ana Twin": None,
            "gone person": None,
            "Ministry of Justice, by phone": None,
        }
        for sender, contact_id in said.items():
            done = await responses.respond(app, officer, alert_id, summary="noted", sender=f" {sender} ")
            assert (done.contact_id, done.sender) == (contact_id, None if contact_id else sender), sender
        async with app.sessions() as session:
            stored = [
                (r.contact_id, r.sender)
                for r in await session.scalars(select(Response).order_by(Response.id))
            ]
            audited = [
                e.details
                for e in await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "alert.respond").order_by(AuditEntry.id)
                )
            ]
        assert stored == [(c, None if c else s) for s, c in said.items()]
        assert [a["contact"] for a in audited] == list(said.values())


async def test_a_bad_sender_or_contact_id_is_refused_naming_the_field_and_nothing_is_kept(
    db_url: str,
) -> None:
    async with open_app(Settings().replace("database", url=db_url)) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 1)
            alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
        long = "x" * (responses.MAX_SENDER + 1)
        with pytest.raises(ValidationError) as refused:
            await responses.respond(app, officer, alert_id, summary="noted", sender=long)
        assert (refused.value.message, refused.value.details) == (
            f"from: longer than {responses.MAX_SENDER} characters.",
            {"field": "from"},
        )
        with pytest.raises(Conflict) as conflict:
            await responses.respond(app, officer, alert_id, summary="noted", contact_id=999)
        assert conflict.value.message.startswith("contact_id: ")
        assert conflict.value.details == {"field": "contact_id"}
        assert responses.clean_sender("x" * responses.MAX_SENDER) == "x" * responses.MAX_SENDER
        async with app.sessions() as session:
            assert list(await session.scalars(select(Response))) == []


async def test_a_summary_with_a_control_character_is_refused_naming_the_summary(db_url: str) -> None:
    """The page's response form passes the summary as typed: the refusal names the field."""
    async with open_app(Settings().replace("database", url=db_url)) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 1)
            alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
        with pytest.raises(ValidationError) as refused:
            await responses.respond(app, officer, alert_id, summary="called\x07 back")
        assert refused.value.message == "summary: control character U+0007 at position 7 is not allowed"
        assert refused.value.details["field"] == "summary"
        async with app.sessions() as session:
            assert list(await session.scalars(select(Response))) == []


async def test_a_contacts_response_is_an_event_of_each_of_their_deliveries_and_is_counted(
    db_url: str,
) -> None:
    """Kept in the delivery's history (its state and attempt unchanged), shown in the contact's
    data export under that delivery, and counted in the alert's status document."""
    from alerts.contacts.erasure import export_contact
    from alerts.core.clock import utcnow
    from alerts.delivery import tracking
    from alerts.delivery.publish import publish
    from alerts.store.models import Alert, Delivery, DeliveryEvent

    async with open_app(Settings().replace("database", url=db_url)) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            answers, silent = await add_contacts(session, 2)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            await publish(session, alert, now=utcnow())
            await session.execute(update(Delivery).values(state="sent", attempts=2))
            alert_id = alert.id
        await responses.respond(app, officer, alert_id, summary="called back", contact_id=answers)
        async with app.sessions() as session:
            delivery = (await session.scalars(select(Delivery).where(Delivery.contact_id == answers))).one()
            events = (
                await session.execute(
                    select(
                        DeliveryEvent.delivery_id,
                        DeliveryEvent.type,
                        DeliveryEvent.from_state,
                        DeliveryEvent.to_state,
                        DeliveryEvent.attempt,
                    ).where(DeliveryEvent.type == "responded")
                )
            ).all()
            exported = await export_contact(session, answers)
            status = await tracking.stats(session, await session.get_one(Alert, alert_id))
        assert events == [(delivery.id, "responded", "sent", "sent", 2)]
        assert [e["type"] for e in exported["deliveries"][0]["events"]] == ["queued", "responded"]
        assert status["responses"] == 1 and silent
