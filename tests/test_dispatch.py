"""The dispatcher against the in-memory channel: every outcome ends in the right state."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.states import SuppressionReason
from alerts.core.types import Outcome, OutcomeKind, RenderedMessage
from alerts.delivery.claim import claim_due
from alerts.delivery.controls import cancel_pending, resend_failed, set_paused
from alerts.delivery.dispatch import HELD_BACK, Dispatcher
from alerts.delivery.messages import MessageBuilder
from alerts.store.models import Alert, AlertVersion, Delivery, DeliveryEvent, Suppression
from channels.memory import MemoryChannel
from tests.factories import RENDERER, our_message_id, published_alert

FAST = DispatcherSettings(
    backoff_base=0.05,
    backoff_max=0.1,
    unknown_grace_seconds=0.1,
    flush_interval=0.01,
    lease_seconds=30,
    max_attempts=3,
)


def dispatcher(
    sessions: async_sessionmaker[AsyncSession],
    channels: dict[str, MemoryChannel],
    settings: DispatcherSettings = FAST,
    **kw: object,
) -> Dispatcher:
    builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
    return Dispatcher(sessions=sessions, channels=channels, builder=builder, settings=settings, **kw)  # type: ignore[arg-type]


async def states(sessions: async_sessionmaker[AsyncSession], alert_id: int) -> Counter[str]:
    async with sessions() as session:
        rows = (
            (await session.execute(select(Delivery.state).where(Delivery.alert_id == alert_id)))
            .scalars()
            .all()
        )
    return Counter(rows)


async def test_every_recipient_gets_exactly_one_message(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, 300)
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    assert await states(sessions, alert_id) == Counter({"sent": 300})
    addresses = [m.recipient.address for m in email.sent]
    assert len(addresses) == len(set(addresses)) == 300
    ids = {m.message_id for m in email.sent}
    assert len(ids) == 300 and all(i.startswith(f"<alert-{alert_id}.c") for i in ids)
    async with sessions() as session:
        events = Counter((await session.execute(select(DeliveryEvent.type))).scalars().all())
        alert = await session.get(Alert, alert_id)
    assert events == Counter({"queued": 300, "sending": 300, "sent": 300})
    # the shared body was rendered once: every message carries the very same content object
    assert len({id(m.content) for m in email.sent}) == 1
    for _ in range(50):  # housekeeping marks the alert sent shortly after
        async with sessions() as session:
            alert = await session.get(Alert, alert_id)
        if alert is not None and alert.status == "sent":
            break
        await asyncio.sleep(0.05)


async def test_transient_then_success_permanent_and_suppressed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 4)
    email = MemoryChannel(
        script={
            "person0@example.org": [Outcome(kind=OutcomeKind.TRANSIENT, detail="451 try later")],
            "person1@example.org": [Outcome(kind=OutcomeKind.PERMANENT, detail="554 rejected")],
            "person2@example.org": [
                Outcome(
                    kind=OutcomeKind.PERMANENT,
                    suppress=SuppressionReason.BOUNCED,
                    detail="550 5.1.1 no such user",
                )
            ],
            "person3@example.org": [Outcome(kind=OutcomeKind.TRANSIENT)] * 5,
        }
    )
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        by_addr = dict((await session.execute(select(Delivery.address, Delivery.state))).all())
        suppressed = (await session.execute(select(Suppression.address_key, Suppression.reason))).all()
        history = (
            (
                await session.execute(
                    select(DeliveryEvent.type)
                    .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
                    .where(Delivery.address == "person0@example.org")
                    .order_by(DeliveryEvent.id)
                )
            )
            .scalars()
            .all()
        )
    assert by_addr == {
        "person0@example.org": "sent",
        "person1@example.org": "failed",
        "person2@example.org": "suppressed",
        "person3@example.org": "failed",
    }
    assert suppressed == [("person2@example.org", "bounced")]
    assert history == ["queued", "sending", "deferred", "sending", "sent"]
    assert [m.recipient.address for m in email.sent] == ["person0@example.org"]


async def test_unknown_outcome_is_retried_once_after_grace_with_same_message_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 2)
    email = MemoryChannel(
        script={
            "person0@example.org": [Outcome(kind=OutcomeKind.UNKNOWN, detail="timeout after DATA")],
            "person1@example.org": [Outcome(kind=OutcomeKind.UNKNOWN), Outcome(kind=OutcomeKind.UNKNOWN)],
        }
    )
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        rows = dict((await session.execute(select(Delivery.address, Delivery.state))).all())
        unknown_events = (
            await session.execute(select(func.count()).where(DeliveryEvent.type == "unknown"))
        ).scalar_one()
    assert rows == {"person0@example.org": "sent", "person1@example.org": "failed"}
    assert unknown_events == 3
    assert [m.message_id for m in email.sent] == [await our_message_id(sessions, alert_id, 1)]


async def test_unexpected_exception_is_recorded_and_retried(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 1)
    email = MemoryChannel(script={"person0@example.org": [RuntimeError("adapter bug")]})
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        details = (
            (await session.execute(select(DeliveryEvent.detail).where(DeliveryEvent.type == "deferred")))
            .scalars()
            .all()
        )
    assert details == ["RuntimeError: adapter bug"]
    assert await states(sessions, alert_id) == Counter({"sent": 1})


async def test_expired_leases_are_reclaimed_and_sent(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, 10)
    now = utcnow()
    async with sessions.begin() as session:  # a worker that claimed and then died
        claimed = await claim_due(
            session, channel="email", limit=10, worker="dead", lease=timedelta(milliseconds=300), now=now
        )
    assert len(claimed) == 10
    email = MemoryChannel()
    short_lease = dataclasses.replace(FAST, lease_seconds=2)  # housekeeping looks every lease/4
    await dispatcher(sessions, {"email": email}, short_lease).run_until_done(alert_id, timeout=10)
    assert await states(sessions, alert_id) == Counter({"sent": 10})
    assert len(email.sent) == 10
    async with sessions() as session:
        released = (
            await session.execute(select(func.count()).where(DeliveryEvent.type == "released"))
        ).scalar_one()
    assert released == 10


async def test_pause_stops_claims_and_resume_finishes(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, 20)
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        await set_paused(session, alert, True, user=None, now=utcnow())
    email = MemoryChannel()
    stop = asyncio.Event()
    d = dispatcher(sessions, {"email": email})
    task = asyncio.create_task(d.run(stop))
    await asyncio.sleep(0.5)
    assert email.sent == []
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        await set_paused(session, alert, False, user=None, now=utcnow())
    for _ in range(200):
        if len(email.sent) == 20:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert len(email.sent) == 20


async def test_resend_failed_only_touches_failed(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, 3)
    email = MemoryChannel(script={"person1@example.org": [Outcome(kind=OutcomeKind.PERMANENT, detail="554")]})
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    assert await states(sessions, alert_id) == Counter({"sent": 2, "failed": 1})
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        await session.execute(update(Alert).where(Alert.id == alert_id).values(status="sent"))
        await session.refresh(alert)
        assert await resend_failed(session, alert, user=None, now=utcnow()) == 1
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    assert await states(sessions, alert_id) == Counter({"sent": 3})
    assert Counter(m.recipient.address for m in email.sent) == Counter(
        {"person0@example.org": 1, "person1@example.org": 1, "person2@example.org": 1}
    )


async def test_telegram_permanent_failure_falls_back_to_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 2, channels=("telegram",), fallback_email=True)
    telegram = MemoryChannel(
        script={
            "100000": [
                Outcome(
                    kind=OutcomeKind.PERMANENT,
                    suppress=SuppressionReason.BLOCKED,
                    detail="Forbidden: bot was blocked by the user",
                )
            ]
        }
    )
    email = MemoryChannel()
    await dispatcher(sessions, {"telegram": telegram, "email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        rows = sorted(
            (await session.execute(select(Delivery.channel, Delivery.address, Delivery.state))).all()
        )
    assert rows == [
        ("email", "person0@example.org", "sent"),
        ("telegram", "100000", "suppressed"),
        ("telegram", "100001", "sent"),
    ]
    assert [m.recipient.address for m in email.sent] == ["person0@example.org"]


async def test_shutdown_releases_what_was_claimed_but_not_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 40)
    slow = MemoryChannel(delay=0.2)
    stop = asyncio.Event()
    d = dispatcher(sessions, {"email": slow}, concurrency={"email": 2})
    task = asyncio.create_task(d.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await task
    counts = await states(sessions, alert_id)
    assert counts["sending"] == 0
    assert counts["sent"] == len(slow.sent) and counts["queued"] == 40 - len(slow.sent)


async def test_update_reaches_exactly_the_original_recipients_threaded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.accounts import users
    from alerts.delivery.publish import publish
    from tests.factories import add_contacts, approved_alert

    alert_id = await published_alert(sessions, 3, channels=("email", "telegram"))
    email, telegram = MemoryChannel(), MemoryChannel()
    await dispatcher(sessions, {"email": email, "telegram": telegram}).run_until_done(alert_id, timeout=10)
    async with sessions.begin() as session:
        await add_contacts(session, 2, start=50)  # joined the list after the original went out
        officer = await users.get_user(session, "olga")
        reviewer = await users.get_user(session, "rafael")
        update_alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            channels=("email", "telegram"),
            parent_id=alert_id,
        )
        assert await publish(session, update_alert, now=utcnow()) == 6
        update_id = update_alert.id
    email2, telegram2 = MemoryChannel(), MemoryChannel()
    await dispatcher(sessions, {"email": email2, "telegram": telegram2}).run_until_done(update_id, timeout=10)
    originals = {m.recipient.address: m for m in email.sent + telegram.sent}
    assert sorted(m.recipient.address for m in email2.sent + telegram2.sent) == sorted(originals)
    for m in email2.sent:
        assert m.thread_ids == (originals[m.recipient.address].message_id,)
    for m in telegram2.sent:  # replies to the original Telegram message in the same chat
        assert m.reply_to_provider_id is not None and m.reply_to_provider_id.startswith("mem-")


async def test_a_recipient_who_left_after_fan_out_gets_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Unsubscribed, suppressed, deleted, erased or closed since fan-out: settled at the claim."""
    from alerts.contacts.directory import delete_contact
    from alerts.contacts.suppressions import suppress
    from alerts.store.models import Contact

    alert_id = await published_alert(sessions, 5)
    async with sessions.begin() as session:
        await session.execute(
            update(Contact).where(Contact.email == "person0@example.org").values(status="unsubscribed")
        )
        await suppress(
            session, channel="email", address="PERSON1@example.org", reason=SuppressionReason.BOUNCED
        )
        await delete_contact(session, "person2@example.org")
        await session.execute(
            update(Contact).where(Contact.email == "person3@example.org").values(status="pending")
        )
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        rows = dict((await session.execute(select(Delivery.address, Delivery.state))).all())
        details = dict((await session.execute(select(Delivery.address, Delivery.last_error))).all())
    assert rows == {
        "person0@example.org": "suppressed",
        "person1@example.org": "suppressed",
        "person2@example.org": "cancelled",
        "person3@example.org": "cancelled",
        "person4@example.org": "sent",
    }
    assert details["person2@example.org"] == "contact deleted or erased"
    assert [m.recipient.address for m in email.sent] == ["person4@example.org"]


