"""Fan-out: the audience expands into one delivery per (alert, contact, channel), once."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.suppressions import suppress
from alerts.core.clock import utcnow
from alerts.core.states import SuppressionReason
from alerts.delivery.audience_report import AudienceReport
from alerts.delivery.publish import publish
from alerts.store.models import Alert, AuditEntry, Delivery, DeliveryEvent
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


async def test_each_new_delivery_gets_one_queued_event_the_webhooks_too_and_a_repeat_only_the_newcomers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 3, telegram=True)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram", "webhook")
        )
        first = utcnow()
        hook = "http://partner.test/hook"
        assert await publish(session, alert, now=first, webhook_url=hook) == 7
        await add_contacts(session, 2, start=10)  # joined the list since: email only
        again = utcnow()
        assert await publish(session, alert, now=again, webhook_url=hook) == 2
        rows = (await session.execute(select(Delivery.id, Delivery.created_at))).all()
        deliveries = {row.id: row.created_at for row in rows}
        events = (await session.execute(select(DeliveryEvent))).scalars().all()
        assert sorted(e.delivery_id for e in events) == sorted(deliveries)  # one each, no repeat
        for e in events:
            assert (e.alert_id, e.type, e.from_state, e.to_state, e.attempt, e.detail) == (
                alert.id,
                "queued",
                None,
                "queued",
                0,
                "fan-out",
            )
            assert e.at == deliveries[e.delivery_id]  # the publish that wrote the delivery
        assert sum(e.at == again for e in events) == 2


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


async def test_an_alert_without_english_goes_in_its_first_language_to_contacts_of_another(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Approved in French and Spanish only: a German reader gets French, the first approved."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, language="de")
        await add_contacts(session, 1, language="es", start=2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, languages=("fr", "es"))
        await publish(session, alert, now=utcnow())
        langs = (
            (await session.execute(select(Delivery.language).order_by(Delivery.contact_id))).scalars().all()
        )
        assert langs == ["fr", "fr", "es"]


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


async def test_an_update_gives_a_chat_one_copy_when_two_of_its_recipients_share_it_by_now(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        first, second = await add_contacts(session, 2, telegram=True)
        original = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        assert await publish(session, original, now=utcnow()) == 2  # two chats, one copy each
        await session.execute(update(Delivery).values(state="sent"))
        # since then an officer moved the second contact to the first one's group chat
        chat = (await session.execute(select(Contact.telegram).where(Contact.id == first))).scalar_one()
        await session.execute(update(Contact).where(Contact.id == second).values(telegram=chat))
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            channels=("telegram",),
            parent_id=original.id,
        )
        assert await publish(session, follow, now=utcnow()) == 1
        rows = (
            await session.execute(
                select(Delivery.contact_id, Delivery.address).where(Delivery.alert_id == follow.id)
            )
        ).all()
    assert rows == [(first, chat)]


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


# -- consent, topics, empty audiences, and the mutations the suite used to miss -----------------


async def test_public_contacts_on_a_list_get_nothing_without_the_defenders_consent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The alert names only a list (so no consent is asked for); its public members are left out."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        authorities = await add_contacts(session, 2, kind="authority")
        await add_contacts(session, 2, kind="public", start=10)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        assert await publish(session, alert, now=utcnow()) == 2
        rows = (await session.execute(select(Delivery.contact_id))).scalars().all()
    assert sorted(rows) == authorities


async def test_publishing_twice_queues_one_webhook_delivery(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "webhook")
        )
        hook = "http://partner.test/hook"
        assert await publish(session, alert, now=utcnow(), webhook_url=hook) == 2
        assert await publish(session, alert, now=utcnow(), webhook_url=hook) == 0
        assert await _count(session, Delivery.channel == "webhook") == 1


async def test_a_suppressed_address_is_left_out_whatever_the_case_of_the_contacts_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        jane, other = await add_contacts(session, 2)
        await session.execute(
            update(Contact).where(Contact.id == jane).values(email="Jane@X.org", email_key="jane@x.org")
        )
        await suppress(session, channel="email", address="jane@x.org", reason=SuppressionReason.BOUNCED)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email", "press"))
        assert await publish(session, alert, now=utcnow()) == 1
        assert (await session.execute(select(Delivery.contact_id))).scalars().all() == [other]


async def _with_topics(session: AsyncSession, topics: dict[int, list[str] | None]) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    for contact_id, chosen in topics.items():
        await session.execute(update(Contact).where(Contact.id == contact_id).values(topics=chosen))


async def test_subscribers_get_only_the_alerts_on_the_topics_they_chose(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Family ``urgent-appeal``, case country ``Calvera`` (templates/urgent-appeal/example.toml)."""
    from alerts.compose.approval import record_consent
    from alerts.contacts.subscriptions import clean_topics

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        ids = await add_contacts(session, 9, kind="public")
        await _with_topics(
            session,
            {
                ids[0]: None,  # no choice: everything
                ids[1]: clean_topics(["urgent-appeal"], []),
                ids[2]: clean_topics(["closure"], []),
                ids[3]: clean_topics([], ["calvera"]),  # a country in another case still matches
                ids[4]: clean_topics([], ["Freedonia"]),
                ids[5]: clean_topics(["urgent-appeal", "closure"], ["Freedonia", "Calvera"]),
                ids[6]: clean_topics(["urgent-appeal"], ["Freedonia"]),  # both must match
                ids[7]: clean_topics([], ["Cal_era"]),  # LIKE wildcards match nothing else
                ids[8]: [],
            },
        )
        alert = await approved_alert(session, author=officer, reviewer=reviewer, kinds=("public",))
        await record_consent(session, alert, user=reviewer, scope="public", now=utcnow())
        await publish(session, alert, now=utcnow())
        got = sorted((await session.execute(select(Delivery.contact_id))).scalars().all())
    assert got == [ids[0], ids[1], ids[3], ids[5], ids[8]]


