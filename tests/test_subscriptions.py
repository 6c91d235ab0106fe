"""Subscribers' preferences: choosing no channel at all is unsubscribing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.compose import approval
from alerts.contacts import optout, subscriptions
from alerts.contacts.directory import create_contact
from alerts.contacts.erasure import erase_contact
from alerts.contacts.subscriptions import Confirmation, Signer
from alerts.core.clock import utcnow
from alerts.core.errors import Conflict, ValidationError
from alerts.core.signing import Signing
from alerts.delivery.publish import publish
from alerts.store.models import AuditEntry, Contact, Delivery, DeliveryEvent, Suppression
from tests.factories import approved_alert, make_users

SECRET = "test-secret-key-0123456789"


def _request(email: str, *, countries: tuple[str, ...] = ()) -> subscriptions.Request:
    return subscriptions.check_request(email=email, language="en", countries=countries)


def test_a_request_in_an_unknown_language_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        subscriptions.check_request(email="ana@example.org", language="eng")
    assert (caught.value.message, caught.value.details) == (
        "language 'eng' is not a two-letter ISO 639-1 code",
        {"field": "language"},
    )


def test_a_request_for_more_topics_than_the_limit_is_refused_naming_topics() -> None:
    countries = tuple(f"Country{n}" for n in range(subscriptions.MAX_TOPICS + 1))
    assert len(_request("ana@example.org", countries=countries[:-1]).topics or ()) == subscriptions.MAX_TOPICS
    with pytest.raises(ValidationError) as caught:
        _request("ana@example.org", countries=countries)
    assert (caught.value.message, caught.value.details) == ("topics: at most 50", {"field": "topics"})


async def test_a_subscription_to_a_kind_of_alert_that_does_not_exist_is_refused(db_url: str) -> None:
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.contacts.subscribe_limits import Limits
    from alerts.core.config import Settings

    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        with pytest.raises(ValidationError) as caught:
            await subscription_actions.subscribe(
                app,
                email="ana@example.org",
                language="en",
                kinds=["nope"],
                network="192.0.2.0/24",
                limits=Limits(),
            )
        async with app.sessions() as session:
            assert list(await session.scalars(select(Contact.email))) == []
    assert (caught.value.message, caught.value.details) == (
        "kinds: 'nope' is not a kind of alert",
        {"field": "kinds"},
    )


async def test_choosing_no_channel_unsubscribes(sessions: async_sessionmaker[AsyncSession]) -> None:
    signer = Signer(Signing(SECRET))
    async with sessions.begin() as session:
        requested = await subscriptions.subscribe(session, _request("reader@example.org"), now=utcnow())
        assert requested.confirm
        contact = requested.contact
        result, _ = await subscriptions.confirm(session, signer, signer.confirm_token(contact), now=utcnow())
        assert result is Confirmation.CONFIRMED
        officer, reviewer = await make_users(session)
        first = await approved_alert(session, author=officer, reviewer=reviewer, lists=(), kinds=("public",))
        first.is_public = True
        await approval.record_consent(session, first, user=reviewer, scope="public", now=utcnow())
        assert await publish(session, first, now=utcnow()) == 1
        contact_id, first_id = contact.id, first.id
    async with sessions.begin() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        await optout.update_preferences(
            session, contact, channels=[], language="fr", kinds=("update",), countries=(), now=utcnow()
        )
    async with sessions() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        assert (contact.status, contact.language, contact.topics) == ("unsubscribed", "fr", ["kind:update"])
        suppressed = (
            await session.execute(select(Suppression.channel, Suppression.address_key, Suppression.reason))
        ).all()
        assert [tuple(s) for s in suppressed] == [("email", "reader@example.org", "unsubscribed")]
        events = (
            await session.execute(
                select(DeliveryEvent.alert_id, DeliveryEvent.detail).where(
                    DeliveryEvent.type == "unsubscribed"
                )
            )
        ).all()
        assert [tuple(e) for e in events] == [(first_id, "unsubscribed via preferences")]
    # nothing further reaches the contact
    async with sessions.begin() as session:
        second = await approved_alert(session, author=officer, reviewer=reviewer, lists=(), kinds=("public",))
        second.is_public = True
        await approval.record_consent(session, second, user=reviewer, scope="public", now=utcnow())
        # the only public contact left: the alert has no one to reach and is refused
        with pytest.raises(Conflict, match="1 unsubscribed or not active"):
            await publish(session, second, now=utcnow())
        second_id = second.id
    async with sessions() as session:
        assert (
            await session.scalar(
                select(Delivery.id).where(Delivery.alert_id == second_id, Delivery.contact_id == contact_id)
            )
        ) is None


async def test_a_stopped_email_of_a_contact_still_on_telegram_comes_back_by_a_new_confirmation(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from datetime import timedelta

    from alerts.contacts.directory import create_contact

    signer = Signer(Signing(SECRET))
    async with sessions.begin() as session:
        contact = await create_contact(
            session, name="Partner", email="desk@partner.org", telegram="-1001", kind="partner", now=utcnow()
        )
        assert await optout.unsubscribe(session, contact, now=utcnow(), channels=("email",))
        assert contact.status == "active"  # its Telegram chat still receives
        requested = await subscriptions.subscribe(session, _request("Desk@partner.org"), now=utcnow())
        again = requested.contact
        assert requested.confirm and again.id == contact.id and again.status == "active"
        token = signer.confirm_token(again)
        result, _ = await subscriptions.confirm(session, signer, token, now=utcnow())
        assert result is Confirmation.CONFIRMED
        assert (await session.execute(select(Suppression))).all() == []
        # stopped again later: the confirmation link sent before that no longer counts
        assert await optout.unsubscribe(
            session, contact, now=utcnow() + timedelta(seconds=2), channels=("email",)
        )
        result, _ = await subscriptions.confirm(session, signer, token, now=utcnow())
        assert result is Confirmation.INVALID
        assert [s.channel for s in (await session.scalars(select(Suppression))).all()] == ["email"]


async def test_a_confirmed_subscriber_clicking_the_link_again_is_told_so_after_another_address_stopped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Someone else unsubscribing after this link was mailed says nothing about this address: the
    subscriber who clicks their confirmation link a second time is told it is already confirmed,
    not that the link is no longer valid."""
    from datetime import timedelta

    signer = Signer(Signing(SECRET))
    async with sessions.begin() as session:
        reader = (
            await subscriptions.subscribe(session, _request("reader@example.org"), now=utcnow())
        ).contact
        token = signer.confirm_token(reader)
        result, _ = await subscriptions.confirm(session, signer, token, now=utcnow())
        assert result is Confirmation.CONFIRMED
        other = await create_contact(
            session, name="Other", email="other@example.org", kind="partner", now=utcnow()
        )
        assert await optout.unsubscribe(session, other, now=utcnow() + timedelta(seconds=2))
    async with sessions.begin() as session:
        result, again = await subscriptions.confirm(session, signer, token, now=utcnow())
    assert result is Confirmation.ALREADY
    assert again is not None and again.id == reader.id