async def test_closed_alert_sends_nothing_more(sessions: async_sessionmaker[AsyncSession]) -> None:
    alert_id = await published_alert(sessions, 3)
    async with sessions.begin() as session:
        await session.execute(update(Alert).where(Alert.id == alert_id).values(status="closed"))
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    assert email.sent == []
    assert await states(sessions, alert_id) == Counter({"cancelled": 3})


async def test_provider_text_quoting_the_address_is_redacted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 1)
    email = MemoryChannel(
        script={
            "person0@example.org": [
                Outcome(
                    kind=OutcomeKind.PERMANENT,
                    detail="550 5.1.1 <Person0@Example.org>: Recipient address rejected",
                )
            ]
        }
    )
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        texts = (await session.execute(select(DeliveryEvent.detail))).scalars().all()
        error = (await session.execute(select(Delivery.last_error))).scalar_one()
    assert error == "550 5.1.1 <recipient>: Recipient address rejected"
    assert not any("person0" in t.lower() for t in texts)


async def test_outcomes_of_rows_taken_over_are_not_recorded(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A worker whose lease expired must not write events for a row another worker now holds."""
    from alerts.delivery.claim import reclaim_expired
    from alerts.delivery.recorder import Result, record
    from alerts.delivery.retry import RetryPolicy

    await published_alert(sessions, 1)
    now = utcnow()
    async with sessions.begin() as session:
        [mine] = await claim_due(
            session, channel="email", limit=1, worker="slow", lease=timedelta(seconds=1), now=now
        )
    later = now + timedelta(seconds=5)
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=later) == 1
        [theirs] = await claim_due(
            session, channel="email", limit=1, worker="fast", lease=timedelta(seconds=60), now=later
        )
    async with sessions.begin() as session:
        await record(
            session,
            [
                Result(
                    item=mine,
                    outcome=Outcome(kind=OutcomeKind.PERMANENT, detail="late"),
                    message_id="<x>",
                    at=later,
                )
            ],
            worker="slow",
            policy=RetryPolicy(),
            alerts={},
            now=later,
        )
    async with sessions() as session:
        types = (await session.execute(select(DeliveryEvent.type).order_by(DeliveryEvent.id))).scalars().all()
        state = (await session.execute(select(Delivery.state, Delivery.claimed_by))).one()
    assert types == ["queued", "sending", "released", "sending"]
    assert tuple(state) == ("sending", "fast") and theirs.id == mine.id


async def test_a_lease_that_expires_on_the_last_attempt_fails(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.delivery.claim import reclaim_expired

    alert_id = await published_alert(sessions, 1)
    now = utcnow()
    async with sessions.begin() as session:
        await session.execute(update(Delivery).values(attempts=2))
        await claim_due(session, channel="email", limit=1, worker="dead", lease=timedelta(seconds=1), now=now)
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=now + timedelta(seconds=5), max_attempts=3) == 1
    assert await states(sessions, alert_id) == Counter({"failed": 1})


async def test_fallback_never_gives_a_press_contact_a_second_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.store.models import Contact

    alert_id = await published_alert(sessions, 1, channels=("telegram",), fallback_email=True)
    async with sessions.begin() as session:  # the same contact also got the press release
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
        session.add(
            Delivery(
                alert_id=alert_id,
                contact_id=contact_id,
                channel="press",
                audience="press",
                language="en",
                address="person0@example.org",
                state="sent",
                attempts=1,
                unknown_outcomes=0,
                next_attempt_at=utcnow(),
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    telegram = MemoryChannel(
        script={"100000": [Outcome(kind=OutcomeKind.PERMANENT, detail="chat not found")]}
    )
    email = MemoryChannel()
    await dispatcher(sessions, {"telegram": telegram, "email": email}).run_until_done(alert_id, timeout=10)
    assert email.sent == []
    async with sessions() as session:
        channels = sorted((await session.execute(select(Delivery.channel))).scalars().all())
    assert channels == ["press", "telegram"]


async def test_every_event_and_the_row_carry_what_happened(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The batched writes (claim: INSERT … SELECT; recorder: one UPDATE/INSERT per batch) keep
    every field: states, attempts, times, provider answers, retry time."""
    alert_id = await published_alert(sessions, 2)
    email = MemoryChannel(
        script={
            "person0@example.org": [
                Outcome(kind=OutcomeKind.TRANSIENT, retry_after=timedelta(seconds=0.2), detail="451 busy")
            ]
        }
    )
    d = dispatcher(sessions, {"email": email})
    await d.run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        row = (
            await session.execute(select(Delivery).where(Delivery.address == "person0@example.org"))
        ).scalar_one()
        other = (
            await session.execute(select(Delivery).where(Delivery.address == "person1@example.org"))
        ).scalar_one()
        events = (
            (
                await session.execute(
                    select(DeliveryEvent)
                    .where(DeliveryEvent.delivery_id == row.id)
                    .order_by(DeliveryEvent.id)
                )
            )
            .scalars()
            .all()
        )
    trail = [(e.type, e.from_state, e.to_state, e.attempt) for e in events]
    assert trail == [
        ("queued", None, "queued", 0),
        ("sending", "queued", "sending", 1),
        ("deferred", "sending", "deferred", 1),
        ("sending", "deferred", "sending", 2),
        ("sent", "sending", "sent", 2),
    ]
    queued, sending, deferred, resent, sent = events
    assert sending.detail == resent.detail == f"claimed by {d.worker}" and sending.payload is None
    assert deferred.detail == "451 busy"
    assert deferred.payload == {"outcome": "transient", "provider_id": None, "retry_after": 0.2}
    # honoured the server's retry_after: not claimed again before it had passed
    assert resent.at - deferred.at >= timedelta(seconds=0.2)
    assert sent.payload == {"outcome": "sent", "provider_id": row.provider_id, "retry_after": None}
    assert row.provider_id is not None and row.provider_id.startswith("mem-")
    assert row.contact_id is not None
    assert row.message_id == await our_message_id(sessions, alert_id, row.contact_id)
    assert (row.state, row.attempts, row.unknown_outcomes) == ("sent", 2, 0)
    assert row.last_error is None and row.lease_until is None and row.claimed_by == d.worker
    assert row.updated_at == sent.at and row.updated_at.tzinfo is not None
    assert (other.state, other.attempts) == ("sent", 1)


async def test_the_dispatcher_counts_as_alive_while_it_sends_and_its_housekeeping_waits(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite a housekeeping round can wait seconds for the write lock behind a busy claimer
    # and recorder; /healthz must not call a dispatcher that is sending at full speed stalled.
    waiting = asyncio.Event()

    async def held_up(*args: object, **kwargs: object) -> int:
        waiting.set()
        await asyncio.sleep(3600)  # the write lock never comes, as far as this test goes
        return 0

    monkeypatch.setattr("alerts.delivery.dispatch.extend_leases", held_up)
    alert_id = await published_alert(sessions, 200)
    d = dispatcher(sessions, {"email": MemoryChannel(delay=0.01)}, dataclasses.replace(FAST, lease_seconds=1))
    stop = asyncio.Event()
    runner = asyncio.create_task(d.run(stop))
    try:
        await asyncio.wait_for(waiting.wait(), 5)
        held_at = d.alive_at
        while (await states(sessions, alert_id))["sent"] < 100:
            await asyncio.sleep(0.05)
        assert d.alive_at > held_at  # the flushes of outcomes kept marking progress
    finally:
        stop.set()
        await asyncio.wait_for(runner, 15)


async def test_a_press_release_carries_its_own_attachments_and_no_other_alerts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two press alerts, only the first with a file: each release carries exactly its own."""
    from alerts.delivery.publish import publish
    from alerts.store.models import AlertAttachment
    from tests.factories import add_contacts, approved_alert, make_users

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 1, kind="press")
        with_file = await approved_alert(session, author=officer, reviewer=reviewer, channels=("press",))
        without = await approved_alert(session, author=officer, reviewer=reviewer, channels=("press",))
        session.add(
            AlertAttachment(
                alert_id=with_file.id,
                filename="photo.png",
                content_type="image/png",
                data=png,
                created_at=utcnow(),
            )
        )
        for alert in (with_file, without):
            await publish(session, alert, now=utcnow())
        ids = (with_file.id, without.id)
    press = MemoryChannel()
    for alert_id in ids:
        await dispatcher(sessions, {"press": press}).run_until_done(alert_id, timeout=10)
    got = {
        int(m.message_id.split(".")[0].removeprefix("<alert-")): [(a.filename, a.data) for a in m.attachments]
        for m in press.sent
    }
    assert got == {ids[0]: [("photo.png", png)], ids[1]: []}


async def test_an_alert_is_marked_sent_when_done_with_the_time_and_a_closed_one_stays_closed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.delivery.publish import publish
    from tests.factories import add_contacts, approved_alert, make_users

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alerts = [await approved_alert(session, author=officer, reviewer=reviewer) for _ in range(2)]
        for alert in alerts:
            await publish(session, alert, now=utcnow())
        sent_id, closed_id = (a.id for a in alerts)
        await session.execute(update(Alert).where(Alert.id == closed_id).values(status="closed"))
    started = utcnow()
    for alert_id in (sent_id, closed_id):
        await dispatcher(sessions, {"email": MemoryChannel()}).run_until_done(alert_id, timeout=10)
    ended = utcnow()
    async with sessions() as session:
        sent = await session.get(Alert, sent_id)
        closed = await session.get(Alert, closed_id)
    assert sent is not None and closed is not None
    assert sent.status == "sent"
    assert sent.completed_at is not None and started <= sent.completed_at <= ended
    assert (closed.status, closed.completed_at) == ("closed", None)


async def test_shutdown_leaves_none_of_the_dispatchers_tasks_running(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Every lane's senders, the claimers and the recorder (mid-wait: a long flush interval) are
    finished when ``run`` returns."""
    alert_id = await published_alert(sessions, 2)
    before = asyncio.all_tasks()
    stop = asyncio.Event()
    d = dispatcher(
        sessions,
        {"email": MemoryChannel(), "telegram": MemoryChannel()},
        dataclasses.replace(FAST, flush_interval=1.0),
    )
    runner = asyncio.create_task(d.run(stop))
    while (await states(sessions, alert_id))["sent"] < 2:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(runner, 15)
    left = [t.get_name() for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []


async def test_shutdown_waits_for_the_message_in_flight(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 1)
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": MemoryChannel(delay=0.3)}).run(stop))
    while (await states(sessions, alert_id))["sending"] < 1:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the sender has it: it is being sent
    stop.set()
    await asyncio.wait_for(runner, 15)
    assert await states(sessions, alert_id) == Counter({"sent": 1})


async def test_reclaimed_leases_are_said_as_a_warning_with_their_number(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 3)
    async with sessions.begin() as session:  # a worker that claimed and then died
        await claim_due(
            session, channel="email", limit=3, worker="dead", lease=timedelta(milliseconds=300), now=utcnow()
        )
    short_lease = dataclasses.replace(FAST, lease_seconds=2)
    with caplog.at_level("WARNING", logger="alerts.delivery.dispatch"):
        await dispatcher(sessions, {"email": MemoryChannel()}, short_lease).run_until_done(
            alert_id, timeout=10
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["reclaimed 3 deliveries whose lease expired"]


async def test_an_adapter_exception_is_logged_by_its_type_without_its_text(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 1)
    email = MemoryChannel(script={"person0@example.org": [RuntimeError("person0@example.org refused")]})
    with caplog.at_level("INFO", logger="alerts.delivery.dispatch"):
        await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        delivery_id = (await session.execute(select(Delivery.id))).scalar_one()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"delivery {delivery_id}: email raised RuntimeError"]
    assert "person0@example.org" not in caplog.text


async def test_a_form_that_cannot_render_fails_its_delivery_with_an_error_naming_the_form(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 1)
    async with sessions.begin() as session:
        # a version whose case data its template cannot render (written by hand, say)
        await session.execute(update(AlertVersion).values(case_data={}))
    with caplog.at_level("ERROR", logger="alerts.delivery.dispatch"):
        await dispatcher(sessions, {"email": MemoryChannel()}).run_until_done(alert_id, timeout=10)
    assert await states(sessions, alert_id) == Counter({"failed": 1})
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith(f"alert {alert_id}: rendering email/authority/en failed: ")


async def test_a_telegram_update_replies_to_the_chats_own_telegram_message_not_the_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Each recipient got the original by email and by Telegram (one channel object numbers
    both, so their provider ids differ): the update in a chat replies to the message that chat
    got, never to the id of the email the same contact got."""
    from alerts.accounts import users
    from alerts.delivery.publish import publish
    from tests.factories import approved_alert

    alert_id = await published_alert(sessions, 3, channels=("email", "telegram"))
    both = MemoryChannel()
    await dispatcher(sessions, {"email": both, "telegram": both}).run_until_done(alert_id, timeout=10)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.channel, Delivery.contact_id, Delivery.provider_id).where(
                    Delivery.alert_id == alert_id
                )
            )
        ).all()
    chat_message = {contact: pid for channel, contact, pid in rows if channel == "telegram"}
    email_message = {contact: pid for channel, contact, pid in rows if channel == "email"}
    assert len(chat_message) == 3 and set(chat_message.values()).isdisjoint(email_message.values())
    async with sessions.begin() as session:
        update_alert = await approved_alert(
            session,
            author=await users.get_user(session, "olga"),
            reviewer=await users.get_user(session, "rafael"),
            family="update",
            channels=("telegram",),
            parent_id=alert_id,
        )
        assert await publish(session, update_alert, now=utcnow()) == 3
        update_id = update_alert.id
    telegram = MemoryChannel()
    await dispatcher(sessions, {"telegram": telegram}).run_until_done(update_id, timeout=10)
    assert {m.recipient.contact_id: m.reply_to_provider_id for m in telegram.sent} == chat_message


async def test_a_dispatcher_for_one_alert_sends_none_of_another_alerts_deliveries(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``send --wait`` sends its own alert from the CLI process: another alert published at the
    same time is left queued for the workers, its recipients get nothing from this process."""
    from alerts.accounts import users
    from alerts.delivery.publish import publish
    from tests.factories import approved_alert

    alert_id = await published_alert(sessions, 2)
    async with sessions.begin() as session:
        other = await approved_alert(
            session,
            author=await users.get_user(session, "olga"),
            reviewer=await users.get_user(session, "rafael"),
        )
        assert await publish(session, other, now=utcnow()) == 2
        other_id = other.id
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}, alert_id=alert_id).run_until_done(alert_id, timeout=10)
    assert {m.alert_id for m in email.sent} == {alert_id} and len(email.sent) == 2
    assert await states(sessions, other_id) == Counter({"queued": 2})


async def test_each_message_is_addressed_to_its_contacts_name(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The channel gets the contact's name with each message (the email's To display name, the
    greeting), read when the delivery is claimed."""
    alert_id = await published_alert(sessions, 2)
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=10)
    assert sorted((m.recipient.address, m.recipient.name) for m in email.sent) == [
        ("person0@example.org", "Person 0"),
        ("person1@example.org", "Person 1"),
    ]


@dataclasses.dataclass
class GatedChannel(MemoryChannel):
    """A provider that answers only once ``gate`` is open, and counts the sends it holds at once."""

    gate: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    holding: int = 0
    most: int = 0

    async def send(self, message: RenderedMessage) -> Outcome:
        self.holding += 1
        self.most = max(self.most, self.holding)
        try:
            await self.gate.wait()
            return await super().send(message)
        finally:
            self.holding -= 1


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait for ``condition`` (generously: the machine may be loaded); fail if it never holds."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.02)


async def test_each_channel_sends_at_most_its_concurrency_at_once_and_uses_all_of_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``[email] concurrency`` (clamped to at least one) and, for a channel without its own,
    ``[dispatcher] concurrency`` bound how many messages a channel is given at once."""
    alert_id = await published_alert(sessions, 6, channels=("email", "telegram"))
    email, telegram = GatedChannel(), GatedChannel()
    d = dispatcher(
        sessions,
        {"email": email, "telegram": telegram},
        dataclasses.replace(FAST, concurrency=3),
        concurrency={"email": 0},
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(d.run(stop))

    async def all_held() -> bool:
        return (email.holding, telegram.holding) == (1, 3)

    try:
        await until(all_held)
        await asyncio.sleep(0.3)  # more senders, had there been any, would have taken one by now
        email.gate.set()
        telegram.gate.set()
        await until(lambda: has_no_open(sessions, alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert (email.most, telegram.most) == (1, 3)
    assert len(email.sent) == len(telegram.sent) == 6


async def has_no_open(sessions: async_sessionmaker[AsyncSession], alert_id: int) -> bool:
    counts = await states(sessions, alert_id)
    return not (counts["queued"] or counts["sending"] or counts["deferred"])


async def test_a_slow_channel_holds_only_a_bounded_window_and_shutdown_gives_the_rest_back(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker claims 16 per sender (at least 64, at most ``batch_size``) and no more while its
    channel is stuck, so other workers can take the rest; on stop, the messages being sent are
    finished and recorded, and every claimed row not yet handed to the channel is queued again."""
    from alerts.delivery.publish import publish
    from tests.factories import add_contacts, approved_alert, make_users

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 100, telegram=True)
        await add_contacts(session, 100, kind="press", start=200)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, channels=("email", "telegram", "press")
        )
        await publish(session, alert, now=utcnow())
        alert_id = alert.id
    lanes = {"email": GatedChannel(), "telegram": GatedChannel(), "press": GatedChannel()}
    conc = {"email": 5, "telegram": 1, "press": 6}
    d = dispatcher(sessions, lanes, dataclasses.replace(FAST, batch_size=90), concurrency=conc)  # type: ignore[arg-type]
    stop = asyncio.Event()
    caplog.set_level("INFO", logger="alerts.delivery.dispatch")
    runner = asyncio.create_task(d.run(stop))

    async def claimed() -> Counter[str]:
        async with sessions() as session:
            rows = await session.execute(
                select(Delivery.channel, func.count())
                .where(Delivery.alert_id == alert_id, Delivery.state == "sending")
                .group_by(Delivery.channel)
            )
            return Counter({channel: n for channel, n in rows.all()})

    async def senders_busy() -> bool:
        return {name: ch.holding for name, ch in lanes.items()} == conc

    try:
        await until(senders_busy)
        await asyncio.sleep(0.5)  # a claimer that took more would have done so by now
        # email: 16 × 5; telegram: at least 64; press: 16 × 6 but at most batch_size
        assert await claimed() == Counter({"email": 80, "telegram": 64, "press": 90})
    finally:
        stop.set()

        async def given_back() -> bool:
            return d._stopping and all(lane.queue.empty() for lane in d.lanes.values())

        await until(given_back)
        for ch in lanes.values():
            ch.gate.set()
        await asyncio.wait_for(runner, 30)
    async with sessions() as session:
        rows = await session.execute(
            select(Delivery.channel, Delivery.state, func.count())
            .where(Delivery.alert_id == alert_id)
            .group_by(Delivery.channel, Delivery.state)
        )
        left = sorted((c, s, n) for c, s, n in rows.all())
        released = (
            await session.execute(select(func.count()).where(DeliveryEvent.type == "released"))
        ).scalar_one()
    assert left == [
        ("email", "queued", 95),
        ("email", "sent", 5),
        ("press", "queued", 94),
        ("press", "sent", 6),
        ("telegram", "queued", 99),
        ("telegram", "sent", 1),
    ]
    assert released == (80 - 5) + (64 - 1) + (90 - 6)
    assert f"released {released} claimed deliveries on shutdown" in caplog.messages
    assert {name: len(ch.sent) for name, ch in lanes.items()} == conc


async def test_a_worker_keeps_its_own_claims_however_long_they_wait_behind_a_slow_channel(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Rows waiting in the local queue longer than the lease are not taken back (and sent twice),
    neither by this worker's housekeeping nor by another worker's, which reclaims all the while."""
    from alerts.delivery.claim import reclaim_expired

    alert_id = await published_alert(sessions, 12)
    email = MemoryChannel(delay=0.5)  # the last waits about 6 s: half as long again as the lease
    d = dispatcher(
        sessions, {"email": email}, dataclasses.replace(FAST, lease_seconds=4), concurrency={"email": 1}
    )
    taken_by_the_other = 0

    async def another_worker() -> None:
        nonlocal taken_by_the_other
        while True:
            async with sessions.begin() as session:
                taken_by_the_other += await reclaim_expired(session, now=utcnow())
            await asyncio.sleep(0.1)

    other = asyncio.create_task(another_worker())
    try:
        await d.run_until_done(alert_id, timeout=60)
    finally:
        other.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await other
    assert taken_by_the_other == 0
    async with sessions() as session:
        types = Counter((await session.execute(select(DeliveryEvent.type))).scalars().all())
    assert types == Counter({"queued": 12, "sending": 12, "sent": 12})
    assert sorted(m.recipient.address for m in email.sent) == sorted(
        f"person{i}@example.org" for i in range(12)
    )


async def test_a_running_dispatcher_marks_a_finished_alert_sent_and_leaves_one_awaiting_a_retry_sending(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``alerts serve``: no ``send --wait`` to finish the alert; the dispatcher's own rounds do."""
    from alerts.accounts import users
    from alerts.delivery.publish import publish
    from tests.factories import approved_alert

    waiting_id = await published_alert(sessions, 2)
    email = MemoryChannel(
        script={"person0@example.org": [Outcome(kind=OutcomeKind.TRANSIENT, retry_after=timedelta(hours=1))]}
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}).run(stop))

    async def one_deferred() -> bool:
        return await states(sessions, waiting_id) == Counter({"deferred": 1, "sent": 1})

    async def status(alert_id: int) -> tuple[str, object]:
        async with sessions() as session:
            row = (
                await session.execute(select(Alert.status, Alert.completed_at).where(Alert.id == alert_id))
            ).one()
            return row.status, row.completed_at

    try:
        await until(one_deferred)
        async with sessions.begin() as session:  # published after the other's outcomes were recorded
            done = await approved_alert(
                session,
                author=await users.get_user(session, "olga"),
                reviewer=await users.get_user(session, "rafael"),
            )
            await publish(session, done, now=utcnow())
            done_id = done.id

        async def done_sent() -> bool:
            return (await status(done_id))[0] == "sent"

        await until(done_sent)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    done_status, completed_at = await status(done_id)
    assert completed_at is not None
    assert await status(waiting_id) == ("sending", None)


async def _refuse_sent_events(
    sessions: async_sessionmaker[AsyncSession], refuse: bool, event: str = "sent"
) -> None:
    """The database refuses (or accepts again) every write of an ``event`` (a disk full, say)."""
    async with sessions.begin() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if not refuse:
            await session.execute(
                text(
                    "DROP TRIGGER refuse_event ON delivery_events"
                    if postgres
                    else "DROP TRIGGER refuse_event"
                )
            )
        elif postgres:
            await session.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_event BEFORE INSERT ON delivery_events FOR EACH ROW "
                    f"WHEN (NEW.type = '{event}') EXECUTE FUNCTION refuse_event()"
                )
            )
        else:
            await session.execute(
                text(
                    f"CREATE TRIGGER refuse_event BEFORE INSERT ON delivery_events WHEN NEW.type = '{event}' "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )


async def test_outcomes_the_database_refused_are_recorded_once_it_accepts_them_and_not_sent_again(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 2)
    await _refuse_sent_events(sessions, True)
    email = MemoryChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}).run(stop))

    async def refused() -> bool:
        return any(r.getMessage() == "recording outcomes failed; will retry" for r in caplog.records)

    try:
        with caplog.at_level("ERROR", logger="alerts.delivery.dispatch"):
            await until(refused)
        assert len(email.sent) == 2
        assert await states(sessions, alert_id) == Counter({"sending": 2})
        await _refuse_sent_events(sessions, False)
        await until(lambda: has_no_open(sessions, alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    async with sessions() as session:
        types = Counter((await session.execute(select(DeliveryEvent.type))).scalars().all())
    assert await states(sessions, alert_id) == Counter({"sent": 2})
    assert types == Counter({"queued": 2, "sending": 2, "sent": 2})
    assert len(email.sent) == 2


async def test_the_outcomes_are_counted_for_metrics_and_only_those_not_sent_wake_the_claimers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """/metrics: what was claimed, sent, deferred, failed, per channel; a delivery that was not
    sent (a retry, a fallback to come) wakes the claimers at once rather than at their poll."""
    alert_id = await published_alert(sessions, 4)
    email = MemoryChannel(
        script={
            "person0@example.org": [Outcome(kind=OutcomeKind.TRANSIENT, detail="451")],
            "person1@example.org": [Outcome(kind=OutcomeKind.PERMANENT, detail="554")],
        }
    )
    d = dispatcher(sessions, {"email": email})
    await d.run_until_done(alert_id, timeout=30)
    figures = d.metrics.registry

    def value(name: str, **labels: str) -> float | None:
        return figures.get_sample_value(name, {"channel": "email", **labels})

    assert value("alerts_claimed_total") == 5
    assert value("alerts_send_latency_seconds_count") == 5
    assert value("alerts_claim_latency_seconds_count")
    assert [value("alerts_deliveries_total", state=s) for s in ("sent", "deferred", "failed")] == [3, 1, 1]
    assert d.wakeups["recorded"] >= 1


async def test_a_run_where_every_message_went_needs_no_extra_wake_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 2)
    calm = dispatcher(sessions, {"email": MemoryChannel()})
    await calm.run_until_done(alert_id, timeout=30)
    assert calm.wakeups["recorded"] == 0
    assert (
        calm.metrics.registry.get_sample_value(
            "alerts_deliveries_total", {"channel": "email", "state": "sent"}
        )
        == 2
    )


async def test_a_form_that_cannot_render_is_recorded_as_a_render_failure_without_a_message_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 1)
    async with sessions.begin() as session:
        await session.execute(update(AlertVersion).values(case_data={}))
    await dispatcher(sessions, {"email": MemoryChannel()}).run_until_done(alert_id, timeout=30)
    async with sessions() as session:
        row = (await session.execute(select(Delivery))).scalar_one()
        failed = (
            await session.execute(select(DeliveryEvent).where(DeliveryEvent.type == "failed"))
        ).scalar_one()
    assert row.last_error is not None and row.last_error.startswith("render failed: ")
    assert failed.detail == row.last_error and failed.payload is not None
    assert failed.payload["outcome"] == "permanent"
    assert row.message_id in (None, "")