async def test_an_alert_whose_case_names_no_country_reaches_those_who_chose_no_country(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.contacts.subscriptions import clean_topics
    from alerts.store.models import AlertVersion

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        ids = await add_contacts(session, 2)
        await _with_topics(
            session, {ids[0]: clean_topics(["urgent-appeal"], []), ids[1]: clean_topics([], ["Calvera"])}
        )
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        version = (
            await session.execute(select(AlertVersion).where(AlertVersion.alert_id == alert.id))
        ).scalar_one()
        version.case_data = {k: v for k, v in version.case_data.items() if k != "country"}
        await session.flush()
        assert await publish(session, alert, now=utcnow()) == 1
        assert (await session.execute(select(Delivery.contact_id))).scalars().all() == [ids[0]]


async def test_a_country_given_per_language_matches_the_subscribers_english_choice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Subscribers pick countries by their English name; a case may name its country per
    language (``{en = "Calvera", fr = "Calvéra"}``): the English one is matched."""
    from alerts.contacts.subscriptions import clean_topics
    from alerts.store.models import AlertVersion

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        ids = await add_contacts(session, 3)
        await _with_topics(
            session,
            {ids[0]: clean_topics([], ["Calvera"]), ids[1]: clean_topics([], ["Calvéra"]), ids[2]: None},
        )
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        version = (
            await session.execute(select(AlertVersion).where(AlertVersion.alert_id == alert.id))
        ).scalar_one()
        version.case_data = {**version.case_data, "country": {"en": "Calvera", "fr": "Calvéra"}}
        await session.flush()
        assert await publish(session, alert, now=utcnow()) == 2
        reached = (await session.execute(select(Delivery.contact_id))).scalars().all()
    assert sorted(reached) == [ids[0], ids[2]]


async def _report(session: AsyncSession, alert: Alert, *, webhook_url: str = "") -> AudienceReport:
    """The audience report the officers' page shows before sending (English, every kind)."""
    from alerts.delivery.audience_report import report

    return await report(
        session,
        alert,
        languages=["en"],
        exclude_kinds=[],
        available=None,
        webhook_url=webhook_url,
        country=None,
    )


async def _refusal(session: AsyncSession, alert: object, **kw: object) -> tuple[str, dict[str, object]]:
    import pytest

    from alerts.core.errors import Conflict
    from alerts.store.models import Alert

    assert isinstance(alert, Alert)
    before = alert.status
    with pytest.raises(Conflict) as info:
        await publish(session, alert, now=utcnow(), **kw)  # type: ignore[arg-type]
    assert alert.status == before and alert.fanned_out_at is None
    assert await _count(session, Delivery.alert_id == alert.id) == 0
    return info.value.message, info.value.details


async def test_an_alert_that_matches_no_contact_is_refused_at_send(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, list_name="other")
        alert = await approved_alert(session, author=officer, reviewer=reviewer, kinds=("media",))
        message, details = await _refusal(session, alert)
    assert message == (
        f"alert {alert.id} has no recipients: no contact is on its lists (urgent-appeals) "
        "with its kinds (media)."
    )
    assert details == {"alert": alert.id, "reason": "no_match", "matching": 0, "left_out": {}}


async def test_an_alert_whose_matching_contacts_are_all_left_out_is_refused_saying_why(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        gone, bounced, chose_telegram, no_email = await add_contacts(session, 4)
        public = await add_contacts(session, 2, kind="public", start=10)
        await session.execute(update(Contact).where(Contact.id == gone).values(status="unsubscribed"))
        await suppress(
            session, channel="email", address="person1@example.org", reason=SuppressionReason.BOUNCED
        )
        await session.execute(
            update(Contact).where(Contact.id == chose_telegram).values(channels=["telegram"])
        )
        await session.execute(
            update(Contact).where(Contact.id == no_email).values(email=None, email_key=None, telegram="42")
        )
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        message, details = await _refusal(session, alert)
    assert details == {
        "alert": alert.id,
        "reason": "all_left_out",
        "matching": 6,
        "left_out": {"inactive": 1, "no_consent": 2, "no_address": 1, "other_channels": 1, "suppressed": 1},
    }
    assert message == (
        f"alert {alert.id} has no recipients: 6 contacts match its lists (urgent-appeals) and every "
        "one is left out: 1 unsubscribed or not active; 2 public, without the defender's consent to "
        "publicity; 1 with no address for email; 1 chose other channels; 1 suppressed (unsubscribed, "
        "bounced or blocked the bot)."
    )
    assert public and bounced  # on the list, left out for the reasons counted


async def test_an_alert_for_a_channel_nobody_has_an_address_for_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 3)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        message, details = await _refusal(session, alert, webhook_url="http://partner.test/hook")
    assert details["left_out"] == {"no_address": 3}
    assert "3 with no address for telegram" in message


async def test_an_update_whose_original_reached_nobody_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())  # queued, nothing sent yet
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id
        )
        message, details = await _refusal(session, follow)
    assert message == (
        f"alert {follow.id} has no recipients: it is an update, and the original alert "
        f"{original.id} has not reached anyone yet."
    )
    assert details == {"alert": follow.id, "reason": "original_reached_nobody", "original": original.id}


