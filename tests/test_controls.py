"""Officers' controls on a running alert, where the defender's consent is concerned."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.delivery import controls
from alerts.store.models import Alert, AuditEntry, Consent, Delivery, DeliveryEvent
from tests.delivery_cases import mark_sent, public_case, public_update, set_consent, staff, states_by_contact


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
