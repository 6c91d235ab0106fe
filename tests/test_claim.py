"""Claiming due deliveries: what the claim re-checks, releasing, and workers that never block
each other."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.contacts.suppressions import suppress
from alerts.core.clock import utcnow
from alerts.core.states import SuppressionReason
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.claim import claim_due, extend_leases, reclaim_expired, release
from alerts.delivery.publish import publish
from alerts.delivery.recorder import Result, record
from alerts.delivery.retry import RetryPolicy
from alerts.store.models import Delivery, DeliveryEvent
from tests.delivery_cases import (
    mark_sent,
    public_case,
    public_update,
    set_consent,
    set_email,
    states_by_contact,
)
from tests.factories import add_contacts, approved_alert, make_users, published_alert

LEASE = timedelta(seconds=60)


async def _claim(
    sessions: async_sessionmaker[AsyncSession], *, worker: str = "w1", limit: int = 100, **kw: object
) -> list[int]:
    async with sessions.begin() as session:
        items = await claim_due(
            session,
            channel="email",
            limit=limit,
            worker=worker,
            lease=kw.pop("lease", LEASE),  # type: ignore[arg-type]
            now=kw.pop("now", utcnow()),  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )
    return [i.id for i in items]


async def _cancel_details(sessions: async_sessionmaker[AsyncSession], alert_id: int) -> set[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(DeliveryEvent.detail).where(
                DeliveryEvent.alert_id == alert_id, DeliveryEvent.type == "cancelled"
            )
        )
        return set(rows.scalars().all())


async def test_an_update_queued_before_the_originals_consent_was_withdrawn_is_not_sent_to_the_public(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    case = await public_case(sessions)
    await mark_sent(sessions, case.alert_id)
    update_id = await public_update(sessions, case.alert_id)
    await set_consent(sessions, case.alert_id, "restricted")  # withdrawn on the original

    claimed = await _claim(sessions, alert_id=update_id)

    states = await states_by_contact(sessions, update_id)
    assert {states[c] for c in case.public} == {"cancelled"}
    assert {states[c] for c in case.authorities} == {"sending"} and len(claimed) == 2
    assert await _cancel_details(sessions, update_id) == {"consent withdrawn"}


async def test_a_delivery_in_flight_at_the_withdrawal_is_not_sent_again(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Claimed before the withdrawal, then deferred (or its worker died): never claimed again."""
    case = await public_case(sessions, authorities=0, public=2)
    now = utcnow()
    async with sessions.begin() as session:
        items = await claim_due(session, channel="email", limit=10, worker="w1", lease=LEASE, now=now)
    deferred, abandoned = items
    await set_consent(sessions, case.alert_id, "restricted")
    async with sessions.begin() as session:  # the first got a 451 after the withdrawal
        outcome = Outcome(kind=OutcomeKind.TRANSIENT, detail="451 later")
        result = Result(item=deferred, outcome=outcome, message_id="<m>", at=now)
        await record(session, [result], worker="w1", policy=RetryPolicy(), alerts={}, now=now)
    later = now + timedelta(hours=2)  # past the retry time and the second one's lease
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=later) == 1

    assert await _claim(sessions, now=later) == []

    states = await states_by_contact(sessions, case.alert_id)
    assert states == {deferred.contact_id: "cancelled", abandoned.contact_id: "cancelled"}
    assert await _cancel_details(sessions, case.alert_id) == {"consent withdrawn"}


