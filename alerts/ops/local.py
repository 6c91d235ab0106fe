"""The doctor's checks of this machine: database, SQLite's disk, the secret key, templates."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from alerts.compose.family_check import check_family
from alerts.compose.render import Renderer
from alerts.core.config import DEFAULT_SECRET, MIN_SECRET_LENGTH, Settings
from alerts.core.errors import AlertsError
from alerts.ops.findings import Finding, Level, Probes
from alerts.store.db import create_engine, is_sqlite
from alerts.store.migrate import alembic_config, current_revision

STRONG_SECRET_LENGTH = 32
NEW_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def shown_url(url: str) -> str:
    """A database URL as it may be printed: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


async def database(settings: Settings, probes: Probes) -> Finding:
    """Reachable, and migrated to this version's newest schema."""
    url = settings.database.url
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return Finding(
            check="database",
            level=Level.FAIL,
            detail=f"{shown_url(url)}: cannot connect: {reason}",
            fix="check [database] url (ALERTS_DATABASE_URL) and that the database server runs",
        )
    finally:
        await engine.dispose()
    if revision == head:
        return Finding(check="database", level=Level.OK, detail=f"{shown_url(url)}: schema {head}")
    if revision is None:
        detail, fix = "no schema yet", "run `alerts init` (creates the schema and the first admin)"
    elif revision in _known_revisions():
        detail, fix = f"schema {revision}, this version needs {head}", "run `alerts init` (it migrates)"
    else:
        detail = f"schema {revision} is unknown to this version (newer?)"
        fix = "install the version of alerts that wrote this database"
    return Finding(check="database", level=Level.FAIL, detail=f"{shown_url(url)}: {detail}", fix=fix)


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (None for PostgreSQL or an in-memory database)."""
    if not is_sqlite(url):
        return None
    name = make_url(url).database
    return Path(name).resolve() if name and name != ":memory:" else None


async def disk(settings: Settings, probes: Probes) -> Finding:
    """Room for SQLite to grow, and for a backup beside it."""
    path = sqlite_file(settings.database.url)
    if path is None:
        return Finding(
            check="disk", level=Level.OK, detail="not SQLite: the database server keeps its own disk"
        )
    folder = path.parent if path.parent.is_dir() else Path.cwd()
    free = shutil.disk_usage(folder).free
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    detail = f"{_size(free)} free in {folder} (database {_size(size)})"
    if free < probes.min_free_bytes:
        return Finding(
            check="disk",
            level=Level.FAIL,
            detail=detail,
            fix=f"free space below {_size(probes.min_free_bytes)}: SQLite stops writing when the disk is "
            "full; free some, or move the database (alerts backup, then [database] url)",
        )
    if free < max(probes.warn_free_bytes, 2 * size):
        return Finding(
            check="disk",
            level=Level.WARN,
            detail=detail,
            fix=f"keep at least {_size(max(probes.warn_free_bytes, 2 * size))} free: a backup needs as "
            "much room as the database, and the log of deliveries grows with every alert",
        )
    return Finding(check="disk", level=Level.OK, detail=detail)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n //= 1024
    return f"{n} TiB"


async def secret_key(settings: Settings, probes: Probes) -> Finding:
    """Long and random enough to sign links and sessions (never printed)."""
    key = settings.server.secret_key
    fix = f"set ALERTS_SERVER_SECRET_KEY to a new random value: {NEW_SECRET}"
    if key == DEFAULT_SECRET:
        return Finding(
            check="secret_key",
            level=Level.FAIL,
            fix=fix,
            detail="the shipped default: anyone could forge unsubscribe links and sign-in sessions",
        )
    if len(key) < MIN_SECRET_LENGTH:
        return Finding(
            check="secret_key",
            level=Level.FAIL,
            fix=fix,
            detail=f"{len(key)} characters; at least {MIN_SECRET_LENGTH} are needed",
        )
    if len(key) < STRONG_SECRET_LENGTH or len(set(key)) < 12:
        return Finding(
            check="secret_key",
            level=Level.WARN,
            fix=fix,
            detail=f"{len(key)} characters, {len(set(key))} different: guessable by a patient attacker",
        )
    return Finding(check="secret_key", level=Level.OK, detail=f"{len(key)} characters")


async def templates(settings: Settings, probes: Probes) -> Finding:
    """The shipped families load; the organisation's own ones pass ``alerts templates check``."""
    own = Path(settings.paths.templates) if settings.paths.templates else None
    renderer = Renderer(own_templates=own)
    names = renderer.families()
    problems: list[str] = []
    for name in names:
        if renderer.is_own(name):
            problems += [str(p) for p in check_family(renderer, name).problems]
        else:
            try:
                renderer.family(name)
            except AlertsError as exc:
                problems.append(exc.message)
    own_count = sum(renderer.is_own(name) for name in names)
    detail = f"{len(names)} families ({own_count} of your own)"
    if not names:
        return Finding(
            check="templates",
            level=Level.FAIL,
            detail=f"no template family in {renderer.templates_dir}",
            fix="reinstall alerts: the wheel ships the families in alerts/templates/",
        )
    if problems:
        return Finding(
            check="templates",
            level=Level.FAIL,
            detail=f"{detail}: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            fix=f"run `alerts templates check {own or renderer.templates_dir}` and fix what it lists",
        )
    return Finding(check="templates", level=Level.OK, detail=detail)
