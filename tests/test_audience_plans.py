"""The audience report's queries stay one pass over the network however large it grows
(EXPLAIN on both databases; on PostgreSQL with a small ``work_mem``).

PostgreSQL hashes a ``NOT IN (subquery)`` only while the subquery fits in ``work_mem``; past
that it reads the subquery again for every row. With the default 4 MB that happens at about
100,000 contacts, and at a million the report of an original alert ran for over 15 minutes.
Here ``work_mem`` is made small enough that the reached of a few thousand contacts do not
fit, and every statement the report of an alert and of its update issues is planned: the
left-out are found by an anti-join, and no plan filters rows by a ``NOT IN`` subplan (hashed
while it fits, read again per row once it does not: which one depends on the network's size).
Like every plan on PostgreSQL, the anti-join's needs statistics: without any (a server
without autovacuum, just after the writes) it may loop over the reached for each contact.
SQLite indexes a ``NOT IN`` subquery once (a ``LIST SUBQUERY``), where a join to the reached
of an update scanned them again for each recipient of its original.
"""

from __future__ import annotations

import re

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.compose import drafts
from alerts.compose.casedata import case_country
from alerts.core.clock import utcnow
from alerts.delivery.audience_report import report
from alerts.delivery.publish import publish
from alerts.store.models import Contact, Delivery
from tests.factories import add_contacts, approved_alert, make_users
from tests.test_claim_plans import captured, plan

CONTACTS = 10_000  # the reached ids take more than work_mem's 64 kB
NOT_IN = re.compile(
    r"NOT \(.*SubPlan"
)  # PostgreSQL (15: "NOT (hashed SubPlan 1)"; 17: "NOT (ANY (… SubPlan")
SCANNED_PER_ROW = re.compile(r"^SCAN \S+ LEFT-JOIN", re.MULTILINE)  # SQLite


async def reports(sessions: async_sessionmaker[AsyncSession], *alerts: int) -> None:
    for alert_id in alerts:
        async with sessions() as session:
            alert = await drafts.get_alert(session, alert_id)
            country = case_country((await drafts.current_version(session, alert)).case_data)
            await report(
                session,
                alert,
                languages=["en"],
                exclude_kinds=(),
                available=None,
                webhook_url="",
                country=country,
            )


async def test_who_is_left_out_is_an_anti_join_not_a_subquery_per_contact(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    postgres = engine.dialect.name == "postgresql"
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, CONTACTS)
        original = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, original, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == original.id).values(state="sent"))
        # some unsubscribe since: left out of the next alert and of the update
        await session.execute(update(Contact).where(Contact.id % 10 == 0).values(status="unsubscribed"))
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        follow = await approved_alert(session, author=officer, reviewer=reviewer, parent_id=original.id)
    async with engine.connect() as conn:  # what autovacuum (or an import) leaves after such writes
        await conn.exec_driver_sql("ANALYZE")
        await conn.commit()
    with captured(engine) as statements:
        await reports(sessions, alert.id, follow.id)
    assert len(statements) >= 4, statements
    async with sessions() as session:
        if postgres:
            conn = await session.connection()
            await conn.exec_driver_sql("SET work_mem = '64kB'")  # a few thousand ids do not fit
        plans = [await plan(session, statement, parameters) for statement, parameters in statements]
    for (statement, _), shown in zip(statements, plans, strict=True):
        assert not (NOT_IN if postgres else SCANNED_PER_ROW).search(shown), (
            f"{statement}\n-- plan --\n{shown}"
        )
    # the left-out of the alert and of its update, counted and listed: one pass each
    once = re.compile(r"(Hash|Merge) Anti Join" if postgres else "LIST SUBQUERY")  # not a nested loop
    assert sum(bool(once.search(shown)) for shown in plans) >= 4, plans
