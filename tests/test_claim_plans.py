"""The hot path's statements stay index-driven as the outbox grows (EXPLAIN, both databases),
and so does the contacts list as the network grows.

A claim, a batch of outcomes and the completion probe are run for real on an outbox of
20,000 deliveries of which 19,500 were already sent (a table after many sends); every
statement they issued is captured as sent to the database and EXPLAINed after ANALYZE. A
full scan of the deliveries would make each claim cost as much as the whole table: at a
million rows the send would slow to a crawl as it went on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.contacts.directory import search_contacts
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome
from alerts.delivery.claim import claim_due, reclaim_expired
from alerts.delivery.publish import load_alert_info
from alerts.delivery.recorder import Result, record
from alerts.delivery.retry import RetryPolicy
from alerts.delivery.tracking import has_open
from alerts.store.models import Delivery
from tests.factories import add_contacts, published_alert

ROWS, LEFT = 20_000, 500
# a plan line that reads a whole table growing with the audience (SQLite: "SCAN deliveries"; PostgreSQL:
# "Seq Scan on deliveries"); scanning the bound batch (json_each / json_to_recordset) is fine
FULL_SCAN = re.compile(r"\b(SCAN|Seq Scan on) (deliveries|delivery_events|contacts)\b(?! USING)")


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every (statement, parameters) the engine sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "DELETE", "WITH")):
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", keep)


async def plan(session: AsyncSession, statement: str, parameters: Any) -> str:
    """The database's plan for one captured statement, as text."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    conn = await session.connection()
    rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
    return "\n".join(str(row[-1]) for row in rows)


async def test_claims_outcomes_and_the_completion_probe_use_indexes_on_a_large_outbox(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    alert_id = await published_alert(sessions, ROWS)
    async with sessions.begin() as session:
        keep = (await session.execute(text("SELECT min(id) FROM deliveries"))).scalar_one() + LEFT
        await session.execute(
            update(Delivery).where(Delivery.id >= keep).values(state="sent", next_attempt_at=None)
        )
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()

    now = utcnow()
    with captured(engine) as statements:
        async with sessions.begin() as session:
            items = await claim_due(
                session, channel="email", limit=100, worker="w", lease=timedelta(minutes=1), now=now
            )
            await claim_due(
                session,
                channel="email",
                limit=100,
                worker="w",
                lease=timedelta(minutes=1),
                now=now,
                alert_id=alert_id,
            )
            info = {alert_id: await load_alert_info(session, alert_id)}
            results = [
                Result(
                    item=i, outcome=Outcome.sent(provider_id="p", detail="250 OK"), message_id="<m>", at=now
                )
                for i in items
            ]
            policy = RetryPolicy.from_settings(DispatcherSettings())
            await record(session, results, worker="w", policy=policy, alerts=info, now=now)
            await reclaim_expired(session, now=now)
            assert await has_open(session, alert_id)
    assert len(items) == 100

    kinds = {s.split()[0].upper() for s, _ in statements}
    assert {"SELECT", "UPDATE", "INSERT"} <= kinds, kinds
    async with sessions() as session:
        for statement, parameters in statements:
            shown = await plan(session, statement, parameters)
            assert not FULL_SCAN.search(shown), f"{statement}\n-- plan --\n{shown}"


async def test_the_contacts_first_page_is_read_from_the_name_index_not_sorted(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The contacts list (officers' page and API) orders by name then id, 50 at a time: read
    from ``ix_contacts_name_id`` (migration 0015), not the whole network sorted for each page."""
    async with sessions.begin() as session:
        await add_contacts(session, ROWS)
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    with captured(engine) as statements:
        async with sessions() as session:
            found = await search_contacts(session, limit=51)
    assert len(found) == 51
    ((statement, parameters),) = [s for s in statements if "FROM contacts" in s[0]]
    async with sessions() as session:
        shown = await plan(session, statement, parameters)
    assert "ix_contacts_name_id" in shown, shown
    assert not re.search(r"TEMP B-TREE FOR ORDER BY|Sort\b", shown), shown