async def test_only_a_dispatcher_of_every_alert_publishes_the_scheduled_ones_with_its_channels_and_webhook(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``send --wait`` (a dispatcher for one alert) leaves due scheduled alerts to the workers;
    a worker publishes them, on the channels it has (one asking for another is left approved),
    with the partners' webhook it was given, and sends them."""
    from alerts.delivery.publish import publish, schedule
    from tests.factories import add_contacts, approved_alert, make_users

    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2, telegram=True)  # the one asking for Telegram could reach them
        own = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, own, now=now)
        due = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email", "webhook"))
        elsewhere = await approved_alert(session, author=officer, reviewer=reviewer, channels=("telegram",))
        for alert in (due, elsewhere):
            await schedule(session, alert, at=now + timedelta(hours=1), now=now, user=officer)
        ids = own.id, due.id, elsewhere.id
        await session.execute(update(Alert).where(Alert.id.in_(ids[1:])).values(send_at=now))
    own_id, due_id, elsewhere_id = ids

    async def status() -> dict[int, str]:
        async with sessions() as session:
            return {i: s for i, s in (await session.execute(select(Alert.id, Alert.status))).all()}

    # its own alert takes a while: the housekeeping rounds meanwhile publish nothing
    one = dispatcher(
        sessions, {"email": MemoryChannel(delay=0.4), "webhook": MemoryChannel()}, alert_id=own_id
    )
    await one.run_until_done(own_id, timeout=30)
    assert await status() == {own_id: "sent", due_id: "scheduled", elsewhere_id: "scheduled"}
    assert await states(sessions, due_id) == Counter()

    email, webhook = MemoryChannel(), MemoryChannel()
    worker = dispatcher(
        sessions, {"email": email, "webhook": webhook}, webhook_url="https://partner.test/hook"
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))

    async def due_sent() -> bool:
        return (await status())[due_id] == "sent"

    try:
        await until(due_sent)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert (await status())[elsewhere_id] == "approved"
    assert await states(sessions, elsewhere_id) == Counter()
    assert sorted(m.recipient.address for m in email.sent) == ["person0@example.org", "person1@example.org"]
    assert [m.recipient.address for m in webhook.sent] == ["https://partner.test/hook"]
    assert {m.alert_id for m in email.sent + webhook.sent} == {due_id}
    assert worker.wakeups["scheduled"] >= 1


