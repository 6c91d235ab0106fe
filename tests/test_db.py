"""Storage behaviour that the engine relies on."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import String, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.core.clock import utcnow
from alerts.core.errors import ConfigError
from alerts.store.db import check_sqlite_version, make_read_sessionmaker, make_sessionmaker, rowset
from alerts.store.models import ContactList, UTCDateTime


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


async def test_rowset_writes_datetimes_as_the_column_type_does(engine: AsyncEngine) -> None:
    """Times written through db.rowset compare, sort and read back exactly like those bound by
    SQLAlchemy (SQLite compares them as text, so the text must be the same)."""
    writes = make_sessionmaker(engine)
    at = datetime(2026, 12, 1, 20, 0, 0, tzinfo=UTC)  # microsecond 0: isoformat would drop it
    later = at + timedelta(microseconds=1)
    async with writes.begin() as session:
        await session.execute(
            insert(ContactList),
            [
                {"name": "a", "description": "", "created_at": at + timedelta(days=1)},
                {"name": "b", "description": "", "created_at": at + timedelta(days=1)},
            ],
        )
        rows = rowset(
            session,
            "r",
            [("name", String()), ("at", UTCDateTime())],
            [{"name": "a", "at": at}, {"name": "b", "at": later.astimezone(timezone(timedelta(hours=-5)))}],
        )
        await session.execute(
            update(ContactList).where(ContactList.name == rows.c.name).values(created_at=rows.c.at)
        )
    async with writes() as session:
        stored = dict((await session.execute(select(ContactList.name, ContactList.created_at))).all())
        assert stored == {"a": at, "b": later}
        not_after_at = (
            (await session.execute(select(ContactList.name).where(ContactList.created_at <= at)))
            .scalars()
            .all()
        )
        assert not_after_at == ["a"]


async def test_rowset_refuses_naive_datetimes(engine: AsyncEngine) -> None:
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(TypeError, match="not an aware datetime"):
            rowset(session, "r", [("at", UTCDateTime())], [{"at": datetime(2026, 1, 1)}])


def test_an_sqlite_too_old_for_the_engine_is_refused_with_the_versions() -> None:
    with pytest.raises(ConfigError, match=r"SQLite 3\.35\.0 or newer is needed; .* SQLite 3\.31\.1\."):
        check_sqlite_version((3, 31, 1))
    check_sqlite_version((3, 35, 0))
    check_sqlite_version(sqlite3.sqlite_version_info)  # the one these tests run on
