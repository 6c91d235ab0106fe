"""The recorder's batch statements (behaviour end to end is in test_dispatch.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.claim import claim_due
from alerts.delivery.recorder import Result, moves, record, redact
from alerts.delivery.retry import RetryPolicy
from alerts.store.db import rowset_json
from alerts.store.models import Contact, Delivery, DeliveryEvent
from tests.factories import published_alert

POLICY = RetryPolicy.from_settings(DispatcherSettings())


async def test_a_batch_is_applied_row_by_primary_key_on_sqlite(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """With 'sending' as a constant filter, SQLite drove this UPDATE from the state index and
    scanned the whole batch for every delivery in 'sending': ~100 times slower than looking
    rows up by id."""
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite query plan")
    outcome = {
        "id": 1,
        "holder": "w",
        "from_state": "sending",
        "state": "sent",
        "next": None,
        "provider": None,
        "message_id": "<m@x>",
        "unknown": 0,
        "error": None,
        "at": utcnow(),
    }
    async with sessions() as session:
        compiled = moves(engine.dialect.name).compile(dialect=engine.dialect)
        values = {**compiled.params, "r_rows": rowset_json(engine.dialect, [outcome] * 3)}
        params = tuple(values[name] for name in compiled.positiontup or ())
        connection = await session.connection()
        plan = [
            row[-1]
            for row in (
                await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params)
            ).all()
        ]
    assert any("deliveries USING INTEGER PRIMARY KEY" in step for step in plan), plan
    assert not any("USING INDEX ix_deliveries_due" in step for step in plan), plan


def test_redact_removes_the_address_whatever_its_case() -> None:
    assert redact("550 <Jane@Example.org>: unknown", "jane@example.org") == "550 <recipient>: unknown"
    assert redact("550 user JANE@example.org unknown", "jane@example.org") == "550 user <recipient> unknown"
    assert redact("250 OK", "jane@example.org") == "250 OK"


async def _claimed_and_sent(sessions: async_sessionmaker[AsyncSession], n: int) -> list[Result]:
    alert_id = await published_alert(sessions, n)
    now = utcnow()
    async with sessions.begin() as session:
        items = await claim_due(
            session,
            channel="email",
            limit=n,
            worker="w1",
            lease=timedelta(seconds=60),
            now=now,
            alert_id=alert_id,
        )
    return [
        Result(
            item=i,
            outcome=Outcome.sent(provider_id=f"p{i.id}", detail="250 OK"),
            message_id=f"<m{i.id}>",
            at=now,
        )
        for i in items
    ]


async def _events(sessions: async_sessionmaker[AsyncSession], type: str) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).where(DeliveryEvent.type == type))).scalar_one()


async def test_a_batch_recorded_again_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    """A batch kept for a retry although its COMMIT went through (the answer was lost)."""
    results = await _claimed_and_sent(sessions, 3)
    for _ in range(2):
        async with sessions.begin() as session:
            await record(session, results, worker="w1", policy=POLICY, alerts={}, now=utcnow())
    assert await _events(sessions, "sent") == 3
    assert "taken over" not in caplog.text


async def test_an_outcome_for_a_row_another_worker_took_over_is_not_recorded(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    results = await _claimed_and_sent(sessions, 2)
    taken = results[0].item.id
    async with sessions.begin() as session:  # our lease expired; w2 reclaimed and holds it now
        await session.execute(update(Delivery).where(Delivery.id == taken).values(claimed_by="w2"))
    async with sessions.begin() as session:
        await record(session, results, worker="w1", policy=POLICY, alerts={}, now=utcnow())
    async with sessions() as session:
        states = dict((await session.execute(select(Delivery.id, Delivery.state))).all())
    assert states == {taken: "sending", results[1].item.id: "sent"}
    assert await _events(sessions, "sent") == 1
    assert f"delivery {taken} was taken over" in caplog.text


async def test_a_bounced_mixed_case_address_gets_no_later_alert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Jane@X.org bounced: the suppression is keyed lower-case, so the next fan-out leaves her out."""
    from alerts.core.states import SuppressionReason
    from alerts.delivery.publish import publish
    from alerts.store.models import Contact, Suppression
    from tests.delivery_cases import set_email, staff
    from tests.factories import approved_alert

    alert_id = await published_alert(sessions, 2)
    async with sessions() as session:
        jane = (await session.execute(select(Contact.id).order_by(Contact.id))).scalars().first()
    assert jane is not None
    await set_email(sessions, jane, "Jane@X.org")
    async with sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.contact_id == jane).values(address="Jane@X.org")
        )
        items = await claim_due(
            session, channel="email", limit=5, worker="w1", lease=timedelta(seconds=60), now=utcnow()
        )
    bounce = Outcome(
        kind=OutcomeKind.PERMANENT, suppress=SuppressionReason.BOUNCED, detail="550 no such user"
    )
    results = [
        Result(
            item=i, outcome=bounce if i.contact_id == jane else Outcome.sent(), message_id="<m>", at=utcnow()
        )
        for i in items
    ]
    async with sessions.begin() as session:
        await record(session, results, worker="w1", policy=POLICY, alerts={}, now=utcnow())
    async with sessions.begin() as session:
        keys = (await session.execute(select(Suppression.address_key))).scalars().all()
        officer, reviewer = await staff(session)
        again = await approved_alert(session, author=officer, reviewer=reviewer)
        assert await publish(session, again, now=utcnow()) == 1
        reached = (
            await session.execute(select(Delivery.contact_id).where(Delivery.alert_id == again.id))
        ).scalars()
        assert jane not in set(reached)
    assert keys == ["jane@x.org"] and alert_id