async def test_a_claim_the_database_refused_is_tried_again_and_sends_once_it_accepts(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 2)
    await _refuse_sent_events(sessions, True, event="sending")
    email = MemoryChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}).run(stop))

    async def refused() -> bool:
        return any(r.getMessage() == "claiming email deliveries failed; retrying" for r in caplog.records)

    try:
        with caplog.at_level("ERROR", logger="alerts.delivery.dispatch"):
            await until(refused)
        assert email.sent == []
        assert await states(sessions, alert_id) == Counter({"queued": 2})
        await _refuse_sent_events(sessions, False)
        await until(lambda: has_no_open(sessions, alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert sorted(m.recipient.address for m in email.sent) == ["person0@example.org", "person1@example.org"]


async def test_waiting_for_a_paused_alert_gives_up_after_its_timeout_saying_which_alert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``send --wait --timeout`` on a paused alert: nothing is sent, the wait ends (not before
    the timeout) with an error naming the alert, and the deliveries stay queued for the resume."""
    alert_id = await published_alert(sessions, 2)
    async with sessions.begin() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        await set_paused(session, alert, True, user=None, now=utcnow())
    email = MemoryChannel()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"^alert {alert_id}: deliveries still open after 1.5 s$"):
        await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=1.5)
    assert time.monotonic() - started >= 1.5
    assert email.sent == []
    assert await states(sessions, alert_id) == Counter({"queued": 2})
    async with sessions() as session:
        types = Counter((await session.execute(select(DeliveryEvent.type))).scalars().all())
    assert types == Counter({"queued": 2})


async def test_an_update_of_an_update_replies_in_each_chat_to_the_original_alerts_message(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A thread in Telegram hangs off the original alert's message in that chat, not off the
    previous update's; an update by email carries no Telegram reply."""
    from alerts.accounts import users
    from alerts.delivery.publish import publish
    from tests.factories import approved_alert

    original_id = await published_alert(sessions, 2, channels=("email", "telegram"))
    first = MemoryChannel()
    await dispatcher(sessions, {"email": first, "telegram": first}).run_until_done(original_id, timeout=30)
    parent_id = original_id
    for _ in range(2):
        async with sessions.begin() as session:
            update_alert = await approved_alert(
                session,
                author=await users.get_user(session, "olga"),
                reviewer=await users.get_user(session, "rafael"),
                family="update",
                channels=("email", "telegram"),
                parent_id=parent_id,
            )
            assert await publish(session, update_alert, now=utcnow()) == 4
            parent_id = update_alert.id
        # one channel object for all: every message, of every round, has a provider id of its own
        await dispatcher(sessions, {"email": first, "telegram": first}).run_until_done(parent_id, timeout=30)
    async with sessions() as session:
        rows = await session.execute(
            select(Delivery.contact_id, Delivery.provider_id).where(
                Delivery.alert_id == original_id, Delivery.channel == "telegram"
            )
        )
        original_chat_message = {contact: pid for contact, pid in rows.all()}
    assert len(original_chat_message) == 2 and None not in original_chat_message.values()
    last = [m for m in first.sent if m.alert_id == parent_id]
    telegram = [m for m in last if "@" not in m.recipient.address]
    email = [m for m in last if "@" in m.recipient.address]
    assert len(telegram) == len(email) == 2
    assert {m.recipient.contact_id: m.reply_to_provider_id for m in telegram} == original_chat_message
    assert [m.reply_to_provider_id for m in email] == [None, None]


async def test_a_dead_workers_delivery_on_its_last_attempt_is_failed_by_the_reclaim_not_sent_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``[dispatcher] max_attempts`` bounds the attempts a crashed worker used up too: a message
    that may have gone out that often is not sent once more."""
    alert_id = await published_alert(sessions, 2)
    async with sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.address == "person0@example.org").values(attempts=2)
        )
        await claim_due(
            session, channel="email", limit=2, worker="dead", lease=timedelta(milliseconds=300), now=utcnow()
        )
    email = MemoryChannel()
    short_lease = dataclasses.replace(FAST, lease_seconds=2, max_attempts=3)
    await dispatcher(sessions, {"email": email}, short_lease).run_until_done(alert_id, timeout=30)
    async with sessions() as session:
        rows = {a: s for a, s in (await session.execute(select(Delivery.address, Delivery.state))).all()}
    assert rows == {"person0@example.org": "failed", "person1@example.org": "sent"}
    assert [m.recipient.address for m in email.sent] == ["person1@example.org"]


async def test_an_outcome_other_than_sent_is_said_at_info_with_its_delivery_and_a_sent_one_is_not(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 2)
    email = MemoryChannel(script={"person0@example.org": [Outcome(kind=OutcomeKind.PERMANENT, detail="554")]})
    with caplog.at_level("INFO", logger="alerts.delivery.dispatch"):
        await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=30)
    async with sessions() as session:
        failed_id = (
            await session.execute(select(Delivery.id).where(Delivery.address == "person0@example.org"))
        ).scalar_one()
    said = [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "INFO" and r.name == "alerts.delivery.dispatch"
    ]
    assert said == [f"delivery {failed_id}: email permanent"]


async def test_waiting_for_an_alert_whose_deliveries_are_all_final_already_marks_it_sent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A worker sent everything and stopped before marking the alert sent: ``send --wait`` then
    finds nothing to send and marks it sent itself, sending nothing again."""
    alert_id = await published_alert(sessions, 2)
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="sent"))
    email = MemoryChannel()
    await dispatcher(sessions, {"email": email}).run_until_done(alert_id, timeout=30)
    async with sessions() as session:
        row = (
            await session.execute(select(Alert.status, Alert.completed_at).where(Alert.id == alert_id))
        ).one()
    assert row.status == "sent" and row.completed_at is not None
    assert email.sent == []