async def test_a_delivery_in_flight_when_the_case_closed_is_cancelled_at_its_next_claim_and_shown_so(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Closing withdraws what waits; a delivery whose worker held it then (and died) comes back
    after its lease, and the claim cancels it: the deliveries list says why, and when (the
    claim's clock, not the wall clock)."""
    from alerts.compose.approval import close_alert
    from alerts.delivery import tracking
    from alerts.delivery.controls import cancel_pending
    from alerts.store.models import Alert
    from tests.delivery_cases import staff

    alert_id = await published_alert(sessions, 1)
    now = utcnow()
    assert len(await _claim(sessions, now=now)) == 1
    async with sessions.begin() as session:
        officer, _ = await staff(session)
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert await cancel_pending(session, alert, now=now) == 0  # nothing waits: it is in flight
        await close_alert(session, alert, user=officer, now=now)
    later = now + timedelta(hours=2)  # past its lease: its worker died
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=later) == 1

    claimed_at = later + timedelta(minutes=1)
    assert await _claim(sessions, now=claimed_at) == []

    async with sessions() as session:
        (row,) = await tracking.deliveries(session, alert_id)
    assert (row["state"], row["last_error"]) == ("cancelled", "alert closed")
    assert row["updated_at"] == claimed_at.isoformat()
    assert await _cancel_details(sessions, alert_id) == {"alert closed"}


async def test_consent_is_checked_once_per_batch_not_per_delivery(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """The claim is the hot path: a batch of public deliveries costs one consent query."""
    from sqlalchemy import event

    case = await public_case(sessions, authorities=0, public=30)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert len(await _claim(sessions, alert_id=case.alert_id)) == 30
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert sum("consents" in s for s in statements) == 1


async def test_a_mixed_case_address_suppressed_since_fan_out_is_not_claimed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 2)
    async with sessions() as session:
        first = (
            await session.execute(select(Delivery.id, Delivery.contact_id).order_by(Delivery.id))
        ).first()
    assert first is not None
    await set_email(sessions, first.contact_id, "Jane@X.org")
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == first.id).values(address="Jane@X.org"))
        await suppress(session, channel="email", address="jane@x.org", reason=SuppressionReason.BOUNCED)
    assert len(await _claim(sessions, alert_id=alert_id)) == 1
    assert (await states_by_contact(sessions, alert_id))[first.contact_id] == "suppressed"