async def test_the_email_fallback_of_a_failed_telegram_delivery_respects_suppressions(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The contact's email bounced before: the bot being blocked must not bring it back."""
    from alerts.contacts.suppressions import suppress
    from alerts.core.states import SuppressionReason
    from alerts.delivery.messages import AlertInfo
    from alerts.delivery.publish import load_alert_info
    from tests.delivery_cases import set_email

    alert_id = await published_alert(sessions, 2, channels=("telegram",), fallback_email=True)
    async with sessions() as session:
        contacts = (await session.execute(select(Delivery.contact_id).order_by(Delivery.id))).scalars().all()
    await set_email(sessions, contacts[0], "Jane@X.org")
    async with sessions.begin() as session:
        await suppress(session, channel="email", address="jane@x.org", reason=SuppressionReason.BOUNCED)
        items = await claim_due(
            session, channel="telegram", limit=5, worker="w1", lease=timedelta(seconds=60), now=utcnow()
        )
        info: AlertInfo = await load_alert_info(session, alert_id)
    blocked = Outcome(kind=OutcomeKind.PERMANENT, suppress=SuppressionReason.BLOCKED, detail="Forbidden")
    results = [Result(item=i, outcome=blocked, message_id="", at=utcnow()) for i in items]
    async with sessions.begin() as session:
        await record(session, results, worker="w1", policy=POLICY, alerts={alert_id: info}, now=utcnow())
    async with sessions() as session:
        emails = (
            (await session.execute(select(Delivery.contact_id).where(Delivery.channel == "email")))
            .scalars()
            .all()
        )
    assert emails == [contacts[1]]  # the other contact's fallback, not the bounced one's


async def _second_alert(sessions: async_sessionmaker[AsyncSession], **kw: object) -> int:
    """Another alert to the same contacts (published_alert made them and the staff)."""
    from alerts.delivery.publish import publish
    from tests.delivery_cases import staff
    from tests.factories import approved_alert

    async with sessions.begin() as session:
        officer, reviewer = await staff(session)
        alert = await approved_alert(session, author=officer, reviewer=reviewer, **kw)  # type: ignore[arg-type]
        await publish(session, alert, now=utcnow())
        return alert.id


async def _record_telegram(
    sessions: async_sessionmaker[AsyncSession],
    alert_id: int,
    outcome: Outcome,
    *,
    now: datetime,
    close_first: bool = False,
) -> list[int]:
    """Claim the alert's telegram deliveries and record one outcome for each (optionally after
    the alert was closed meanwhile); their ids."""
    from alerts.delivery.publish import load_alert_info
    from alerts.store.models import Alert

    async with sessions.begin() as session:
        items = await claim_due(
            session,
            channel="telegram",
            limit=5,
            worker="w1",
            lease=timedelta(seconds=60),
            now=utcnow(),
            alert_id=alert_id,
        )
        info = await load_alert_info(session, alert_id)
    if close_first:
        async with sessions.begin() as session:
            await session.execute(update(Alert).where(Alert.id == alert_id).values(status="closed"))
    results = [Result(item=i, outcome=outcome, message_id="", at=utcnow()) for i in items]
    async with sessions.begin() as session:
        await record(session, results, worker="w1", policy=POLICY, alerts={alert_id: info}, now=now)
    return [i.id for i in items]


FAILED_CHAT = Outcome(kind=OutcomeKind.PERMANENT, detail="chat not found")


async def test_the_email_fallback_is_queued_at_the_recorders_time_despite_another_alerts_email(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The contact was emailed another alert: that copy does not count against this one."""
    first = await published_alert(sessions, 1, channels=("telegram", "email"))
    second = await _second_alert(sessions, channels=("telegram",), fallback_email=True)
    now = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    [telegram_id] = await _record_telegram(sessions, second, FAILED_CHAT, now=now)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.state, Delivery.created_at, Delivery.updated_at).where(
                    Delivery.alert_id == second, Delivery.channel == "email"
                )
            )
        ).all()
        [(fallback_id, state, created, updated)] = rows
        detail = (
            await session.execute(
                select(DeliveryEvent.detail).where(
                    DeliveryEvent.delivery_id == fallback_id, DeliveryEvent.type == "queued"
                )
            )
        ).scalar_one()
    assert first != second and state == "queued"
    assert created == updated == now
    assert detail == f"fallback for telegram delivery {telegram_id}"


async def test_no_email_fallback_for_an_alert_closed_while_its_telegram_was_in_flight(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 1, channels=("telegram",), fallback_email=True)
    assert len(await _record_telegram(sessions, alert_id, FAILED_CHAT, now=utcnow(), close_first=True)) == 1
    async with sessions() as session:
        channels = (await session.execute(select(Delivery.channel))).scalars().all()
    assert channels == ["telegram"]


async def test_a_migrated_chat_moves_the_contacts_waiting_telegram_deliveries_too(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Telegram upgraded the group: later alerts queued for the old chat go to the new one."""
    first = await published_alert(sessions, 1, channels=("telegram",))
    second = await _second_alert(sessions, channels=("telegram",))
    moved = Outcome(kind=OutcomeKind.TRANSIENT, detail="migrated", new_address="-1009999")
    await _record_telegram(sessions, first, moved, now=utcnow())
    async with sessions() as session:
        rows = dict((await session.execute(select(Delivery.alert_id, Delivery.address))).all())
        chat = (await session.execute(select(Contact.telegram))).scalar_one()
    assert rows == {first: "-1009999", second: "-1009999"} and chat == "-1009999"


async def test_a_migrated_chat_dates_the_contacts_change_at_the_recorders_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The contact's export says when its Telegram chat changed: the recorder's clock (the
    time it was told, as every other row of the batch), not the database driver's wall clock."""
    from alerts.contacts.erasure import export_contact

    alert_id = await published_alert(sessions, 1, channels=("telegram",))
    recorded_at = utcnow() + timedelta(hours=3)
    moved = Outcome(kind=OutcomeKind.TRANSIENT, detail="migrated", new_address="-1009999")
    await _record_telegram(sessions, alert_id, moved, now=recorded_at)
    async with sessions() as session:
        contact_id = (await session.execute(select(Contact.id))).scalar_one()
        contact = (await export_contact(session, contact_id))["contact"]
    assert (contact["telegram"], contact["updated_at"]) == ("-1009999", recorded_at.isoformat())


async def test_a_delivery_that_fails_after_its_last_retry_shows_as_failed_on_the_chart(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Retries used up: the delivery fails, and its event says ``failed``, which the alert's
    chart of deliveries over time counts (a ``deferred`` one it would not)."""
    from alerts.delivery.over_time import over_time

    results = await _claimed_and_sent(sessions, 1)
    last_try = RetryPolicy(max_attempts=1)
    transient = Outcome(kind=OutcomeKind.TRANSIENT, detail="451 4.3.0 try again later")
    async with sessions.begin() as session:
        await record(
            session,
            [Result(item=r.item, outcome=transient, message_id=r.message_id, at=r.at) for r in results],
            worker="w1",
            policy=last_try,
            alerts={},
            now=utcnow(),
        )
    async with sessions() as session:
        assert await session.scalar(select(Delivery.state)) == "failed"
        chart = await over_time(session, results[0].item.alert_id, buckets=1)
    assert chart.channels == {"email": {"sent": [0], "failed": [1], "bounced": [0]}}


async def test_a_bounce_keeps_a_bounded_redacted_detail_on_the_delivery_and_in_the_suppression(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The provider's text, the address taken out: at most 2,000 characters as the delivery's
    last error (the deliveries list), at most 500 in the suppression (the contact's export)."""
    from alerts.contacts.erasure import export_contact
    from alerts.core.states import SuppressionReason
    from alerts.delivery import tracking

    results = await _claimed_and_sent(sessions, 1)
    item = results[0].item
    said = f"550 5.1.1 <{item.address}>: no such user " + "x" * 3000
    bounced = Outcome(kind=OutcomeKind.PERMANENT, suppress=SuppressionReason.BOUNCED, detail=said)
    async with sessions.begin() as session:
        await record(
            session,
            [Result(item=item, outcome=bounced, message_id=results[0].message_id, at=results[0].at)],
            worker="w1",
            policy=POLICY,
            alerts={},
            now=utcnow(),
        )
    redacted = redact(said, item.address)
    assert redacted.startswith("550 5.1.1 <recipient>: no such user x")
    async with sessions() as session:
        (row,) = await tracking.deliveries(session, item.alert_id)
        exported = await export_contact(session, item.contact_id or 0)
    assert (row["state"], row["last_error"]) == ("suppressed", redacted[:2000])
    assert [(s["reason"], s["detail"]) for s in exported["suppressions"]] == [("bounced", redacted[:500])]


async def test_the_deliveries_list_gives_the_providers_id_and_finds_a_contact_by_organisation(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What the API's deliveries list says of a sent delivery: the provider's id for it (to
    look it up in the provider's logs); and the search finds a contact by organisation alone."""
    from alerts.delivery import tracking

    results = await _claimed_and_sent(sessions, 2)
    post = results[0].item
    async with sessions.begin() as session:
        await session.execute(
            update(Contact).where(Contact.id == post.contact_id).values(organisation="Daily Post")
        )
        await record(session, results, worker="w1", policy=POLICY, alerts={}, now=utcnow())
    async with sessions() as session:
        found = await tracking.deliveries(session, post.alert_id, search="DAILY post")
        everyone = await tracking.deliveries(session, post.alert_id)
    assert [(r["id"], r["organisation"], r["provider_id"]) for r in found] == [
        (post.id, "Daily Post", f"p{post.id}")
    ]
    assert sorted(r["provider_id"] for r in everyone) == sorted(f"p{r.item.id}" for r in results)


async def test_outcomes_recorded_by_statements_built_afresh_show_provider_id_and_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What the API's deliveries list says after one batch: the sent row has the provider's id
    and no error, the deferred one its (redacted) error and no provider id (the batch's
    statements are built afresh for each test: conftest's ``_hot_statements_built_afresh``).
    """
    from alerts.core.clock import iso
    from alerts.delivery import tracking

    sent, later = await _claimed_and_sent(sessions, 2)
    now = sent.at
    deferred = Result(
        item=later.item,
        outcome=Outcome(kind=OutcomeKind.TRANSIENT, detail=f"451 <{later.item.address}> try later"),
        message_id=later.message_id,
        at=now,
    )
    async with sessions.begin() as session:
        moved = await record(session, [sent, deferred], worker="w1", policy=POLICY, alerts={}, now=now)
    assert sorted(moved) == [("email", "deferred"), ("email", "sent")]
    async with sessions() as session:
        rows = {r["id"]: r for r in await tracking.deliveries(session, sent.item.alert_id)}
    assert {k: rows[sent.item.id][k] for k in ("state", "provider_id", "last_error", "next_attempt_at")} == {
        "state": "sent",
        "provider_id": f"p{sent.item.id}",
        "last_error": None,
        "next_attempt_at": None,
    }
    assert (rows[later.item.id]["state"], rows[later.item.id]["provider_id"]) == ("deferred", None)
    assert rows[later.item.id]["last_error"] == "451 <recipient> try later"
    assert rows[later.item.id]["next_attempt_at"] > iso(now)
