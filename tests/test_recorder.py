"""The recorder's batch statements (behaviour end to end is in test_dispatch.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome
from alerts.delivery.claim import claim_due
from alerts.delivery.recorder import Result, moves, record, redact
from alerts.delivery.retry import RetryPolicy
from alerts.store.models import Delivery, DeliveryEvent
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
        compiled = moves(session, [outcome] * 3).compile(dialect=engine.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
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
    assert redact("550 <Jane@Example.org>: unknown", "jane@example.org") == "550 <<recipient>>: unknown"
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
