"""Fan-out: the audience expands into one delivery per (alert, contact, channel), once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.models import Delivery, DeliveryEvent
from alerts.publish import publish
from alerts.states import SuppressionReason
from alerts.suppressions import suppress
from alerts.timeutil import utcnow
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
