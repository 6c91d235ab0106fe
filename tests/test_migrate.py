"""The schema migrates from empty, and migrating again changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import inspect

from alerts.store.db import create_engine
from alerts.store.migrate import current_revision, head_revision, upgrade
from alerts.store.models import Base
from tests.conftest import PG_ADMIN_URL, pg_execute, pg_url


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


async def test_contacts_stored_with_a_json_null_are_repaired(db_url: str) -> None:
    """0002: ``channels``/``topics`` written as JSON ``null`` (issue 10) become SQL NULL."""
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    from alerts.store.migrate import alembic_config

    def downgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")

    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
            for n, channels in enumerate(("null", None, '["email"]')):
                await conn.execute(
                    text(
                        "INSERT INTO contacts (name, email, email_key, kind, language, channels, topics, status, "
                        "token, created_at, updated_at) VALUES (:name, :email, :email, 'partner', 'en', "
                        ":channels, 'null', 'active', :token, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {
                        "name": f"c{n}",
                        "email": f"c{n}@example.org",
                        "channels": channels,
                        "token": f"token-{n}",
                    },
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT name, channels IS NULL, topics IS NULL, CAST(channels AS VARCHAR) "
                    "FROM contacts ORDER BY name"
                )
            )
            found = [(name, bool(a), bool(b), c) for name, a, b, c in rows]
        assert found == [("c0", True, True, None), ("c1", True, True, None), ("c2", False, True, '["email"]')]
    finally:
        await engine.dispose()


async def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    """``serve`` and workers started together on an empty database: one migrates, the rest wait."""
    if PG_ADMIN_URL:
        name = f"alerts_mig_{uuid.uuid4().hex[:10]}"
        await pg_execute(f'CREATE DATABASE "{name}"')
        url = pg_url(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    engines = [create_engine(url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(e) for e in engines))
        assert {await current_revision(e) for e in engines} == {head_revision()}
    finally:
        for e in engines:
            await e.dispose()
        if PG_ADMIN_URL:
            await pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
