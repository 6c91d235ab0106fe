"""Storage behaviour that the engine relies on."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.db import make_read_sessionmaker, make_sessionmaker
from alerts.models import ContactList
from alerts.timeutil import utcnow


async def test_an_open_read_session_never_holds_up_the_writer(engine: AsyncEngine) -> None:
    reads, writes = make_read_sessionmaker(engine), make_sessionmaker(engine)
    async with reads() as reader:
        await reader.execute(select(func.count()).select_from(ContactList))  # a transaction is open

        async def write() -> None:
            async with writes.begin() as writer:
                await writer.execute(
                    insert(ContactList).values(name="urgent", description="", created_at=utcnow())
                )

        await asyncio.wait_for(write(), timeout=5)  # with a locking read this waits out the busy timeout
    async with reads() as reader:
        assert (await reader.execute(select(func.count()).select_from(ContactList))).scalar_one() == 1
