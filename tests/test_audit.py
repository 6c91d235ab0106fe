"""The audit log: appended in the caller's transaction, read newest first, never holds secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.errors import ValidationError
from alerts.store import audit
from alerts.store.models import AuditEntry

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return await s.scalar(select(func.count()).select_from(AuditEntry)) or 0


async def test_record_and_list_newest_first_with_filters(session: AsyncSession) -> None:
    for minute, (kind, oid) in enumerate([("alert", 1), ("alert", 2), ("user", 1), ("alert", 1)]):
        await audit.record(
            session,
            user_id=None,
            action=f"{kind}.touch",
            object_type=kind,
            object_id=oid,
            details={"n": minute},
            now=NOW + timedelta(minutes=minute),
        )
    await session.commit()

    everything = await audit.list_entries(session)
    assert [e.details for e in everything] == [{"n": 3}, {"n": 2}, {"n": 1}, {"n": 0}]
    assert everything[0].at == NOW + timedelta(minutes=3)
    alert_1 = await audit.list_entries(session, object_type="alert", object_id=1)
    assert [(e.object_id, e.details) for e in alert_1] == [("1", {"n": 3}), ("1", {"n": 0})]
    assert [e.details for e in await audit.list_entries(session, object_type="user")] == [{"n": 2}]
    assert len(await audit.list_entries(session, limit=2)) == 2


@pytest.mark.parametrize("limit", [0, 1001])
async def test_limit_out_of_range_is_refused(session: AsyncSession, limit: int) -> None:
    with pytest.raises(ValidationError) as err:
        await audit.list_entries(session, limit=limit)
    assert err.value.message == f"limit: {limit} is out of range (1 to 1000)"


@pytest.mark.parametrize("key", ["email", "token", "password", "address"])
async def test_details_with_an_address_or_secret_are_refused(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], key: str
) -> None:
    with pytest.raises(ValueError) as err:
        await audit.record(
            session, user_id=None, action="x", object_type="user", object_id=1, details={key: "v"}, now=NOW
        )
    assert str(err.value) == f"audit details must not hold addresses or secrets: {key}"
    await session.commit()
    assert await _count(sessions) == 0


async def test_entry_shares_the_callers_transaction(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await audit.record(session, user_id=None, action="x", object_type="alert", object_id=7, now=NOW)
    await session.rollback()
    assert await _count(sessions) == 0
