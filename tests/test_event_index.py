"""The (alert_id, type) index on delivery events holds opens and clicks only (migration 0013),
and the two statements that count them still read it (EXPLAIN, both databases).

The fan-out's "queued" events and the send's "sending"/"sent" ones are not written into it;
a partial index is used only when the query states its condition the way the index does
(SQLite compares the terms as written), so a count that bound the two types as parameters, or
named them in another order, would fall back to reading every event of the alert.
"""

from __future__ import annotations

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.delivery.retention import prune_alert
from alerts.delivery.tracking import figures
from alerts.store.models import Delivery, DeliveryEvent
from tests.factories import published_alert
from tests.test_claim_plans import captured, plan

ROWS = 300


async def index_definition(session: AsyncSession) -> str:
    if session.get_bind().dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_delivery_events_alert_type'"
    else:
        query = "SELECT pg_get_indexdef('ix_delivery_events_alert_type'::regclass)"
    return str((await session.execute(text(query))).scalar_one())


async def test_opens_and_clicks_are_counted_through_the_partial_index(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alert_id = await published_alert(sessions, ROWS)
    async with sessions.begin() as session:
        ids = (await session.execute(select(Delivery.id).order_by(Delivery.id).limit(30))).scalars().all()
        now = utcnow()
        rows = [
            {"delivery_id": d, "alert_id": alert_id, "type": kind, "at": now, "attempt": 0, "detail": ""}
            for n, d in enumerate(ids)
            for kind in (("opened", "clicked") if n % 3 == 0 else ("opened",))
        ]
        await session.execute(insert(DeliveryEvent), rows)
        definition = await index_definition(session)
    assert "WHERE" in definition.upper() and "opened" in definition and "clicked" in definition, definition
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()

    with captured(engine) as statements:
        async with sessions() as session:
            _, engaged, _ = await figures(session, alert_id)
        async with sessions.begin() as session:
            pruned = await prune_alert(session, alert_id)
            await session.rollback()
    assert engaged == {"email": {"opened": 30, "clicked": 10}}
    assert pruned.events == ROWS + len(rows)  # a queued event per delivery, and the engagements
    counting = [(s, p) for s, p in statements if "count(distinct" in " ".join(s.split()).lower()]
    assert len(counting) == 2, statements
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            # the tables are small: without this PostgreSQL reads them whole, and the test would
            # not show which index it can use (EXPLAIN plans with the parameters' values: only
            # SQLite's plan shows that the types must be constants)
            await session.execute(text("SET LOCAL enable_seqscan = off"))
        for statement, parameters in counting:
            shown = await plan(session, statement, parameters)
            assert "ix_delivery_events_alert_type" in shown, f"{statement}\n-- plan --\n{shown}"