async def test_an_update_is_not_sent_to_the_originals_public_recipients_after_consent_was_withdrawn(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from tests.delivery_cases import mark_sent, public_case, public_update, set_consent, states_by_contact

    case = await public_case(sessions)
    await mark_sent(sessions, case.alert_id)
    await set_consent(sessions, case.alert_id, "restricted")
    update_id = await public_update(sessions, case.alert_id)  # its own consent says public
    assert set(await states_by_contact(sessions, update_id)) == set(case.authorities)


async def test_an_alert_only_for_an_unconfigured_webhook_is_refused_saying_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("webhook",))
        message, details = await _refusal(session, alert)
    assert message == (
        f"alert {alert.id} has no recipients: it goes to no contact channel and the webhook "
        "has no URL configured ([webhook] url)."
    )
    assert details == {"alert": alert.id, "reason": "no_channel", "matching": 0, "left_out": {}}


async def test_an_update_only_for_an_unconfigured_webhook_is_refused_saying_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Not "suppressed": the original's recipients are fine, the update names no channel that
    reaches them."""
    from sqlalchemy import update

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id,
            channels=("webhook",),
        )  # fmt: skip
        message, details = await _refusal(session, follow)
    assert details == {"alert": follow.id, "reason": "no_channel", "matching": 0, "left_out": {}}
    assert "the webhook has no URL configured" in message


async def test_an_update_whose_originals_recipients_are_all_left_out_is_refused_saying_why(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Counted over the original's sent and delivered rows: one reason per row, first that fits."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        gone, no_email, chose_telegram, bounced, media = await add_contacts(session, 5, telegram=True)
        original = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        await session.execute(
            update(Delivery).where(Delivery.contact_id == bounced).values(state="delivered")
        )
        await session.execute(update(Contact).where(Contact.id == gone).values(status="unsubscribed"))
        await session.execute(
            update(Contact).where(Contact.id == no_email).values(email=None, email_key=None)
        )
        await session.execute(
            update(Contact).where(Contact.id == chose_telegram).values(channels=["telegram"])
        )
        await session.execute(update(Contact).where(Contact.id == media).values(kind="media"))
        await suppress(
            session, channel="email", address="person3@example.org", reason=SuppressionReason.BOUNCED
        )
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            parent_id=original.id,
            kinds=("authority",),
        )
        message, details = await _refusal(session, follow)
    assert details == {
        "alert": follow.id,
        "reason": "all_left_out",
        "matching": 10,
        # the five telegram rows: the update goes by email only; then one email row each
        "left_out": {"inactive": 2, "other_kinds": 2, "no_address": 1, "other_channels": 4, "suppressed": 1},
    }
    assert message == (
        f"alert {follow.id} has no recipients: 10 contacts match the recipients its original alert "
        f"{original.id} reached and every one is left out: 2 unsubscribed or not active; 2 of other "
        "kinds than the update's; 1 with no address for email; 4 chose other channels; 1 suppressed (unsubscribed, "
        "bounced or blocked the bot)."
    )


async def test_an_update_without_kinds_reports_its_suppressed_recipients_as_suppressed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())
        from sqlalchemy import update

        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        for address in ("person0@example.org", "person1@example.org"):
            await suppress(session, channel="email", address=address, reason=SuppressionReason.UNSUBSCRIBED)
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id
        )
        _message, details = await _refusal(session, follow)
    assert details["left_out"] == {"suppressed": 2}


async def test_the_audience_report_of_an_update_lists_the_originals_recipients_it_leaves_out(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One row per contact the original reached (sent or delivered, not failed) and the update
    will not reach, with its reason; the one still reachable is counted as reached."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        reached, gone, never_got_it, delivered, blocked = await add_contacts(session, 5, telegram=True)
        original = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        await session.execute(
            update(Delivery).where(Delivery.contact_id == never_got_it).values(state="failed")
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.contact_id.in_([delivered, reached]), Delivery.channel == "email")
            .values(state="delivered")
        )
        await session.execute(
            update(Contact)
            .where(Contact.id.in_([gone, never_got_it, delivered]))
            .values(status="unsubscribed")
        )
        await suppress(
            session, channel="email", address="person4@example.org", reason=SuppressionReason.BOUNCED
        )
        await suppress(session, channel="telegram", address="100004", reason=SuppressionReason.BLOCKED)
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            parent_id=original.id,
            channels=("email", "telegram"),
        )
        got = await _report(session, follow)
    assert got.left_out_counts == {"inactive": 2, "suppressed": 1}
    assert [(c.contact_id, c.reason) for c in got.left_out] == [
        (gone, "inactive"),
        (delivered, "inactive"),
        (blocked, "suppressed"),
    ]
    assert got.deliveries == 2 and reached  # its email (delivered) and its telegram (sent)


async def test_the_audience_report_of_an_update_for_some_kinds_leaves_out_the_others_as_other_kinds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The original reached an authority and a journalist; the update goes to authorities only."""
    from sqlalchemy import update

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        (authority,) = await add_contacts(session, 1)
        (journalist,) = await add_contacts(session, 1, kind="media", start=1)
        original = await approved_alert(
            session, author=officer, reviewer=reviewer, kinds=("authority", "media")
        )
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            parent_id=original.id,
            kinds=("authority",),
        )
        got = await _report(session, follow)
    assert got.deliveries == 1 and authority
    assert got.left_out_counts == {"other_kinds": 1}
    assert [(c.contact_id, c.kind, c.reason) for c in got.left_out] == [(journalist, "media", "other_kinds")]


