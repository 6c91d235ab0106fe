"""Create or upgrade the schema with Alembic; safe to run any number of times."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


#: Key of the PostgreSQL advisory lock that serialises migrations (any constant will do).
MIGRATION_LOCK = 0x616C657274  # "alert"


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema.

    Several processes may start at once (``serve`` and workers, or replicas): one migrates and
    the others wait, then find the schema at head. On PostgreSQL a transaction-scoped advisory
    lock does this; on SQLite the transaction's ``BEGIN IMMEDIATE`` (store/db.py) already does.
    """

    def _upgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


@functools.cache
def head_revision() -> str | None:
    """The newest revision this version's migrations know (read once)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
