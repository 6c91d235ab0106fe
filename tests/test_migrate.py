"""The schema migrates from empty, and migrating again changes nothing."""

from __future__ import annotations

from sqlalchemy import inspect

from alerts.store.db import create_engine
from alerts.store.migrate import current_revision, upgrade
from alerts.store.models import Base


async def test_upgrade_twice_is_harmless(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        before = await current_revision(engine)
        await upgrade(engine)
        assert await current_revision(engine) == before is not None
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
    finally:
        await engine.dispose()
