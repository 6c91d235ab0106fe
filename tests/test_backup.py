"""``alerts backup FILE`` and the restore docs/operate/backups.md describes: a consistent SQLite
copy taken while writers run, restored and opened by alerts; for PostgreSQL, the printed pg_dump
command run for real and restored with pg_restore."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alerts.cli.demo import seed
from alerts.cli.parser import main
from alerts.core.config import Settings
from alerts.core.errors import Conflict, NotFound
from alerts.ops.backup import backup_sqlite, pg_dump_command
from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade
from alerts.store.models import Alert, Contact
from tests.conftest import PG_ADMIN_URL, pg_execute

SECRET = "backup-test-secret-0123456789"


async def counts(url: str) -> tuple[int, int]:
    """(alerts, contacts) in the database at ``url``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            alerts = (await conn.execute(select(func.count()).select_from(Alert))).scalar_one()
            contacts = (await conn.execute(select(func.count()).select_from(Contact))).scalar_one()
    finally:
        await engine.dispose()
    return alerts, contacts


def seeded(url: str) -> None:
    asyncio.run(seed(Settings().replace("database", url=url).replace("server", secret_key=SECRET)))


async def test_a_backup_taken_while_writers_run_is_consistent(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    engine = create_engine(url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:  # enough pages that the copy takes a while
        session.add_all(Contact(name=f"c{i}", email=f"c{i}@example.org", email_key=f"c{i}@example.org",
                                kind="public", token=uuid.uuid4().hex) for i in range(5000))  # fmt: skip
    stop = asyncio.Event()
    written = 0

    async def writer() -> None:
        nonlocal written
        while not stop.is_set():
            async with sessions.begin() as session:
                session.add(Contact(name="w", email=None, kind="public", token=uuid.uuid4().hex))
            written += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    while written < 20:  # the writer is running
        await asyncio.sleep(0.01)
    done = await backup_sqlite(url, tmp_path / "backup.db")
    after_backup = written
    stop.set()
    await task
    await engine.dispose()
    assert 5020 <= done.contacts <= 5000 + after_backup
    assert (done.alerts, done.path) == (0, tmp_path / "backup.db")
    assert (tmp_path / "backup.db").stat().st_mode & 0o777 == 0o600  # personal data: owner only
    copy = sqlite3.connect(tmp_path / "backup.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        assert copy.execute("SELECT count(*) FROM contacts").fetchone() == (done.contacts,)
    finally:
        copy.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


async def test_an_existing_file_or_a_missing_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    with pytest.raises(NotFound, match="no database at .*alerts.db"):
        await backup_sqlite(url, tmp_path / "b.db")
    sqlite3.connect(tmp_path / "alerts.db").close()
    (tmp_path / "b.db").write_bytes(b"yesterday's backup")
    with pytest.raises(Conflict, match="exists; choose a new name"):
        await backup_sqlite(url, tmp_path / "b.db")
    assert (tmp_path / "b.db").read_bytes() == b"yesterday's backup"
    with pytest.raises(NotFound, match="folder .* does not exist"):
        await backup_sqlite(url, tmp_path / "nope" / "b.db")


def test_the_documented_sqlite_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/operate/backups.md: back up, lose the database, copy the backup back, `alerts init`."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("ALERTS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALERTS_SERVER_SECRET_KEY", SECRET)
    seeded("sqlite+aiosqlite:///alerts.db")
    assert main(["alert", "status", "1", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["backup", "backup-1.db"]) == 0
    assert re.fullmatch(
        r".*backup-1\.db: [\d,]+ bytes, 1 alert\(s\), \d+ contact\(s\)\n", capsys.readouterr().out
    )
    for path in tmp_path.glob("alerts.db*"):  # the disk died
        path.unlink()
    shutil.copy(tmp_path / "backup-1.db", tmp_path / "alerts.db")
    assert main(["init"]) == 0  # migrates a backup from an older version; keeps its users
    assert main(["alert", "status", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == before


def test_postgresql_prints_pg_dump_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://alerts:s3cret-pw@db.example.org:5433/alerts"
    assert pg_dump_command(url, Path("/backups/alerts 1.dump")) == (
        "pg_dump --format=custom '--file=/backups/alerts 1.dump' --host=db.example.org --port=5433 "
        "--username=alerts alerts"
    )
    os.environ["ALERTS_DATABASE_URL"] = url
    try:
        assert main(["backup", "alerts.dump"]) == 0
    finally:
        del os.environ["ALERTS_DATABASE_URL"]
    out = capsys.readouterr().out
    assert "s3cret" not in out and "pg_dump --format=custom --file=alerts.dump" in out


@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (ALERTS_TEST_DATABASE_URL)")
async def test_the_pg_dump_command_backs_up_and_pg_restore_restores(db_url: str, tmp_path: Path) -> None:
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("needs pg_dump and pg_restore (Debian: postgresql-client)")
    await asyncio.to_thread(seeded, db_url)
    source = await counts(db_url)
    dump = tmp_path / "alerts.dump"
    command = shlex.split(pg_dump_command(db_url, dump))
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, timeout=120)
    restored = f"alerts_r_{uuid.uuid4().hex[:10]}"
    await pg_execute(f'CREATE DATABASE "{restored}"')
    try:
        target = f"{db_url.rpartition('/')[0]}/{restored}"
        args = ["pg_restore", "--no-owner", f"--dbname={target.replace('+asyncpg', '')}", str(dump)]
        await asyncio.to_thread(subprocess.run, args, check=True, capture_output=True, timeout=120)
        assert await counts(target) == source and source[0] == 1
    finally:
        await pg_execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
