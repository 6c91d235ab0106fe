"""The schema migrates from empty to what the models declare, migrating again changes nothing,
and 0014 (no key from deliveries to alerts) goes down and up again keeping the outbox rows."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from alerts.core.clock import utcnow
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import alembic_config, current_revision, head_revision, upgrade
from alerts.store.models import Base, Delivery
from tests.conftest import PG_ADMIN_URL, pg_execute, pg_url
from tests.factories import published_alert


def _downgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)


def _differences(conn: Connection) -> list[Any]:
    """What autogenerate would write to turn the database's schema into the models'."""
    return list(
        compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    )


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


async def test_the_migrated_schema_is_the_one_the_models_declare(engine: AsyncEngine) -> None:
    """Every table, column, type, index and key of the models, and nothing else: a model
    changed without its migration (or a migration without its model) fails here."""
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def _keys_of_deliveries(engine: AsyncEngine) -> list[tuple[str, tuple[str, ...], str | None]]:
    async with engine.connect() as conn:
        keys = await conn.run_sync(lambda c: inspect(c).get_foreign_keys("deliveries"))
    return sorted(
        (k["referred_table"], tuple(k["constrained_columns"]), k["options"].get("ondelete")) for k in keys
    )


def _delivery(alert_id: int, contact_id: int | None) -> dict[str, Any]:
    now = utcnow()
    return {
        "alert_id": alert_id,
        "contact_id": contact_id,
        "channel": "email",
        "audience": "authority",
        "language": "en",
        "address": "someone@example.org",
        "state": "queued",
        "attempts": 0,
        "unknown_outcomes": 0,
        "created_at": now,
        "updated_at": now,
    }


async def test_0014_takes_the_deliveries_key_to_alerts_away_and_its_downgrade_puts_it_back(
    engine: AsyncEngine,
) -> None:
    """Down to 0013: the outbox rows are kept and a delivery for no alert is refused again.
    Up again: the rows are kept, a repeat of (alert, contact, channel) is still refused, and
    the schema is the models' (on SQLite both directions rebuild the table: batch mode)."""
    alert_id = await published_alert(make_sessionmaker(engine), 3)

    async def outbox() -> list[Any]:
        async with engine.connect() as conn:
            query = select(Delivery.id, Delivery.alert_id, Delivery.contact_id, Delivery.state)
            return list((await conn.execute(query.order_by(Delivery.id))).all())

    written = await outbox()
    assert [row.alert_id for row in written] == [alert_id] * 3
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade, "0013")
    assert await current_revision(engine) == "0013"
    assert await _keys_of_deliveries(engine) == [
        ("alerts", ("alert_id",), "CASCADE"),
        ("contacts", ("contact_id",), "SET NULL"),
    ]
    assert await outbox() == written
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(Delivery), [_delivery(alert_id + 1000, None)])

    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert await _keys_of_deliveries(engine) == [("contacts", ("contact_id",), "SET NULL")]
    assert await outbox() == written
    with pytest.raises(IntegrityError):  # the unique (alert_id, contact_id, channel) survived the rebuild
        async with engine.begin() as conn:
            await conn.execute(insert(Delivery), [_delivery(alert_id, written[0].contact_id)])
    async with engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        assert await conn.scalar(select(func.count()).select_from(Delivery)) == 3


async def test_contacts_stored_with_a_json_null_are_repaired(db_url: str) -> None:
    """0002: ``channels``/``topics`` written as JSON ``null`` (issue 10) become SQL NULL."""
    from sqlalchemy import text

    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0001")
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
    engines = [create_engine(url) for _ in range(6)]
    try:
        await asyncio.gather(*(upgrade(e) for e in engines))
        assert {await current_revision(e) for e in engines} == {head_revision()}
    finally:
        for e in engines:
            await e.dispose()
        if PG_ADMIN_URL:
            await pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