async def test_the_audience_report_lists_the_first_left_out_and_counts_every_reason_past_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """More left out than the report lists: the first LIST_LIMIT by id, and the counts of every
    reason, including one whose contacts all come after the listed ones."""
    from sqlalchemy import update

    from alerts.delivery.audience_report import LIST_LIMIT
    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        (reached,) = await add_contacts(session, 1)
        no_address = await add_contacts(session, LIST_LIMIT + 5, email=False, start=1)
        inactive = await add_contacts(session, 3, start=LIST_LIMIT + 6)
        await session.execute(update(Contact).where(Contact.id.in_(inactive)).values(status="unsubscribed"))
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        got = await _report(session, alert)
    assert got.deliveries == 1 and reached
    assert got.left_out_counts == {"inactive": 3, "no_address": LIST_LIMIT + 5}
    assert [c.contact_id for c in got.left_out] == no_address[:LIST_LIMIT]
    assert {c.reason for c in got.left_out} == {"no_address"}


async def test_the_audience_report_of_an_alert_leaves_out_other_topics_and_ignores_other_lists(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.contacts.subscriptions import clean_topics

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        wants, other_topic = await add_contacts(session, 2)
        await add_contacts(session, 1, list_name="other", start=10)
        await _with_topics(session, {other_topic: clean_topics(["update"], [])})
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        got = await _report(session, alert)
    assert got.deliveries == 1 and wants
    assert got.left_out_counts == {"other_topics": 1}
    assert [(c.contact_id, c.reason) for c in got.left_out] == [(other_topic, "other_topics")]


async def test_sending_on_channels_this_service_lacks_is_refused_naming_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Checked again at send (the config may have changed since the alert was written)."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        one = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email", "webhook"))
        two = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("telegram", "webhook")
        )
        said_one, _ = await _refusal(session, one, available={"email"})
        said_two, details = await _refusal(session, two, available={"email"})
    assert said_one == (
        f"alert {one.id}: channel webhook is not configured on this service (see [webhook] in the "
        "config); remove it from the alert or configure it."
    )
    assert said_two == (
        f"alert {two.id}: channels telegram, webhook are not configured on this service (see "
        "[telegram] in the config); remove them from the alert or configure them."
    )
    assert details == {"alert": two.id, "channels": ["telegram", "webhook"]}


