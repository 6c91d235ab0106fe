"""The recorder's batch statements (behaviour end to end is in test_dispatch.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.recorder import moves, redact
from alerts.timeutil import utcnow


async def test_a_batch_is_applied_row_by_primary_key_on_sqlite(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """With the state index in reach, SQLite drove this UPDATE from it and scanned the whole
    batch for every delivery in 'sending': ~100 times slower than looking rows up by id."""
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite query plan")
    outcome = {
        "id": 1,
        "state": "sent",
        "next": None,
        "provider": None,
        "message_id": "<m@x>",
        "unknown": 0,
        "error": None,
        "at": utcnow(),
    }
    async with sessions() as session:
        compiled = moves(session, [outcome] * 3, worker="w").compile(dialect=engine.dialect)
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
