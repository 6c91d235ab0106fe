"""``alerts backup FILE``: a consistent copy of the database while the service runs.

SQLite: the library's online backup API copies every page under one read transaction, so the
copy is the database as of one instant, however busy the writers (in WAL mode a reader never
blocks them). The copy is written beside FILE under a temporary name, checked
(``PRAGMA quick_check``), made a single self-contained file (rollback journal, not WAL), made
readable by its owner only (it holds contacts' personal data) and renamed into place: FILE is
either a whole, checked backup or absent.

PostgreSQL: ``pg_dump`` is the tool (consistent by design, restorable with ``pg_restore``);
``backup_command`` writes its command line, without the password.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.ops.local import sqlite_file


@dataclass(frozen=True, slots=True, kw_only=True)
class Backup:
    """A finished SQLite backup."""

    path: Path
    size: int
    alerts: int
    contacts: int


async def backup_sqlite(url: str, target: Path) -> Backup:
    """Copy the SQLite database at ``url`` to ``target`` (which must not exist yet)."""
    source = sqlite_file(url)
    if source is None:
        raise ValidationError("[database] url is not a SQLite file", details={"url": "database.url"})
    if not source.is_file():
        raise NotFound(f"no database at {source} (did `alerts init` run?)")
    target = target.resolve()
    if target.exists():
        raise Conflict(f"{target} exists; choose a new name (backups are never overwritten)")
    if not target.parent.is_dir():
        raise NotFound(f"folder {target.parent} does not exist")
    return await asyncio.to_thread(_copy, source, target)


def _copy(source: Path, target: Path) -> Backup:
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise ValidationError(f"the copy failed its check: {check}")
                alerts = dst.execute("SELECT count(*) FROM alerts").fetchone()[0]
                contacts = dst.execute("SELECT count(*) FROM contacts").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Backup(path=target, size=target.stat().st_size, alerts=alerts, contacts=contacts)


def pg_dump_command(url: str, target: Path) -> str:
    """The ``pg_dump`` command line that backs up the PostgreSQL database at ``url``."""
    parts = make_url(url)
    args = ["pg_dump", "--format=custom", f"--file={target}"]
    if parts.host:
        args.append(f"--host={parts.host}")
    if parts.port:
        args.append(f"--port={parts.port}")
    if parts.username:
        args.append(f"--username={parts.username}")
    args.append(parts.database or "")
    return shlex.join(args)