async def test_a_press_alert_counts_a_contact_who_chose_email_as_reachable_by_press(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Press arrives at the email address: a contact who chose email is suppressed, not one who
    chose other channels."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        chose_email, chose_telegram = await add_contacts(session, 2, kind="media")
        await session.execute(update(Contact).where(Contact.id == chose_email).values(channels=["email"]))
        await session.execute(
            update(Contact).where(Contact.id == chose_telegram).values(channels=["telegram"])
        )
        await suppress(
            session, channel="email", address="person0@example.org", reason=SuppressionReason.UNSUBSCRIBED
        )
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("press",))
        _, details = await _refusal(session, alert)
    assert details == {
        "alert": alert.id,
        "reason": "all_left_out",
        "matching": 2,
        "left_out": {"other_channels": 1, "suppressed": 1},
    }


async def test_the_audience_report_names_only_contacts_reachable_nowhere_else_not_configured(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A service without Telegram: a contact with only a Telegram id is not_configured; one
    whose email is suppressed is suppressed, though it has a Telegram id too."""
    from sqlalchemy import update

    from alerts.delivery.audience_report import report
    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        reached, telegram_only, suppressed = await add_contacts(session, 3, telegram=True)
        await session.execute(
            update(Contact).where(Contact.id == telegram_only).values(email=None, email_key=None)
        )
        await suppress(
            session, channel="email", address="person2@example.org", reason=SuppressionReason.UNSUBSCRIBED
        )
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        got = await report(
            session,
            alert,
            languages=["en"],
            exclude_kinds=[],
            available={"email", "press"},
            webhook_url="",
            country=None,
        )
    assert got.deliveries == 1 and reached
    assert got.left_out_counts == {"not_configured": 1, "suppressed": 1}
    assert sorted((c.contact_id, c.reason) for c in got.left_out) == [
        (telegram_only, "not_configured"),
        (suppressed, "suppressed"),
    ]


async def test_two_sends_of_one_alert_at_once_write_each_delivery_and_the_status_change_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The second waits for the first's commit (PostgreSQL: the alert's row lock; SQLite: the
    write lock), then finds everything written: no error, nothing twice, one audit entry."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 40, telegram=True)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        alert_id = alert.id

    async def send(session: AsyncSession) -> int:
        found = await session.get(Alert, alert_id)
        assert found is not None
        return await publish(session, found, now=utcnow())

    async def second_send() -> int:
        async with sessions.begin() as session:
            return await send(session)

    async with sessions() as first, first.begin():
        assert await send(first) == 80
        racing = asyncio.create_task(second_send())
        await asyncio.sleep(0.5)
        assert not racing.done()  # it waits for this transaction
    assert await racing == 0
    async with sessions() as session:
        assert await _count(session, Delivery.alert_id == alert_id) == 80
        queued = await session.scalar(select(func.count()).where(DeliveryEvent.alert_id == alert_id))
        assert queued == 80
        changes = (
            await session.execute(
                select(AuditEntry.details).where(
                    AuditEntry.action == "alert.status", AuditEntry.object_id == str(alert_id)
                )
            )
        ).scalars()
        assert [d["to"] for d in changes if d] == ["sending"]


async def test_a_press_alert_counts_a_press_contact_without_an_email_address_as_having_none(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1, kind="media", email=False, telegram=True)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("press",))
        message, details = await _refusal(session, alert)
    assert details["left_out"] == {"no_address": 1}
    assert (
        "1 contact matches its lists (urgent-appeals) and every one is left out: 1 with no address for press."
        in message
    )


async def test_an_alert_with_a_webhook_names_only_its_contact_channels_when_nobody_is_reachable(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, email=False, telegram=True)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "webhook")
        )
        message, details = await _refusal(session, alert, webhook_url="http://partner.test/hook")
    assert details["left_out"] == {"no_address": 2}
    assert message.endswith("every one is left out: 2 with no address for email.")


async def test_an_update_whose_recipients_are_all_public_after_consent_was_withdrawn_is_refused_saying_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from tests.delivery_cases import mark_sent, public_case, public_update, set_consent

    case = await public_case(sessions, authorities=0, public=2)
    await mark_sent(sessions, case.alert_id)
    await set_consent(sessions, case.alert_id, "restricted")
    update_id = await public_update(sessions, case.alert_id, publish_it=False)
    async with sessions.begin() as session:
        from alerts.store.models import Alert

        follow = await session.get(Alert, update_id)
        _message, details = await _refusal(session, follow)
    assert details["left_out"] == {"no_consent": 2}


async def test_the_audience_report_names_a_contact_sharing_a_chat_as_shared_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        first, second = await add_contacts(session, 2, telegram=True)
        await session.execute(update(Contact).values(telegram="-100777"))
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        got = await _report(session, alert)
    assert got.deliveries == 1
    assert [(c.contact_id, c.reason) for c in got.left_out] == [(second, "shared_address")]
    assert got.left_out_counts == {"shared_address": 1} and first < second


async def test_the_audience_report_of_a_webhook_only_alert_sent_names_its_contacts_as_unaddressed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Sent to the partner webhook only: the contacts on its lists have no address on any of
    its channels (there is none), not a shared address."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("webhook",))
        url = "http://partner.test/hook"
        assert await publish(session, alert, now=utcnow(), webhook_url=url) == 1
        got = await _report(session, alert, webhook_url=url)
    assert got.webhook and got.reached == ()
    assert got.left_out_counts == {"no_address": 2}


async def test_an_update_reaches_by_telegram_a_contact_who_chose_only_telegram(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The contact's own channel choice narrows an update's channels: one who chose Telegram
    only still gets the update there, one who chose email only gets it by email only."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        by_telegram, by_email = await add_contacts(session, 2, telegram=True)
        original = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram")
        )
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        await session.execute(update(Contact).where(Contact.id == by_telegram).values(channels=["telegram"]))
        await session.execute(update(Contact).where(Contact.id == by_email).values(channels=["email"]))
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            parent_id=original.id,
            channels=("email", "telegram"),
        )
        assert await publish(session, follow, now=utcnow()) == 2
        got = (
            await session.execute(
                select(Delivery.contact_id, Delivery.channel).where(Delivery.alert_id == follow.id)
            )
        ).all()
    assert sorted(got) == sorted([(by_telegram, "telegram"), (by_email, "email")])


async def test_the_audience_report_of_an_update_leaves_out_one_the_original_only_delivered_to(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A recipient whose one delivery of the original was confirmed delivered (no longer just
    sent) and who unsubscribed since is named as left out of the update."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        stays, leaves = await add_contacts(session, 2)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())
        await session.execute(
            update(Delivery).where(Delivery.alert_id == original.id).values(state="delivered")
        )
        await session.execute(update(Contact).where(Contact.id == leaves).values(status="unsubscribed"))
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id
        )
        got = await _report(session, follow)
    assert got.left_out_counts == {"inactive": 1}
    assert [(c.contact_id, c.reason) for c in got.left_out] == [(leaves, "inactive")]
    assert got.deliveries == 1 and stays


async def test_the_webhooks_delivery_is_queued_with_no_attempt_made(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """As every delivery: the deliveries list says 0 attempts until the first send, and the
    webhook gets as many tries as the others."""
    from alerts.delivery import tracking

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "webhook")
        )
        await publish(session, alert, now=utcnow(), webhook_url="http://partner.test/hook")
        rows = await tracking.deliveries(session, alert.id)
    assert sorted((r["channel"], r["state"], r["attempts"]) for r in rows) == [
        ("email", "queued", 0),
        ("webhook", "queued", 0),
    ]


async def test_an_alert_on_two_lists_and_two_kinds_that_match_nobody_names_each_of_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1, list_name="press-releases")
        alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            lists=("urgent-appeals", "press-releases"),
            kinds=("media", "press"),
        )
        message, details = await _refusal(session, alert)
    assert message == (
        f"alert {alert.id} has no recipients: no contact is on its lists (urgent-appeals, "
        "press-releases) with its kinds (media, press)."
    )
    assert details["reason"] == "no_match"


async def test_an_alert_whose_contact_chose_other_topics_is_refused_saying_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Not "suppressed": nobody is; the contact subscribed to other topics than the alert's."""
    from alerts.contacts.subscriptions import clean_topics

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        [other_topic] = await add_contacts(session, 1)
        await _with_topics(session, {other_topic: clean_topics(["update"], [])})
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        message, details = await _refusal(session, alert)
    assert details["left_out"] == {"other_topics": 1}
    assert message.endswith("every one is left out: 1 chose other topics.")


async def test_an_update_with_a_webhook_names_only_its_contact_channels_when_its_recipients_lost_their_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        [no_email] = await add_contacts(session, 1, telegram=True)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        await session.execute(
            update(Contact).where(Contact.id == no_email).values(email=None, email_key=None)
        )
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id,
            channels=("email", "webhook"),
        )  # fmt: skip
        message, details = await _refusal(session, follow, webhook_url="http://partner.test/hook")
    assert details["left_out"] == {"no_address": 1}
    assert message.endswith("every one is left out: 1 with no address for email.")