async def test_a_scheduled_alert_the_database_refused_to_publish_is_published_at_a_later_round(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """A failed housekeeping round (the database refused the fan-out) changes nothing and stops
    nothing: the alert stays scheduled, and the next rounds publish and send it."""
    from alerts.delivery.publish import schedule
    from tests.factories import add_contacts, approved_alert, make_users

    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await schedule(session, alert, at=now + timedelta(hours=1), now=now, user=officer)
        alert_id = alert.id
        await session.execute(update(Alert).where(Alert.id == alert_id).values(send_at=now))
    await _refuse_sent_events(sessions, True, event="queued")
    email = MemoryChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}).run(stop))

    async def refused() -> bool:
        return "dispatcher housekeeping failed; continuing" in caplog.messages

    async def status() -> str:
        async with sessions() as session:
            return (await session.execute(select(Alert.status).where(Alert.id == alert_id))).scalar_one()

    async def sent() -> bool:
        return await status() == "sent"

    try:
        with caplog.at_level("ERROR", logger="alerts.delivery.dispatch"):
            await until(refused)
        assert await status() == "scheduled"
        assert await states(sessions, alert_id) == Counter()
        await _refuse_sent_events(sessions, False)
        await until(sent)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert sorted(m.recipient.address for m in email.sent) == ["person0@example.org", "person1@example.org"]


