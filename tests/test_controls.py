"""Officers' controls on a running alert, where the defender's consent is concerned; a resume from another
process reaching the dispatcher."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.actions import sending
from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, EmailSettings, Settings
from alerts.core.errors import Conflict, ValidationError
from alerts.core.types import OutcomeKind
from alerts.delivery import controls
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.delivery.publish import publish
from alerts.delivery.wakeup import Wakeup
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import Alert, AuditEntry, Consent, Delivery, DeliveryEvent
from channels.memory import MemoryChannel
from tests.delivery_cases import mark_sent, public_case, public_update, set_consent, staff, states_by_contact
from tests.factories import RENDERER, add_contacts, approved_alert, make_users
from tests.smtpd import SMTPTestServer


@pytest.mark.parametrize("kinds", [(), ("authority", "public")], ids=["list-only", "addressed-to-public"])
async def test_resend_failed_does_not_requeue_public_deliveries_after_consent_was_withdrawn(
    sessions: async_sessionmaker[AsyncSession], kinds: tuple[str, ...]
) -> None:
    """Its public members got it with consent, since withdrawn; the authorities' failures still go
    again, also when the alert itself is addressed to the public (it used to be refused whole)."""
    case = await public_case(sessions, kinds=kinds)
    async with sessions.begin() as session:
        await session.execute(update(Delivery).values(state="failed", last_error="554 rejected"))
        await session.execute(update(Alert).values(status="sent"))
    await set_consent(sessions, case.alert_id, "restricted")
    async with sessions.begin() as session:
        alert = await session.get(Alert, case.alert_id)
        assert alert is not None
        now = utcnow().replace(microsecond=0)
        assert await controls.resend_failed(session, alert, user=None, now=now) == 2
    states = await states_by_contact(sessions, case.alert_id)
    assert {states[c] for c in case.authorities} == {"queued"}
    assert {states[c] for c in case.public} == {"failed"}
    async with sessions() as session:
        requeued = (
            await session.execute(
                select(
                    Delivery.next_attempt_at,
                    Delivery.attempts,
                    Delivery.unknown_outcomes,
                    Delivery.last_error,
                    Delivery.updated_at,
                ).where(Delivery.state == "queued")
            )
        ).all()
    assert [tuple(r) for r in requeued] == [(now, 0, 0, None, now)] * 2
    async with sessions() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "alert.resend_failed"))
        ).scalar_one()
    assert entry.details == {"requeued": 2, "withheld": 2}


async def test_withdraw_public_cancels_the_unsent_public_deliveries_of_the_alert_and_its_updates(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    case = await public_case(sessions)
    async with sessions.begin() as session:  # one public delivery of the original is retrying
        first = case.public[0]
        await session.execute(
            update(Delivery)
            .where(Delivery.alert_id == case.alert_id, Delivery.contact_id != first)
            .values(state="sent")
        )
        await session.execute(update(Delivery).where(Delivery.contact_id == first).values(state="deferred"))
    update_id = await public_update(sessions, case.alert_id)
    async with sessions.begin() as session:  # the consent record alone, as the consent action writes it
        _, reviewer = await staff(session)
        session.add(Consent(alert_id=case.alert_id, scope="restricted", recorded_by=reviewer.id, note=""))
    async with sessions.begin() as session:
        alert = await session.get(Alert, case.alert_id)
        assert alert is not None
        assert await controls.withdraw_public(session, alert, now=utcnow()) == 2
        assert await controls.withdraw_public(session, alert, now=utcnow()) == 0
    original = await states_by_contact(sessions, case.alert_id)
    follow = await states_by_contact(sessions, update_id)
    assert original[first] == "cancelled" and original[case.public[1]] == "sent"
    # the update went to those the original had reached: the public contact still retrying is not one
    assert first not in follow and follow[case.public[1]] == "cancelled"
    assert {follow[c] for c in case.authorities} == {"queued"}
    async with sessions() as session:
        details = (
            await session.execute(select(DeliveryEvent.detail).where(DeliveryEvent.type == "cancelled"))
        ).scalars()
        assert set(details) == {"consent withdrawn"}


async def test_withdraw_public_leaves_an_alert_with_public_consent_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    case = await public_case(sessions)
    await mark_sent(sessions, case.alert_id)
    update_id = await public_update(sessions, case.alert_id)
    await set_consent(sessions, case.alert_id, "public")
    async with sessions.begin() as session:
        alert = await session.get(Alert, case.alert_id)
        assert alert is not None
        assert await controls.withdraw_public(session, alert, now=utcnow()) == 0
    assert set((await states_by_contact(sessions, update_id)).values()) == {"queued"}


async def test_a_test_send_goes_to_one_address_marked_as_a_test_in_the_chosen_form(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An officer's check: the chosen audience's text, "[TEST]" before its subject, a Message-ID
    no bounce can take for the alert's own, and no delivery row."""
    from dataclasses import replace

    from alerts.delivery.messages import Claimed, MessageBuilder
    from alerts.delivery.publish import load_alert_info
    from channels.memory import MemoryChannel
    from tests.factories import RENDERER, published_alert

    alert_id = await published_alert(sessions, 1)
    async with sessions() as session:
        info = await load_alert_info(session, alert_id)
        rows = await session.scalar(select(func.count()).select_from(Delivery))
    builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
    channel = MemoryChannel()
    outcome = await controls.test_send(
        channel,
        builder,
        info,
        address=" officer@example.org ",
        audience="public",
        language="en",
        channel_name="email",
    )
    assert outcome.kind == "sent"
    [sent] = channel.sent
    item = Claimed(
        id=0,
        alert_id=alert_id,
        contact_id=None,
        channel="email",
        audience="public",
        language="en",
        address="officer@example.org",
        attempts=1,
        unknown_outcomes=0,
        from_state="queued",
        name="",
    )
    real = builder.build(item, info)
    assert sent.recipient.address == "officer@example.org"
    assert sent.content == replace(real.content, subject=f"[TEST] {real.content.subject}")
    assert sent.message_id == real.message_id.replace("<alert-", "<test-alert-") != real.message_id
    assert real.content.text != builder.build(replace(item, audience="authority"), info).content.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Delivery)) == rows


