"""Fan-out: the audience expands into one delivery per (alert, contact, channel), once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.suppressions import suppress
from alerts.core.clock import utcnow
from alerts.core.states import SuppressionReason
from alerts.delivery.publish import publish
from alerts.store.models import Delivery, DeliveryEvent
from tests.factories import add_contacts, approved_alert, make_users


async def _count(session: AsyncSession, *where: object) -> int:
    return int((await session.execute(select(func.count()).select_from(Delivery).where(*where))).scalar_one())


async def test_publishing_twice_creates_nothing_twice(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 50, telegram=True)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        assert await publish(session, alert, now=utcnow()) == 100
        assert await publish(session, alert, now=utcnow()) == 0
        assert await _count(session, Delivery.alert_id == alert.id) == 100
        events = (await session.execute(select(func.count()).select_from(DeliveryEvent))).scalar_one()
        assert events == 100  # one queued event per delivery, none for the repeat


async def test_audience_filters_lists_kinds_suppressions_and_languages(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        authorities = await add_contacts(session, 5, kind="authority", language="fr")
        await add_contacts(session, 5, kind="media", start=100)
        await add_contacts(session, 5, kind="authority", list_name="other", start=200)
        await suppress(
            session, channel="email", address="PERSON0@example.org", reason=SuppressionReason.UNSUBSCRIBED
        )
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, kinds=("authority",), languages=("en", "fr")
        )
        assert await publish(session, alert, now=utcnow()) == 4
        rows = (await session.execute(select(Delivery.contact_id, Delivery.language))).all()
        assert sorted(r.contact_id for r in rows) == authorities[1:]
        assert {r.language for r in rows} == {"fr"}


async def test_press_contacts_get_the_press_form_not_a_second_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 3, kind="press")
        await add_contacts(session, 2, kind="partner", start=10)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email", "press"))
        await publish(session, alert, now=utcnow())
        assert await _count(session, Delivery.channel == "press") == 3
        assert await _count(session, Delivery.channel == "email") == 2


async def test_language_falls_back_to_english_when_not_approved(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, language="de")
        alert = await approved_alert(session, author=officer, reviewer=reviewer, languages=("en", "fr"))
        await publish(session, alert, now=utcnow())
        langs = (await session.execute(select(Delivery.language))).scalars().all()
        assert langs == ["en", "en"]


async def test_a_shared_chat_gets_one_copy_even_when_its_first_contact_is_out_of_the_audience(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        [outsider] = await add_contacts(session, 1, list_name="other", telegram=True)
        insiders = await add_contacts(session, 2, telegram=True, start=10)
        # all three share one group chat; the lowest id is not in the alert's list
        await session.execute(update(Contact).values(telegram="-100777"))
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        assert await publish(session, alert, now=utcnow()) == 1
        rows = (await session.execute(select(Delivery.contact_id, Delivery.address))).all()
    assert rows == [(insiders[0], "-100777")] and outsider < insiders[0]


async def test_a_channel_this_service_cannot_send_on_is_refused_up_front(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    import pytest

    from alerts.core.errors import Conflict

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, telegram=True)
        explicit = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        with pytest.raises(Conflict) as info:
            await publish(session, explicit, now=utcnow(), available={"email", "press"})
        assert info.value.message.startswith(f"alert {explicit.id}: channel telegram is not configured")
        assert await _count(session, Delivery.alert_id == explicit.id) == 0
        every = await approved_alert(session, author=officer, reviewer=reviewer, channels=())
        assert await publish(session, every, now=utcnow(), available={"email", "press"}) == 2
        assert await _count(session, Delivery.alert_id == every.id, Delivery.channel == "telegram") == 0


async def test_an_update_respects_channels_chosen_since(sessions: async_sessionmaker[AsyncSession]) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, telegram=True)
        original = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).values(state="sent"))
        await session.execute(
            update(Contact).where(Contact.email == "person0@example.org").values(channels=["email"])
        )
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            channels=("email", "telegram"),
            parent_id=original.id,
        )
        assert await publish(session, follow, now=utcnow()) == 3
        only_email = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            channels=("email",),
            parent_id=original.id,
        )
        assert await publish(session, only_email, now=utcnow()) == 2
        rows = sorted(
            (
                await session.execute(
                    select(Delivery.address, Delivery.channel).where(Delivery.alert_id == follow.id)
                )
            ).all()
        )
    assert rows == [
        ("100001", "telegram"),
        ("person0@example.org", "email"),
        ("person1@example.org", "email"),
    ]


async def test_a_json_null_channel_preference_still_means_every_channel(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A row written as JSON ``null`` before migration 0002 repaired it is fanned out all the same."""
    from sqlalchemy import text

    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO contacts (name, email, email_key, telegram, kind, language, channels, status, token, "
                "created_at, updated_at) VALUES ('Old', 'old@example.org', 'old@example.org', '4711', 'partner', "
                "'en', 'null', 'active', 'old-token-0123456789', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        officer, reviewer = await make_users(session)
        alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            lists=(),
            kinds=("partner",),
            channels=("email", "telegram"),
        )
        assert await publish(session, alert, now=utcnow()) == 2