async def test_the_audience_report_names_a_contact_who_blocked_the_bot_as_suppressed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Their chat is suppressed on Telegram (the chat id is the key, not the email address)."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        reached, blocked = await add_contacts(session, 2, telegram=True)
        await suppress(session, channel="telegram", address="100001", reason=SuppressionReason.BLOCKED)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        got = await _report(session, alert)
    assert got.deliveries == 1 and reached
    assert [(c.contact_id, c.reason) for c in got.left_out] == [(blocked, "suppressed")]
    assert got.to_json()["left_out"][0]["why"] == "suppressed (unsubscribed, bounced or blocked the bot)"


async def test_the_audience_report_of_a_webhook_only_alert_says_its_contacts_have_no_address_for_any_channel(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("webhook",))
        url = "http://partner.test/hook"
        assert await publish(session, alert, now=utcnow(), webhook_url=url) == 1
        got = await _report(session, alert, webhook_url=url)
    assert [(c["reason"], c["why"]) for c in got.to_json()["left_out"]] == [
        ("no_address", "with no address for any channel")
    ]


async def test_the_audience_report_of_an_update_names_a_recipient_now_sharing_a_chat_as_shared_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """No other reason applies: the update reaches the chat once, through the first contact."""
    from sqlalchemy import update

    from alerts.store.models import Contact

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        first, second = await add_contacts(session, 2, telegram=True)
        original = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).values(state="sent"))
        await session.execute(update(Contact).where(Contact.id == second).values(telegram="100000"))
        follow = await approved_alert(
            session, author=officer, reviewer=reviewer, family="update", parent_id=original.id,
            channels=("telegram",),
        )  # fmt: skip
        got = await _report(session, follow)
    assert got.deliveries == 1 and first
    assert got.left_out_counts == {"shared_address": 1}
    assert [(c.contact_id, c.reason) for c in got.left_out] == [(second, "shared_address")]