async def test_subscribing_again_after_unsubscribing_in_one_transaction_mails_a_link_that_confirms(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The contact is already loaded in the session (confirmed, then unsubscribed there): the one
    # subscribe returns must be the contact as the upsert wrote it, pending with its new token.
    signer = Signer(Signing(SECRET))
    async with sessions.begin() as session:
        first = await subscriptions.subscribe(session, _request("reader@example.org"), now=utcnow())
        contact = first.contact
        result, _ = await subscriptions.confirm(session, signer, signer.confirm_token(contact), now=utcnow())
        assert result is Confirmation.CONFIRMED
        assert await optout.unsubscribe(session, contact, now=utcnow())
        old_token = contact.token
        again = await subscriptions.subscribe(session, _request("reader@example.org"), now=utcnow())
        assert again.confirm and again.contact.id == contact.id
        assert (again.contact.status, again.contact.token != old_token) == ("pending", True)
        link = signer.confirm_token(again.contact)
    async with sessions.begin() as session:
        result, confirmed = await subscriptions.confirm(session, signer, link, now=utcnow())
        assert result is Confirmation.CONFIRMED
        assert confirmed is not None and confirmed.status == "active"


async def test_a_subscribe_request_changes_nothing_of_a_contact_that_still_receives(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Anyone can type an address into /subscribe: until the address confirms, the request must not
    # change what the contact's other addresses (its Telegram chat) receive, or in which language.
    from alerts.contacts.directory import create_contact

    async with sessions.begin() as session:
        contact = await create_contact(
            session,
            name="Partner",
            email="desk@partner.org",
            telegram="-1001",
            kind="partner",
            language="es",
            now=utcnow(),
        )
        assert await optout.unsubscribe(session, contact, now=utcnow(), channels=("email",))
        requested = await subscriptions.subscribe(
            session, _request("desk@partner.org", countries=("Nowhere",)), now=utcnow()
        )
        assert requested.confirm and requested.contact.id == contact.id  # a confirmation is mailed
        contact_id = contact.id
    async with sessions() as session:
        contact = await session.get(Contact, contact_id, populate_existing=True)
        assert contact is not None
        assert (contact.status, contact.language, contact.topics) == ("active", "es", None)


async def test_stop_in_a_chat_stops_its_contacts_and_keeps_the_chat_out(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        first = await create_contact(session, name="Ana", telegram="4141", kind="public", language="fr")
        await create_contact(
            session, name="Ana Ruiz", email="ana@example.org", telegram="4242", kind="partner", language="es"
        )
        await session.flush()
        # the first moves to the chat: on PostgreSQL its new row version lies behind the second
        first.telegram = "4242"
        first_id = first.id
    async with sessions.begin() as session:
        assert await optout.stop_chat(session, chat_id="4242", now=now) == "fr"  # the first contact's
        assert await optout.stop_chat(session, chat_id="777", now=now) == "en"  # no contact: kept out too
    async with sessions() as session:
        rows = await session.execute(
            select(
                Suppression.channel, Suppression.address_key, Suppression.reason, Suppression.detail
            ).order_by(Suppression.address_key)
        )
        assert [tuple(row) for row in rows] == [
            ("telegram", "4242", "unsubscribed", "unsubscribed via telegram"),
            ("telegram", "777", "unsubscribed", "unsubscribed via telegram"),
        ]
        entries = await session.execute(
            select(AuditEntry.user_id, AuditEntry.object_id, AuditEntry.details).where(
                AuditEntry.action == "contact.unsubscribe"
            )
        )
        assert [tuple(entry) for entry in entries] == [
            (None, str(first_id), {"via": "telegram", "channels": ["telegram"], "status": "unsubscribed"}),
        ]
        # the second still receives by email
        assert list(await session.scalars(select(Contact.status).order_by(Contact.id))) == [
            "unsubscribed",
            "active",
        ]


async def test_preferences_are_audited_and_an_unknown_channel_is_refused_by_name(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        contact = await create_contact(
            session, name="Ana", email="ana@example.org", telegram="4242", kind="public", language="es"
        )
        with pytest.raises(ValidationError) as refused:
            await optout.update_preferences(session, contact, channels=["sms", "fax"], language="fr", now=now)
        assert (refused.value.message, refused.value.details) == (
            "channels: 'fax' is not one of email, telegram",
            {"field": "channels"},
        )
        await optout.update_preferences(
            session, contact, channels=["telegram", "email"], language="fr", now=now
        )
        contact_id = contact.id
    async with sessions() as session:
        stored = await session.get(Contact, contact_id)
        assert stored is not None
        assert (stored.status, stored.channels, stored.language) == ("active", ["email", "telegram"], "fr")
        entries = await session.execute(
            select(
                AuditEntry.user_id, AuditEntry.object_type, AuditEntry.object_id, AuditEntry.details
            ).where(AuditEntry.action == "contact.preferences")
        )
        assert [tuple(entry) for entry in entries] == [
            (None, "contact", str(contact_id), {"channels": ["email", "telegram"], "language": "fr"})
        ]


async def test_confirming_lifts_an_earlier_erasure_of_the_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    signer = Signer(Signing(SECRET))
    async with sessions.begin() as session:
        erased = await create_contact(session, name="Ana", email="ana@example.org", kind="public")
        await erase_contact(session, erased.id, now=utcnow())
        assert [row.reason for row in await session.scalars(select(Suppression))] == ["erased"]
        requested = await subscriptions.subscribe(session, _request("Ana@example.org"), now=utcnow())
        assert requested.confirm and requested.contact.status == "pending"
        result, _ = await subscriptions.confirm(
            session, signer, signer.confirm_token(requested.contact), now=utcnow()
        )
        assert result is Confirmation.CONFIRMED
        # new, explicit consent: neither the plain nor the hashed key keeps the address out
        assert (await session.execute(select(Suppression))).all() == []


async def test_unsubscribe_stops_what_still_receives_and_says_when_there_was_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        contact = await create_contact(
            session, name="Desk", email="desk@partner.org", telegram="4242", kind="partner"
        )
        assert await optout.unsubscribe(session, contact, now=now, via="telegram", channels=("telegram",))
        # the chat is stopped already and the email still receives: nothing is written
        assert not await optout.unsubscribe(session, contact, now=now, via="telegram", channels=("telegram",))
        # the press channel shares the email address: stopping it stops the email (via the link)
        assert await optout.unsubscribe(session, contact, now=now, channels=("press",))
        assert contact.status == "unsubscribed"
        contact_id = contact.id
    async with sessions() as session:
        rows = await session.execute(
            select(Suppression.channel, Suppression.address_key, Suppression.detail).order_by(
                Suppression.channel
            )
        )
        assert [tuple(row) for row in rows] == [
            ("email", "desk@partner.org", "unsubscribed via link"),
            ("telegram", "4242", "unsubscribed via telegram"),
        ]
        entries = await session.execute(
            select(AuditEntry.object_id, AuditEntry.details)
            .where(AuditEntry.action == "contact.unsubscribe")
            .order_by(AuditEntry.id)
        )
        assert [tuple(entry) for entry in entries] == [
            (str(contact_id), {"via": "telegram", "channels": ["telegram"], "status": "active"}),
            (str(contact_id), {"via": "link", "channels": ["email"], "status": "unsubscribed"}),
        ]


async def test_start_in_a_new_chat_creates_a_named_public_contact_and_audits_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        started = await optout.start_chat(session, chat_id="5151", name="", language="es", now=utcnow())
    assert started.created
    async with sessions() as session:
        [contact] = await session.scalars(select(Contact))
        assert (contact.id, contact.name, contact.telegram, contact.kind, contact.language) == (
            started.contact_ids[0],
            "Telegram subscriber",
            "5151",
            "public",
            "es",
        )
        entries = await session.execute(
            select(AuditEntry.user_id, AuditEntry.object_id, AuditEntry.details).where(
                AuditEntry.action == "contact.subscribe"
            )
        )
        assert [tuple(entry) for entry in entries] == [
            (None, str(contact.id), {"via": "telegram", "language": "es", "created": True})
        ]


async def test_expire_pending_removes_stale_requests_and_audits_how_many(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from datetime import timedelta

    now = utcnow()
    async with sessions.begin() as session:
        for address in ("old1@example.org", "old2@example.org"):
            await subscriptions.subscribe(session, _request(address), now=now - timedelta(days=8))
        await subscriptions.subscribe(session, _request("new@example.org"), now=now)
    async with sessions.begin() as session:
        assert await subscriptions.expire_pending(session, now=now, days=0) == 0  # 0: keep them
        assert await subscriptions.expire_pending(session, now=now, days=7) == 2
    async with sessions() as session:
        assert list(await session.scalars(select(Contact.email))) == ["new@example.org"]
        entries = await session.execute(
            select(AuditEntry.user_id, AuditEntry.object_id, AuditEntry.details).where(
                AuditEntry.action == "contact.expire_pending"
            )
        )
        assert [tuple(entry) for entry in entries] == [(None, None, {"removed": 2, "days": 7})]


async def test_sending_a_confirmation_says_whether_it_went_and_logs_a_failure_without_the_address(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.core.config import Settings
    from alerts.core.types import Outcome, OutcomeKind
    from channels.memory import MemoryChannel

    mail = subscription_actions.ConfirmationMail(
        contact_id=7,
        address="reader@example.org",
        language="en",
        url="http://alerts.test/subscribe/confirm/x",
    )
    settings = Settings().replace("database", url=db_url)
    async with open_app(settings, channels={}) as app:
        assert await subscription_actions.send_confirmation(app, None) is False
        with caplog.at_level("WARNING", logger="alerts"):
            assert await subscription_actions.send_confirmation(app, mail) is False
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("WARNING", "no email channel: the confirmation for contact 7 was not sent")
        ]
    email = MemoryChannel(channel_name="email")
    email.script["reader@example.org"] = [Outcome(kind=OutcomeKind.PERMANENT, detail="550 no such user")]
    async with open_app(settings, channels={"email": email}) as app:
        assert await subscription_actions.send_confirmation(app, mail) is False  # refused
        assert await subscription_actions.send_confirmation(app, mail) is True
    [sent] = email.sent
    assert sent.recipient.address == "reader@example.org" and "reader@" not in caplog.text


async def test_the_confirmation_mail_says_what_to_do_in_the_subscribers_language_english_for_another(
    db_url: str,
) -> None:
    """What the subscriber finds in the inbox of a real SMTP server: the subject and text of
    their language (English for one without a translation), the link, the service's sender,
    and no List-Unsubscribe (nothing is subscribed yet)."""
    import email as email_lib
    import email.policy

    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.cli.capture import CaptureServer
    from alerts.core.config import Settings

    url = "http://alerts.test/subscribe/confirm/abc"
    async with CaptureServer() as capture:
        settings = (
            Settings()
            .replace("database", url=db_url)
            .replace(
                "email", host="127.0.0.1", port=capture.port, pool_size=1, from_="Desk <desk@alerts.test>"
            )
        )
        async with open_app(settings) as app:
            for n, language in enumerate(("es", "de", "fr"), start=1):
                mail = subscription_actions.ConfirmationMail(
                    contact_id=n, address=f"reader{n}@example.org", language=language, url=url
                )
                assert await subscription_actions.send_confirmation(app, mail) is True
    received = capture.messages()
    assert [(m.rcpt_tos, m.mail_from) for m in received] == [
        (("reader1@example.org",), "desk@alerts.test"),
        (("reader2@example.org",), "desk@alerts.test"),
        (("reader3@example.org",), "desk@alerts.test"),
    ]
    parsed = [email_lib.message_from_bytes(m.raw, policy=email.policy.default) for m in received]
    assert [str(p["Subject"]) for p in parsed] == [
        "Confirme su suscripción a las alertas urgentes",
        "Confirm your subscription to urgent alerts",
        "Confirmez votre abonnement aux alertes urgentes",
    ]
    texts = []
    for p in parsed:
        assert p["From"] == "Desk <desk@alerts.test>" and p["List-Unsubscribe"] is None
        body = p.get_body(("plain",))
        assert body is not None
        texts.append(str(body.get_content()).replace("\r\n", "\n"))
    assert "Para confirmar, abra este enlace y pulse el botón:\n" + url + "\n" in texts[0]
    assert "To confirm, open this link and press the button:\n" + url + "\n" in texts[1]
    assert "The link expires in 7 days." in texts[1]
    assert "Pour confirmer, ouvrez ce lien et appuyez sur le bouton :\n" + url + "\n" in texts[2]


async def test_a_confirmation_that_fails_to_go_is_logged_by_contact_and_cause(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.core.config import Settings
    from alerts.core.types import Outcome, OutcomeKind
    from channels.memory import MemoryChannel

    mail = subscription_actions.ConfirmationMail(
        contact_id=9,
        address="reader@example.org",
        language="en",
        url="http://alerts.test/subscribe/confirm/x",
    )
    email = MemoryChannel(channel_name="email")
    email.script["reader@example.org"] = [
        ConnectionResetError("peer reset"),
        Outcome(kind=OutcomeKind.TRANSIENT, detail="451 try later"),
        Outcome(kind=OutcomeKind.UNKNOWN),
    ]
    async with open_app(Settings().replace("database", url=db_url), channels={"email": email}) as app:
        with caplog.at_level("WARNING", logger="alerts"):
            for _ in range(3):
                assert await subscription_actions.send_confirmation(app, mail) is False
            assert await subscription_actions.send_confirmation(app, mail) is True
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "confirmation for contact 9 not sent: ConnectionResetError"),
        ("WARNING", "confirmation for contact 9 not sent: transient"),
        ("WARNING", "confirmation for contact 9 not sent: unknown"),
    ]
    assert "reader@" not in caplog.text


async def test_a_subscriber_confirms_by_the_link_mailed_once_and_then_owns_their_preferences(
    db_url: str,
) -> None:
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.contacts.subscribe_limits import Limits
    from alerts.core.config import Settings
    from alerts.core.errors import NotFound

    settings = (
        Settings()
        .replace("database", url=db_url)
        .replace("server", secret_key=SECRET, public_url="http://alerts.test/")
    )
    async with open_app(settings, channels={}) as app:
        with pytest.raises(ValidationError) as caught:
            await subscription_actions.subscribe(
                app, email="  ", language="en", network="192.0.2.0/24", limits=Limits()
            )
        assert (caught.value.message, caught.value.details) == (
            "Please give an email address.",
            {"field": "email"},
        )
        asked = await subscription_actions.subscribe(
            app, email="Reader@Example.ORG", language="fr", countries=["Calvera"], network="192.0.2.0/24",
            limits=Limits(),
        )  # fmt: skip
        mail = asked.to_confirm
        assert mail is not None and (asked.refusal, asked.retry_after) == (None, 0)
        assert (mail.address, mail.language) == ("Reader@example.org", "fr")
        assert mail.url.startswith("http://alerts.test/subscribe/confirm/")
        token = mail.url.removeprefix("http://alerts.test/subscribe/confirm/")
        assert subscription_actions.confirmation_valid(app, token)
        assert not subscription_actions.confirmation_valid(app, token[:-2])
        with pytest.raises(NotFound) as invalid:
            await subscription_actions.confirm(app, token[:-2])
        assert invalid.value.message == "this link is not valid or has expired"
        first = await subscription_actions.confirm(app, token)
        again = await subscription_actions.confirm(app, token)
        assert (first.already, again.already) == (False, True)
        async with app.sessions() as session:
            contact = await session.scalar(select(Contact).where(Contact.email_key == "reader@example.org"))
            assert contact is not None and (contact.id, contact.status) == (mail.contact_id, "active")
        shown = await subscription_actions.preferences(app, first.link_token)
        assert shown == subscription_actions.Preferences(
            contact_id=mail.contact_id,
            unsubscribed=False,
            choices=("email", "telegram"),
            channels=("email",),
            language="fr",
            kinds=(),
            countries=("Calvera",),
        )
        async with app.sessions.begin() as session:  # entered by an officer: no choice made yet
            desk = await create_contact(session, name="Desk", email="desk@partner.org", kind="partner")
            desk_token = subscription_actions.signer(app).link_token(desk.token)
        assert (await subscription_actions.preferences(app, desk_token)).channels == ("email", "telegram")
        # asking again while subscribed: nothing to confirm, nothing changed
        again_asked = await subscription_actions.subscribe(
            app, email="reader@example.org", language="en", network="192.0.2.0/24", limits=Limits()
        )
        assert again_asked == subscription_actions.Subscribed()
        stopped = await subscription_actions.unsubscribe(app, first.link_token)
        assert (stopped.contact_id, stopped.already, stopped.status) == (
            mail.contact_id,
            False,
            "unsubscribed",
        )
        stopped_again = await subscription_actions.unsubscribe(app, first.link_token)
        assert (stopped_again.already, stopped_again.status) == (True, "unsubscribed")
        assert (await subscription_actions.preferences(app, first.link_token)).unsubscribed
        with pytest.raises(Conflict) as conflict:
            await subscription_actions.change_preferences(
                app, first.link_token, channels=["email"], language="en"
            )
        assert conflict.value.message == "you are unsubscribed: subscribe again to choose what you receive"
        for forged in (first.link_token[:-2], "nope"):
            with pytest.raises(NotFound):
                await subscription_actions.preferences(app, forged)
            with pytest.raises(NotFound):
                await subscription_actions.unsubscribe(app, forged)
            with pytest.raises(NotFound):
                await subscription_actions.change_preferences(app, forged, channels=["email"], language="en")


async def test_a_subscribe_request_over_the_limit_records_nothing_and_says_when_to_retry(db_url: str) -> None:
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.contacts.subscribe_limits import Limits, Refusal
    from alerts.core.config import Settings

    limits = Limits(requests=1, request_window=600)
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        now = utcnow()
        first = await subscription_actions.subscribe(
            app, email="a@example.org", language="en", network="192.0.2.0/24", limits=limits, now=now
        )
        refused = await subscription_actions.subscribe(
            app, email="b@example.org", language="en", network="192.0.2.0/24", limits=limits, now=now
        )
        async with app.sessions() as session:
            assert list(await session.scalars(select(Contact.email))) == ["a@example.org"]
    assert first.to_confirm is not None
    assert (refused.refusal, refused.to_confirm) == (Refusal.TOO_MANY, None)
    assert 0 < refused.retry_after <= 601  # the window, rounded up


async def test_a_confirmation_for_a_stored_address_goes_to_it_as_stored(db_url: str) -> None:
    """An address stopped earlier and asked for again in other letters: the mail goes to the
    address the service holds."""
    from alerts.actions import subscriptions as subscription_actions
    from alerts.app import open_app
    from alerts.contacts.subscribe_limits import Limits
    from alerts.core.config import Settings

    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            ana = await create_contact(
                session, name="Ana", email="Ana.Ruiz@example.org", kind="public", language="es"
            )
            await optout.unsubscribe(session, ana, now=utcnow(), channels=("email",))
        asked = await subscription_actions.subscribe(
            app, email="ANA.RUIZ@EXAMPLE.ORG", language="en", network="192.0.2.0/24", limits=Limits()
        )
    assert asked.to_confirm is not None
    assert (asked.to_confirm.contact_id, asked.to_confirm.address, asked.to_confirm.language) == (
        ana.id,
        "Ana.Ruiz@example.org",
        "en",  # the language of the new request
    )


async def test_the_unsubscribe_link_marks_the_latest_press_delivery_to_the_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The link stops the email address, which press shares: a journalist who last got a press
    release and unsubscribes has that delivery marked ``unsubscribed``."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        desk = await create_contact(
            session, name="Desk", email="desk@paper.org", kind="media", lists=["press"]
        )
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, lists=("press",), channels=("press",)
        )
        assert await publish(session, alert, now=utcnow()) == 1
        assert await optout.unsubscribe(session, desk, now=utcnow(), channels=("email",))
        desk_id, alert_id = desk.id, alert.id
    async with sessions() as session:
        events = await session.execute(
            select(Delivery.channel, DeliveryEvent.alert_id, DeliveryEvent.detail)
            .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
            .where(DeliveryEvent.type == "unsubscribed", Delivery.contact_id == desk_id)
        )
        assert [tuple(e) for e in events] == [("press", alert_id, "unsubscribed via link")]