async def test_a_test_send_is_addressed_to_the_bare_address_at_the_smtp_server(
    sessions: async_sessionmaker[AsyncSession], smtpd_server: SMTPTestServer, smtpd_settings: EmailSettings
) -> None:
    """The officer's test message names no recipient: its To: header is the address given, with
    no display name (it belongs to no contact)."""
    import email as email_pkg

    from alerts.delivery.publish import load_alert_info
    from channels.email import EmailChannel
    from tests.factories import published_alert

    alert_id = await published_alert(sessions, 1)
    async with sessions() as session:
        info = await load_alert_info(session, alert_id)
    builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
    channel = EmailChannel(smtpd_settings)
    try:
        outcome = await controls.test_send(
            channel,
            builder,
            info,
            address="officer@example.org",
            audience="authority",
            language="en",
            channel_name="email",
        )
    finally:
        await channel.close()
    assert outcome.kind == "sent"
    [received] = smtpd_server.messages()
    parsed = email_pkg.message_from_bytes(received.raw)
    assert (received.rcpt_tos, parsed["To"]) == (("officer@example.org",), "officer@example.org")
    assert received.subject.startswith("[TEST] ")


async def test_the_test_send_action_sends_one_marked_message_and_audits_it(db_url: str) -> None:
    """An officer's check before publishing: one message to one address, "[TEST]" in its subject,
    no delivery row, an audit entry naming the channel, audience and language."""
    email = MemoryChannel(channel_name="email")
    async with open_app(Settings().replace("database", url=db_url), channels={"email": email}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            alert_id = alert.id
        # the channel, audience and language left to their defaults: email, authority, en
        done = await sending.test_send(app, officer, alert_id, address=" desk@example.org ")
        assert (done.alert_id, done.channel, done.outcome.kind) == (alert_id, "email", OutcomeKind.SENT)
        [message] = email.sent
        assert message.recipient.address == "desk@example.org"
        assert (message.content.channel, message.content.audience, message.content.language) == (
            "email", "authority", "en",
        )  # fmt: skip
        assert message.content.subject.startswith("[TEST] ")
        await sending.test_send(app, officer, alert_id, address="desk@example.org", language="fr")
        assert email.sent[-1].content.language == "fr"
        for address, channel, refusal, field in (
            ("  ", "email", "to: an address is required.", "to"),
            ("desk@example.org", "telegram", "channel: telegram is not configured here.", "channel"),
        ):
            with pytest.raises(ValidationError) as err:
                await sending.test_send(app, officer, alert_id, address=address, channel=channel)
            assert (err.value.message, err.value.details) == (refusal, {"field": field})
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
            tests = select(AuditEntry).where(AuditEntry.action == "alert.test").order_by(AuditEntry.id)
            entries = [
                (e.user_id, e.object_type, e.object_id, e.details) for e in await session.scalars(tests)
            ]
        assert entries == [
            (
                officer.id,
                "alert",
                str(alert_id),
                {"channel": "email", "audience": "authority", "language": lang},
            )
            for lang in ("en", "fr")
        ]


async def test_the_send_action_queues_or_schedules_audits_it_and_the_board_shows_it(db_url: str) -> None:
    from datetime import timedelta

    from alerts.actions import overview

    email = MemoryChannel(channel_name="email")
    async with open_app(Settings().replace("database", url=db_url), channels={"email": email}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            now_alert = await approved_alert(session, author=officer, reviewer=reviewer)
            later_alert = await approved_alert(session, author=officer, reviewer=reviewer)
            ids = (now_alert.id, later_alert.id)
        at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
        sent = await sending.send(app, officer, ids[0])
        assert (sent.alert_id, sent.status, sent.queued, sent.send_at) == (ids[0], "sending", 2, None)
        scheduled = await sending.send(app, officer, ids[1], at=at)
        assert (scheduled.status, scheduled.queued, scheduled.send_at) == ("scheduled", 0, at)
        async with app.sessions() as session:
            sends = select(AuditEntry).where(AuditEntry.action == "alert.send").order_by(AuditEntry.id)
            entries = [
                (e.user_id, e.object_type, e.object_id, e.details) for e in await session.scalars(sends)
            ]
            moved = select(AuditEntry).where(
                AuditEntry.action == "alert.status", AuditEntry.object_id == str(ids[0])
            )
            went = [(e.user_id, e.details) for e in await session.scalars(moved.order_by(AuditEntry.id))]
        assert went[-1] == (officer.id, {"from": "approved", "to": "sending"})  # who sent it, not the service
        assert entries == [
            (officer.id, "alert", str(ids[0]), {"queued": 2}),
            (officer.id, "alert", str(ids[1]), {"send_at": at.isoformat()}),
        ]
        board = await overview.board(app, officer, status="scheduled")
        assert [(a.id, a.status, a.author_id) for a in board.alerts] == [(ids[1], "scheduled", officer.id)]
        assert board.alerts[0].updated_at is not None and board.authors == {officer.id: "olga"}
        assert board.by_status == {"sending": 1, "scheduled": 1}


async def test_the_audience_of_a_case_whose_country_is_written_per_language(db_url: str) -> None:
    """A ``text`` variable may be one string or one per language: the audience still answers
    (such a country is not used for the subscribers' country topics, only a plain string is)."""
    from alerts.actions import overview
    from alerts.compose import drafts
    from tests.factories import RENDERER

    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await make_users(session)
            await add_contacts(session, 2)
            case = {**RENDERER.example("urgent-appeal"), "country": {"en": "Honduras", "es": "Honduras"}}
            alert = await drafts.create_alert(
                session,
                author=officer,
                family="urgent-appeal",
                case_data=case,
                audience=drafts.Audience(lists=("urgent-appeals",), channels=("email",)),
                is_public=False,
                validate_case=RENDERER.validate_case,
                now=utcnow(),
            )
        report = await overview.audience(app, officer, alert.id)
        assert (report.alert_id, report.channels) == (alert.id, ("email",))


async def test_the_send_action_adds_the_configured_webhook_to_an_alert_naming_it(db_url: str) -> None:
    settings = (
        Settings().replace("database", url=db_url).replace("webhook", url="https://hooks.example.org/in")
    )
    async with open_app(settings, channels={}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            alert = await approved_alert(
                session, author=officer, reviewer=reviewer, channels=("email", "webhook")
            )
        sent = await sending.send(app, officer, alert.id)
        async with app.sessions() as session:
            rows = (await session.execute(select(Delivery.channel, Delivery.address))).all()
    assert sent.queued == 3
    assert sorted((c, a) for c, a in rows if c == "webhook") == [("webhook", "https://hooks.example.org/in")]


async def test_the_send_action_refuses_an_alert_for_a_channel_this_service_has_not_configured(
    db_url: str,
) -> None:
    settings = Settings().replace("database", url=db_url)  # no Telegram token
    async with open_app(settings, channels={}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            alert = await approved_alert(
                session, author=officer, reviewer=reviewer, channels=("email", "telegram")
            )
        with pytest.raises(Conflict) as refused:
            await sending.send(app, officer, alert.id)
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert (refused.value.message, refused.value.details) == (
        f"alert {alert.id}: channel telegram is not configured on this service (see [telegram] in the "
        "config); remove it from the alert or configure it.",
        {"alert": alert.id, "channels": ["telegram"]},
    )


async def test_a_resent_delivery_gets_its_retries_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Failed once its attempts were used up, resent: the deliveries list says 0 attempts, and a
    transient failure on its next try defers it again instead of failing it at once."""
    from datetime import timedelta

    from alerts.core.types import Outcome
    from alerts.delivery import tracking
    from alerts.delivery.claim import claim_due
    from alerts.delivery.recorder import Result, record
    from alerts.delivery.retry import RetryPolicy
    from tests.factories import published_alert

    alert_id = await published_alert(sessions, 1)
    policy = RetryPolicy(max_attempts=2)
    busy = Outcome(kind=OutcomeKind.TRANSIENT, detail="451 4.3.0 try again later")

    async def try_once() -> str:
        now = utcnow()
        async with sessions.begin() as session:
            (item,) = await claim_due(
                session, channel="email", limit=5, worker="w", lease=timedelta(minutes=1), now=now
            )
            result = Result(item=item, outcome=busy, message_id="<m@x>", at=now)
            await record(session, [result], worker="w", policy=policy, alerts={}, now=now)
        async with sessions.begin() as session:  # due again at once
            await session.execute(update(Delivery).values(next_attempt_at=now))
            return str(await session.scalar(select(Delivery.state)))

    assert [await try_once(), await try_once()] == ["deferred", "failed"]
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert await controls.resend_failed(session, alert, user=None, now=utcnow()) == 1
        assert [r["attempts"] for r in await tracking.deliveries(session, alert_id)] == [0]
    assert await try_once() == "deferred"


async def test_a_test_send_in_a_language_the_templates_lack_names_the_field_and_their_languages(
    db_url: str,
) -> None:
    """Else it would render the English and say "sent": the refusal names the ``language``
    field and the languages the family has, and nothing is sent or audited."""
    email = MemoryChannel(channel_name="email")
    async with open_app(Settings().replace("database", url=db_url), channels={"email": email}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            alert_id = alert.id
        languages = sorted(app.renderer.family("urgent-appeal").languages)
        assert "de" not in languages and "en" in languages
        with pytest.raises(ValidationError) as err:
            await sending.test_send(app, officer, alert_id, address="desk@example.org", language="de")
        assert err.value.message == (
            f"language: the urgent-appeal templates have no 'de'; they are in {', '.join(languages)}."
        )
        assert err.value.details == {"field": "language", "languages": languages}
        assert email.sent == []
        async with app.sessions() as session:
            tests = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "alert.test")
            assert await session.scalar(tests) == 0


async def test_a_resume_committed_by_another_process_wakes_the_dispatcher(engine: AsyncEngine) -> None:
    """The CLI's ``alerts resume`` (another engine, no doorbell here) wakes it (NOTIFY on
    PostgreSQL, data_version on SQLite): the paused alert's deliveries go without waiting for
    the dispatcher's safety poll (a minute here)."""
    email = MemoryChannel(channel_name="email")
    dispatcher = Dispatcher(
        sessions=make_sessionmaker(engine),
        channels={"email": email},
        builder=MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test"),
        settings=DispatcherSettings(flush_interval=0.01, poll_seconds=60.0),
        wakeup=Wakeup(engine),
    )
    assert dispatcher.wakeup is not None
    other = create_engine(engine.url.render_as_string(hide_password=False))
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    try:
        async with make_sessionmaker(other).begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            alert = await approved_alert(session, author=officer, reviewer=reviewer)
            assert await publish(session, alert, now=utcnow()) == 2
            await controls.set_paused(session, alert, True, user=None, now=utcnow())
            alert_id = alert.id
        await asyncio.wait_for(dispatcher.wakeup.listening.wait(), 10)
        await asyncio.sleep(0.5)  # woken by the listening, it finds the alert paused
        assert email.sent == []
        before = dict(dispatcher.wakeups)
        async with make_sessionmaker(other).begin() as session:
            paused = await session.get(Alert, alert_id)
            assert paused is not None
            await controls.set_paused(session, paused, False, user=None, now=utcnow())
        # its claimers back off while idle, and may find the rows first: what woke them counts
        source = "notify" if engine.dialect.name == "postgresql" else "data_version"
        deadline = asyncio.get_running_loop().time() + 10
        while len(email.sent) < 2 or dispatcher.wakeups[source] <= before.get(source, 0):
            assert asyncio.get_running_loop().time() < deadline, (len(email.sent), dict(dispatcher.wakeups))
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await running
        await other.dispose()


async def test_the_unschedule_action_is_audited_as_the_officer_who_did_it(db_url: str) -> None:
    from datetime import timedelta

    async with open_app(
        Settings().replace("database", url=db_url), channels={"email": MemoryChannel(channel_name="email")}
    ) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 1)
            alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
        await sending.send(app, officer, alert_id, at=utcnow() + timedelta(days=1))
        done = await sending.unschedule(app, officer, alert_id)
        assert (done.alert_id, done.status) == (alert_id, "approved")
        async with app.sessions() as session:
            moved = select(AuditEntry).where(
                AuditEntry.action == "alert.status", AuditEntry.object_id == str(alert_id)
            )
            went = [(e.user_id, e.details) for e in await session.scalars(moved.order_by(AuditEntry.id))]
    assert went[-1] == (officer.id, {"from": "scheduled", "to": "approved"})  # not the service itself
