"""The audit log's hash chain (issue 14 item 8): every entry carries the hash of the one before;
``verify_chain`` and ``alerts audit verify`` find the first broken link; two writers on two
connections never fork the chain (PostgreSQL: the table lock; SQLite: BEGIN IMMEDIATE);
migration 0005 chains the entries written before it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.cli.parser import main
from alerts.store import audit
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.models import AuditEntry
from tests.conftest import PG_ADMIN_URL

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _write(sessions: async_sessionmaker[AsyncSession], n: int, *, tag: str = "w") -> None:
    for i in range(n):
        async with sessions.begin() as session:
            await audit.record(
                session,
                user_id=None,
                action=f"test.{tag}",
                object_type="alert",
                object_id=i,
                details={"n": i, "tag": tag, "languages": ("en", "fr"), 7: "int key"},
                now=NOW + timedelta(seconds=i),
            )


async def _entries(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEntry]:
    async with sessions() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def _verify(sessions: async_sessionmaker[AsyncSession]) -> audit.ChainReport:
    async with sessions() as session:
        return await audit.verify_chain(session)


async def test_each_entry_carries_the_hash_of_the_one_before(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    assert await _verify(sessions) == audit.ChainReport(entries=0, head=audit.GENESIS)
    await _write(sessions, 5)
    entries = await _entries(sessions)
    assert entries[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert len({e.hash for e in entries}) == 5
    assert entries[0].details == {"n": 0, "tag": "w", "languages": ["en", "fr"], "7": "int key"}
    report = await _verify(sessions)
    assert report.intact and report.entries == 5 and report.head == entries[-1].hash


@pytest.mark.parametrize(
    "tamper,broken,reason",
    [
        ("edit details", 3, "entry 3 does not match its hash: it was changed after it was written"),
        ("edit time", 3, "entry 3 does not match its hash"),
        ("edit and rehash", 4, "entry 4 does not link to the entry before it"),
        ("delete", 4, "entry 4 does not link to the entry before it"),
        ("delete first", 2, "entry 2 does not link to the entry before it"),
        ("swap", 3, "entry 3 does not link"),
    ],
)
async def test_verify_reports_the_first_broken_link(
    sessions: async_sessionmaker[AsyncSession], tamper: str, broken: int, reason: str
) -> None:
    await _write(sessions, 6)
    entries = {e.id: e for e in await _entries(sessions)}
    assert sorted(entries) == [1, 2, 3, 4, 5, 6]
    async with sessions.begin() as session:
        if tamper == "edit details":
            await session.execute(update(AuditEntry).where(AuditEntry.id == 3).values(details={"n": 99}))
        elif tamper == "edit time":
            await session.execute(update(AuditEntry).where(AuditEntry.id == 3).values(at=NOW))
        elif tamper == "edit and rehash":
            forged = entries[3]
            forged.action = "test.innocent"
            new_hash = audit.hash_of(forged, forged.prev_hash)
            await session.execute(
                update(AuditEntry).where(AuditEntry.id == 3).values(action="test.innocent", hash=new_hash)
            )
        elif tamper == "delete":
            await session.execute(delete(AuditEntry).where(AuditEntry.id == 3))
        elif tamper == "delete first":
            await session.execute(delete(AuditEntry).where(AuditEntry.id == 1))
        elif tamper == "swap":
            a, b = entries[3], entries[4]
            for target, source in ((3, b), (4, a)):
                await session.execute(
                    update(AuditEntry)
                    .where(AuditEntry.id == target)
                    .values(
                        action=source.action,
                        object_id=source.object_id,
                        details=source.details,
                        at=source.at,
                        prev_hash=source.prev_hash,
                        hash=source.hash,
                    )
                )
    report = await _verify(sessions)
    assert report.broken_at == broken and report.reason.startswith(reason), report
    assert report.entries == (broken - 1 if tamper not in ("delete", "delete first") else broken - 2)


async def test_two_writers_on_two_connections_never_fork_the_chain(db_url: str) -> None:
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        first, second = (make_sessionmaker(e) for e in engines)
        # one writer holds its transaction open after recording: the other must wait for it
        async with first.begin() as holding:
            await audit.record(
                holding, user_id=None, action="test.first", object_type="alert", object_id=1, now=NOW
            )
            waiting = asyncio.create_task(_write(second, 1, tag="second"))
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            assert not done, "the second writer chained onto an entry not yet committed"
        await asyncio.wait_for(waiting, 30)
        # then many entries from both at once
        await asyncio.gather(_write(first, 40, tag="a"), _write(second, 40, tag="b"))
        entries = await _entries(first)
        assert len(entries) == 82
        assert [e.action for e in entries[:2]] == ["test.first", "test.second"]
        assert len({e.prev_hash for e in entries}) == 82  # no two entries chained onto the same one
        report = await _verify(first)
        assert report.intact and report.entries == 82, report
    finally:
        for e in engines:
            await e.dispose()


async def test_migration_chains_the_entries_written_before_it(db_url: str) -> None:
    from alembic import command
    from sqlalchemy.engine import Connection

    from alerts.store.migrate import alembic_config, upgrade

    def downgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")

    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
            for n in range(3):
                await conn.execute(
                    text(
                        "INSERT INTO audit_log (at, action, object_type, object_id, details) "
                        "VALUES (:at, 'old.entry', 'alert', :oid, :details)"
                    ),
                    {
                        "at": NOW + timedelta(minutes=n),
                        "oid": str(n),
                        "details": json.dumps({"old": True, "n": n}),
                    },
                )
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        report = await _verify(sessions)
        assert report.intact and report.entries == 3, report
        await _write(sessions, 2)  # new entries chain onto the migrated ones
        report = await _verify(sessions)
        assert report.intact and report.entries == 5, report
    finally:
        await engine.dispose()


def test_cli_audit_verify(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALERTS_DATABASE_URL", db_url)

    async def setup(tamper: bool) -> None:
        engine = create_engine(db_url)
        try:
            sessions = make_sessionmaker(engine)
            if not tamper:
                await _write(sessions, 4)
            else:
                async with sessions.begin() as session:
                    await session.execute(
                        update(AuditEntry).where(AuditEntry.id == 2).values(object_id="forged")
                    )
        finally:
            await engine.dispose()

    asyncio.run(setup(tamper=False))
    assert main(["audit", "verify"]) == 0
    out, err = capsys.readouterr()
    assert out == "4 entries, chain intact\n" and err.startswith("head ")
    asyncio.run(setup(tamper=True))
    assert main(["audit", "verify"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "alerts: audit log: entry 2 does not match its hash: it was changed after it was written "
        "(1 entries before it hold)\n"
    )


@pytest.mark.skipif(
    not PG_ADMIN_URL, reason="the table lock is PostgreSQL's; SQLite serialises writers itself"
)
async def test_the_lock_is_taken_on_postgresql(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions.begin() as session:
            await audit.record(
                session, user_id=None, action="test.x", object_type="alert", object_id=1, now=NOW
            )
            mode = await session.scalar(
                text(
                    "SELECT mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE c.relname = 'audit_log' AND l.pid = pg_backend_pid() AND mode = 'ShareRowExclusiveLock'"
                )
            )
            assert mode == "ShareRowExclusiveLock"
    finally:
        await engine.dispose()