async def test_pausing_a_running_alert_gives_back_what_a_worker_holds_and_resuming_sends_the_rest_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A pause stops the claiming, and what a worker already holds of the alert goes back to the
    outbox: only the message being sent at the pause still goes (a slow channel would otherwise
    send a whole claim window after the officer pressed pause); after the resume each goes once."""
    alert_id = await published_alert(sessions, 100)
    email = GatedChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}, concurrency={"email": 1}).run(stop))

    async def pause(paused: bool) -> None:
        async with sessions.begin() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            await set_paused(session, alert, paused, user=None, now=utcnow())

    async def given_back() -> bool:
        return await states(sessions, alert_id) == Counter({"sending": 1, "queued": 99})

    async def one_sent() -> bool:
        return (await states(sessions, alert_id))["sent"] == 1

    try:
        await until(lambda: holds(sessions, email, alert_id, 64))
        await pause(True)
        await until(given_back)
        email.gate.set()
        await until(one_sent)
        await asyncio.sleep(0.5)  # a send or a claim of the paused alert's rows would have happened by now
        assert await states(sessions, alert_id) == Counter({"sent": 1, "queued": 99})
        released = await event_details(sessions, alert_id, "released")
        assert len(released) == 63
        assert all(d.endswith(HELD_BACK) for d in released)
        await pause(False)
        await until(lambda: has_no_open(sessions, alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert await states(sessions, alert_id) == Counter({"sent": 100})
    assert sorted(m.recipient.address for m in email.sent) == sorted(
        f"person{i}@example.org" for i in range(100)
    )


async def test_closing_a_case_while_a_worker_holds_its_deliveries_sends_none_of_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What a worker holds of an alert closed since the claim goes back and is cancelled
    ("alert closed"), never sent; only the message being sent at the close still goes."""
    alert_id = await published_alert(sessions, 100)
    email = GatedChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}, concurrency={"email": 1}).run(stop))

    async def only_the_one_in_hand_open() -> bool:
        counts = await states(sessions, alert_id)
        return counts["sending"] == 1 and not (counts["queued"] or counts["deferred"])

    try:
        await until(lambda: holds(sessions, email, alert_id, 64))
        async with sessions.begin() as session:  # what closing the case does to the outbox
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            withdrawn = await cancel_pending(session, alert, now=utcnow())
            alert.status = "closed"
        assert withdrawn == 36
        await until(only_the_one_in_hand_open)
        email.gate.set()
        await until(lambda: has_no_open(sessions, alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert await states(sessions, alert_id) == Counter({"sent": 1, "cancelled": 99})
    assert len(email.sent) == 1
    assert Counter(await event_details(sessions, alert_id, "cancelled"))["alert closed"] == 99


async def event_details(sessions: async_sessionmaker[AsyncSession], alert_id: int, type_: str) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(DeliveryEvent.detail).where(
                DeliveryEvent.alert_id == alert_id, DeliveryEvent.type == type_
            )
        )
        return [d or "" for d in rows.all()]


async def test_withdrawing_consent_while_a_worker_holds_public_deliveries_sends_them_to_no_one_public(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What a worker holds for the public of an alert whose consent was withdrawn since the
    claim goes back and is cancelled ("consent withdrawn"); the authorities' copies still go.
    At most the one message in the channel's hands at the withdrawal reaches the public."""
    from tests.delivery_cases import public_case, set_consent

    case = await public_case(sessions, authorities=40, public=40)
    email = GatedChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}, concurrency={"email": 1}).run(stop))

    async def public_states() -> Counter[str]:
        async with sessions() as session:
            rows = await session.scalars(
                select(Delivery.state).where(
                    Delivery.alert_id == case.alert_id, Delivery.audience == "public"
                )
            )
            return Counter(rows.all())

    async def none_public_held_but_the_one_in_hand() -> bool:
        return (await public_states())["sending"] <= 1  # the rest back in the outbox, or cancelled

    try:
        await until(lambda: holds(sessions, email, case.alert_id, 64))
        await set_consent(sessions, case.alert_id, "restricted")
        await until(none_public_held_but_the_one_in_hand)
        email.gate.set()
        await until(lambda: has_no_open(sessions, case.alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    public_addresses = {f"person{i}@example.org" for i in range(100, 140)}
    sent = [m.recipient.address for m in email.sent]
    assert len([a for a in sent if a not in public_addresses]) == 40  # every authority
    assert len([a for a in sent if a in public_addresses]) <= 1
    assert (await public_states())["cancelled"] >= 39
    assert set(await event_details(sessions, case.alert_id, "cancelled")) == {"consent withdrawn"}


async def test_withdrawing_consent_after_a_sender_took_one_of_two_public_deliveries_cancels_the_other(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A worker holds two public deliveries and its one sender is sending the first when consent
    is withdrawn: the second, still in the queue, goes back and is cancelled, never sent."""
    from tests.delivery_cases import public_case, set_consent

    case = await public_case(sessions, authorities=0, public=2)
    email = GatedChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}, concurrency={"email": 1}).run(stop))

    async def only_the_one_in_hand_open() -> bool:
        return await states_are(sessions, case.alert_id, sending=1, cancelled=1)

    try:
        await until(lambda: holds(sessions, email, case.alert_id, 2))
        await set_consent(sessions, case.alert_id, "restricted")
        await until(only_the_one_in_hand_open)
        email.gate.set()
        await until(lambda: has_no_open(sessions, case.alert_id))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert await states(sessions, case.alert_id) == Counter({"sent": 1, "cancelled": 1})
    assert len(email.sent) == 1
    assert await event_details(sessions, case.alert_id, "cancelled") == ["consent withdrawn"]


async def test_a_give_back_the_database_refused_is_tried_again_not_left_in_sending(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """The deliveries taken out of the local queue at a pause stay this worker's to release until
    the database takes them (its leases on them are extended while it lives)."""
    alert_id = await published_alert(sessions, 100)
    email = GatedChannel()
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher(sessions, {"email": email}, concurrency={"email": 1}).run(stop))

    async def refused_once() -> bool:
        return "dispatcher housekeeping failed" in caplog.text

    async def given_back() -> bool:
        return await states(sessions, alert_id) == Counter({"sending": 1, "queued": 99})

    try:
        await until(lambda: holds(sessions, email, alert_id, 64))
        await _refuse_sent_events(sessions, True, event="released")
        async with sessions.begin() as session:
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            await set_paused(session, alert, True, user=None, now=utcnow())
        await until(refused_once)
        assert (await states(sessions, alert_id))["sending"] == 64
        await _refuse_sent_events(sessions, False)
        await until(given_back)
        email.gate.set()
        await until(lambda: states_are(sessions, alert_id, sent=1, queued=99))
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert len(await event_details(sessions, alert_id, "released")) == 63


async def states_are(sessions: async_sessionmaker[AsyncSession], alert_id: int, **counts: int) -> bool:
    return await states(sessions, alert_id) == Counter(counts)


async def holds(
    sessions: async_sessionmaker[AsyncSession], email: GatedChannel, alert_id: int, n: int
) -> bool:
    """One message in the channel's hands and ``n`` of the alert's deliveries claimed."""
    return email.holding == 1 and (await states(sessions, alert_id))["sending"] == n