async def test_release_gives_back_only_what_this_worker_still_holds(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A worker shutting down after its lease expired must not re-queue a row another took over."""
    await published_alert(sessions, 2)
    now = utcnow()
    async with sessions.begin() as session:
        mine = await claim_due(
            session, channel="email", limit=2, worker="slow", lease=timedelta(seconds=1), now=now
        )
    later = now + timedelta(seconds=5)
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=later) == 2
        [taken] = await claim_due(session, channel="email", limit=1, worker="fast", lease=LEASE, now=later)
    async with sessions.begin() as session:
        assert await release(session, mine, worker="slow", now=later) == 0
    async with sessions() as session:
        rows = dict((await session.execute(select(Delivery.id, Delivery.claimed_by))).all())
        states = dict((await session.execute(select(Delivery.id, Delivery.state))).all())
    assert rows[taken.id] == "fast" and states[taken.id] == "sending"
    [other] = [i.id for i in mine if i.id != taken.id]
    assert states[other] == "queued"  # reclaimed earlier, not touched by the late release


async def test_two_workers_claim_disjoint_rows_without_waiting_for_each_other(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL: FOR UPDATE SKIP LOCKED. Without SKIP LOCKED the second claimer waits for the
    first one's transaction (row locks), so the workers would take turns instead."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers with BEGIN IMMEDIATE)")
    await published_alert(sessions, 10)
    now = utcnow()
    async with sessions() as first, sessions() as second:
        async with first.begin():
            a = await claim_due(first, channel="email", limit=5, worker="a", lease=LEASE, now=now)
            # the first claim's transaction is still open and holds its rows' locks
            async with second.begin():
                b = await asyncio.wait_for(
                    claim_due(second, channel="email", limit=10, worker="b", lease=LEASE, now=now),
                    timeout=5,
                )
    assert len(a) == 5 and len(b) == 5
    assert not {i.id for i in a} & {i.id for i in b}


async def test_the_lease_heartbeat_skips_rows_another_transaction_holds(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL: the heartbeat never waits for a row lock. It used to wait for the recorder's
    UPDATE, which takes its rows in another order, and the two deadlocked at a million."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers with BEGIN IMMEDIATE)")
    await published_alert(sessions, 4)
    now = utcnow()
    mine = await _claim(sessions, worker="w1", limit=4, now=now)
    later = now + timedelta(seconds=30)
    async with sessions() as recorder, sessions() as heartbeat:
        async with recorder.begin():
            # the recorder holds one of the rows, as its outcome UPDATE does until it commits
            await recorder.execute(update(Delivery).where(Delivery.id == mine[0]).values(attempts=1))
            async with heartbeat.begin():
                extended = await asyncio.wait_for(
                    extend_leases(heartbeat, worker="w1", until=later + LEASE), timeout=5
                )
    assert extended == 3
    async with sessions() as session:
        leases = dict((await session.execute(select(Delivery.id, Delivery.lease_until))).all())
    assert leases[mine[0]] == now + LEASE  # skipped: its next round extends it
    assert all(leases[i] == later + LEASE for i in mine[1:])


async def test_release_on_shutdown_requeues_without_spending_an_attempt(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A graceful shutdown gives its claimed rows back: queued, due now, and the claim's attempt
    is handed back too (the message never left), with a 'released' event saying who did it."""
    alert_id = await published_alert(sessions, 2)
    now = utcnow()
    async with sessions.begin() as session:
        mine = await claim_due(session, channel="email", limit=2, worker="w1", lease=LEASE, now=now)
    async with sessions() as session:
        claimed = dict((await session.execute(select(Delivery.id, Delivery.attempts))).all())
    assert set(claimed.values()) == {1}
    async with sessions.begin() as session:
        assert await release(session, mine, worker="w1", now=now) == 2
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.state, Delivery.attempts, Delivery.claimed_by, Delivery.lease_until)
            )
        ).all()
        events = (
            await session.execute(
                select(DeliveryEvent.from_state, DeliveryEvent.to_state, DeliveryEvent.detail).where(
                    DeliveryEvent.alert_id == alert_id, DeliveryEvent.type == "released"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("queued", 0, None, None)] * 2
    assert [tuple(e) for e in events] == [("sending", "queued", "released by w1 on shutdown")] * 2


async def test_the_heartbeat_keeps_a_living_workers_rows_and_a_dead_ones_come_back_due_after_its_lease(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Two workers hold a row each; only w1 beats. At the very end of w2's lease its row is still
    w2's; just after, it is queued again, due at once (the API's ``next_attempt_at``); w1's row,
    extended, stays with w1."""
    from alerts.core.clock import iso
    from alerts.delivery import tracking

    alert_id = await published_alert(sessions, 2)
    now = utcnow()
    [alive] = await _claim(sessions, worker="w1", limit=1, now=now)
    [dead] = await _claim(sessions, worker="w2", limit=1, now=now)
    async with sessions.begin() as session:
        assert await extend_leases(session, worker="w1", until=now + 2 * LEASE) == 1
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=now + LEASE) == 0  # not yet expired
    after = now + LEASE + timedelta(seconds=1)
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=after) == 1
    async with sessions() as session:
        rows = {r["id"]: r for r in await tracking.deliveries(session, alert_id)}
    assert (rows[dead]["state"], rows[dead]["next_attempt_at"]) == ("queued", iso(after))
    assert rows[alive]["state"] == "sending"


async def test_a_released_delivery_is_due_from_its_release_as_the_api_shows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A worker shutting down five minutes into its lease gives its row back due at that moment:
    the API's ``next_attempt_at`` is the release, not the time it was first due."""
    from alerts.core.clock import iso
    from alerts.delivery import tracking

    alert_id = await published_alert(sessions, 1)
    now = utcnow()
    async with sessions.begin() as session:
        mine = await claim_due(session, channel="email", limit=1, worker="w1", lease=LEASE, now=now)
    later = now + timedelta(minutes=5)
    async with sessions.begin() as session:
        assert await release(session, mine, worker="w1", now=later) == 1
    async with sessions() as session:
        [row] = await tracking.deliveries(session, alert_id)
    assert (row["state"], row["next_attempt_at"]) == ("queued", iso(later))


async def test_reclaiming_expired_leases_skips_rows_another_transaction_holds(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL: the housekeeping that puts dead workers' rows back never waits for a row lock
    (the recorder may be moving that row out of ``sending`` right now); it takes the others."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers with BEGIN IMMEDIATE)")
    await published_alert(sessions, 3)
    now = utcnow()
    mine = await _claim(sessions, worker="dead", limit=3, now=now, lease=timedelta(seconds=1))
    later = now + timedelta(seconds=30)
    async with sessions() as recorder, sessions() as housekeeping:
        async with recorder.begin():
            await recorder.execute(update(Delivery).where(Delivery.id == mine[0]).values(attempts=1))
            async with housekeeping.begin():
                reclaimed = await asyncio.wait_for(reclaim_expired(housekeeping, now=later), timeout=5)
    assert reclaimed == 2
    async with sessions() as session:
        states = dict((await session.execute(select(Delivery.id, Delivery.state))).all())
    assert states == {mine[0]: "sending", mine[1]: "queued", mine[2]: "queued"}


async def _deliveries_by_contact(
    sessions: async_sessionmaker[AsyncSession], alert_id: int
) -> dict[int | None, dict[str, object]]:
    """The API's deliveries list of the alert (with addresses), by contact."""
    from alerts.delivery import tracking

    async with sessions() as session:
        rows = await tracking.deliveries(session, alert_id, with_address=True)
    return {row["contact_id"]: row for row in rows}


async def test_an_address_corrected_to_one_that_already_got_the_alert_gets_no_second_copy(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """person1's mailbox got the alert; person1 then moved to a new address, and an officer gave
    person0's contact the old one while person0's delivery waited. That mailbox must not get the
    alert twice: the delivery is cancelled, with an event saying why."""
    alert_id = await published_alert(sessions, 2)
    first, second = sorted((await _deliveries_by_contact(sessions, alert_id)).items())
    (contact0, row0), (contact1, row1) = first, second
    assert contact0 is not None and contact1 is not None
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.id == row1["id"]).values(state="sent"))
    await set_email(sessions, contact1, "moved@example.org")
    await set_email(sessions, contact0, "person1@example.org")

    assert await _claim(sessions, alert_id=alert_id) == []

    rows = await _deliveries_by_contact(sessions, alert_id)
    why = "corrected address already gets this alert"
    assert (rows[contact0]["state"], rows[contact0]["last_error"]) == ("cancelled", why)
    async with sessions() as session:
        events = (
            await session.execute(
                select(DeliveryEvent.from_state, DeliveryEvent.to_state, DeliveryEvent.detail).where(
                    DeliveryEvent.delivery_id == row0["id"], DeliveryEvent.type == "cancelled"
                )
            )
        ).all()
    assert [tuple(e) for e in events] == [("queued", "cancelled", why)]


async def test_a_chat_corrected_to_one_a_waiting_delivery_of_the_alert_holds_gets_no_second_copy(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Contacts may share a Telegram chat: person0's chat is corrected to person1's, whose
    delivery waits too and who keeps the chat. The chat gets one copy, person1's; person0's is
    cancelled saying why."""
    from alerts.store.models import Contact

    alert_id = await published_alert(sessions, 2, channels=["telegram"])
    (contact0, _), (contact1, _) = sorted((await _deliveries_by_contact(sessions, alert_id)).items())
    assert contact0 is not None and contact1 is not None
    async with sessions.begin() as session:
        await session.execute(update(Contact).where(Contact.id == contact0).values(telegram="100001"))
        claimed = await claim_due(
            session, channel="telegram", limit=10, worker="w1", lease=LEASE, now=utcnow(), alert_id=alert_id
        )

    assert [(c.contact_id, c.address) for c in claimed] == [(contact1, "100001")]
    rows = await _deliveries_by_contact(sessions, alert_id)
    assert (rows[contact0]["state"], rows[contact0]["last_error"]) == (
        "cancelled",
        "corrected address already gets this alert",
    )


async def _two_alerts_on_two_lists(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int, int]:
    """person0 on "appeals" and person5 on "press-list", an alert to each list published:
    (contact0, contact5, the appeals alert, the press alert)."""
    now = utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        [contact0] = await add_contacts(session, 1, list_name="appeals")
        [contact5] = await add_contacts(session, 1, list_name="press-list", start=5)
        ours = await approved_alert(session, author=officer, reviewer=reviewer, lists=("appeals",))
        other = await approved_alert(session, author=officer, reviewer=reviewer, lists=("press-list",))
        await publish(session, ours, now=now)
        await publish(session, other, now=now)
        return contact0, contact5, ours.id, other.id


async def test_an_address_corrected_to_one_another_alert_reaches_is_sent_there_and_shown(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One copy per address is per alert: person0's address is corrected to one that another
    alert's delivery (of a contact who moved since) still holds. This alert goes to the corrected
    address, and the API's deliveries list shows that address, not the one copied at fan-out."""
    contact0, contact5, alert_id, _ = await _two_alerts_on_two_lists(sessions)
    await set_email(sessions, contact5, "moved@example.org")
    await set_email(sessions, contact0, "person5@example.org")

    async with sessions.begin() as session:
        [claimed] = await claim_due(
            session, channel="email", limit=10, worker="w1", lease=LEASE, now=utcnow(), alert_id=alert_id
        )

    assert claimed.address == "person5@example.org"
    row = (await _deliveries_by_contact(sessions, alert_id))[contact0]
    assert (row["state"], row["address"]) == ("sending", "person5@example.org")


async def test_two_contacts_whose_addresses_were_corrected_in_turn_both_get_the_alert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """While the alert waits, person1 moves to a new address and an officer gives person0's
    contact person1's old one. Each mailbox should get one copy: person0's contact at the old
    person1 address, person1 at the new one. The claim cancels person0's delivery ("corrected
    address already gets this alert") because person1's waiting delivery still holds that
    address, then sent person1's to the new address: the old mailbox, now person0's, got
    nothing (when person1's row was taken first, both went out). A waiting delivery now holds
    its address only while its contact keeps it."""
    alert_id = await published_alert(sessions, 2)
    (contact0, _), (contact1, _) = sorted((await _deliveries_by_contact(sessions, alert_id)).items())
    assert contact0 is not None and contact1 is not None
    await set_email(sessions, contact1, "moved@example.org")
    await set_email(sessions, contact0, "person1@example.org")

    await _claim(sessions, alert_id=alert_id)

    rows = await _deliveries_by_contact(sessions, alert_id)
    assert {(rows[c]["state"], rows[c]["address"]) for c in (contact0, contact1)} == {
        ("sending", "person1@example.org"),
        ("sending", "moved@example.org"),
    }


async def test_an_address_corrected_to_a_suppressed_one_is_suppressed_saying_why(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An officer corrects person0's address, while the alert waits, to one that bounced
    before: the delivery is not sent there, and the API's deliveries list says why."""
    alert_id = await published_alert(sessions, 1)
    [(contact0, _)] = (await _deliveries_by_contact(sessions, alert_id)).items()
    assert contact0 is not None
    async with sessions.begin() as session:
        await suppress(session, channel="email", address="dead@example.org", reason=SuppressionReason.BOUNCED)
    await set_email(sessions, contact0, "dead@example.org")

    assert await _claim(sessions, alert_id=alert_id) == []

    row = (await _deliveries_by_contact(sessions, alert_id))[contact0]
    assert (row["state"], row["last_error"]) == ("suppressed", "corrected address is suppressed")


async def test_an_address_corrected_to_one_not_suppressed_is_sent_while_other_addresses_are(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Another address bounced before; person0's is corrected, while the alert waits, to a new
    one that never did: the delivery goes to the new address, it is not suppressed."""
    alert_id = await published_alert(sessions, 1)
    [(contact0, _)] = (await _deliveries_by_contact(sessions, alert_id)).items()
    assert contact0 is not None
    async with sessions.begin() as session:
        await suppress(session, channel="email", address="dead@example.org", reason=SuppressionReason.BOUNCED)
    await set_email(sessions, contact0, "new@example.org")

    assert len(await _claim(sessions, alert_id=alert_id)) == 1

    row = (await _deliveries_by_contact(sessions, alert_id))[contact0]
    assert (row["state"], row["address"], row["last_error"]) == ("sending", "new@example.org", None)


async def test_an_address_corrected_to_one_another_alert_already_reached_still_gets_this_alert(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One copy per address is per alert: another alert was sent to person5, who then moved,
    and person0's address is corrected to person5's old one. This alert is a different message:
    it goes to that address, it is not cancelled as a second copy."""
    contact0, contact5, alert_id, other_id = await _two_alerts_on_two_lists(sessions)
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.alert_id == other_id).values(state="sent"))
    await set_email(sessions, contact5, "moved@example.org")
    await set_email(sessions, contact0, "person5@example.org")

    async with sessions.begin() as session:
        claimed = await claim_due(
            session, channel="email", limit=10, worker="w1", lease=LEASE, now=utcnow(), alert_id=alert_id
        )

    assert [c.address for c in claimed] == ["person5@example.org"]
    row = (await _deliveries_by_contact(sessions, alert_id))[contact0]
    assert (row["state"], row["address"], row["last_error"]) == ("sending", "person5@example.org", None)


async def test_a_worker_that_beat_and_then_died_has_its_rows_queued_again_after_the_extension(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """w1 extends its lease once, then dies: its row stays w1's until the extended lease ends,
    and just after that it is queued again (the API shows it due at that moment)."""
    from alerts.core.clock import iso
    from alerts.delivery import tracking

    alert_id = await published_alert(sessions, 1)
    now = utcnow()
    [held] = await _claim(sessions, worker="w1", limit=1, now=now)
    async with sessions.begin() as session:
        assert await extend_leases(session, worker="w1", until=now + 2 * LEASE) == 1
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=now + LEASE + timedelta(seconds=1)) == 0
    after = now + 2 * LEASE + timedelta(seconds=1)
    async with sessions.begin() as session:
        assert await reclaim_expired(session, now=after) == 1
    async with sessions() as session:
        [row] = await tracking.deliveries(session, alert_id)
    assert (row["id"], row["state"], row["next_attempt_at"]) == (held, "queued", iso(after))
