"""Async engine and sessions; the SQLite/PostgreSQL differences live here."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    FromClause,
    String,
    any_,
    bindparam,
    column,
    event,
    func,
    select,
    text,
    type_coerce,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeEngine

from alerts.core.errors import ConfigError


def is_sqlite(url: str) -> bool:
    """Whether the database URL names SQLite."""
    return url.startswith("sqlite")


#: RETURNING (3.35) and UPDATE … FROM (3.33); JSON functions are built in since 3.38 and
#: compiled into nearly every earlier build.
SQLITE_MINIMUM = (3, 35, 0)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine tuned for the backend: WAL, foreign keys and a busy timeout on SQLite."""
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite(url):
        check_sqlite_version(sqlite3.sqlite_version_info)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 10
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        _configure_sqlite(engine)
    return engine


def check_sqlite_version(found: tuple[int, int, int]) -> None:
    """ConfigError unless the SQLite library Python links against is recent enough."""
    if tuple(found) < SQLITE_MINIMUM:
        need, have = ".".join(map(str, SQLITE_MINIMUM)), ".".join(map(str, found))
        raise ConfigError(
            f"[database] url: SQLite {need} or newer is needed; this Python links against SQLite {have}. "
            "Use a newer Python build or PostgreSQL."
        )


def _switch_to_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, waiting its turn: on a new database file, processes that
    start at once (``serve`` and a CLI command, or several workers) each try to switch
    it, and SQLite answers "database is locked" at once, without its busy timeout, to all but
    the one that holds the lock (retried for up to 30 s, as long as the busy timeout)."""
    for attempt in range(300):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, wrapped by the async adapter
            if "database is locked" not in str(exc) or attempt == 299:
                raise
            # blocks this process's loop for 0.1 s a try; only ever while another process
            # sets up a new database file
            time.sleep(0.1)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy issue BEGIN itself (BEGIN IMMEDIATE), so a writer takes the lock
        # up front instead of failing on upgrade from a read lock.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        # a fan-out to a million writes hundreds of MB of WAL in one transaction; once
        # checkpointed, give the space back instead of keeping the file at its high-water mark
        cur.execute("PRAGMA journal_size_limit=67108864")
        cur.close()
        # SQLite's own lower() folds ASCII only; search compares Unicode text (see lower()).
        dbapi_conn.create_function(UNICODE_LOWER, 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (see make_read_sessionmaker) take no lock: in WAL mode they never block
        # the writer, and the writer never blocks them.
        read_only = bool(conn.get_execution_options().get(READ_ONLY, False))
        if conn.info.get(QUERY_ONLY, False) != read_only:
            # a write in a read session fails ("attempt to write a readonly database") instead
            # of taking the lock; the flag is the connection's, so set as each transaction needs
            conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            conn.info[QUERY_ONLY] = read_only
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "alerts_read_only"
QUERY_ONLY = "alerts_query_only"  # a pooled SQLite connection's PRAGMA query_only, as last set
UNICODE_LOWER = "unicode_lower"


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class lower(GenericFunction[str]):  # an SQL function, named as in SQL
    """``lower(x)`` that folds every script's case on both databases, as ``str.lower`` does.

    PostgreSQL's ``lower`` follows the database's (UTF-8) locale; SQLite's built-in one folds
    ASCII only (``Élise`` stays ``Élise``), so on SQLite it calls the Python function that
    every connection registers (``_configure_sqlite``).
    """

    type = String()
    inherit_cache = True


@compiles(lower, "sqlite")
def _lower_sqlite(element: lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for pure reads (pages, GET handlers, polls, /metrics): on SQLite they begin a
    deferred transaction, so they never queue behind, or hold up, the one writer.

    A write in them fails on both databases: SQLite's ``PRAGMA query_only`` is on for their
    transactions, and PostgreSQL's are ``READ ONLY``.
    """
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return async_sessionmaker(engine.execution_options(**options), expire_on_commit=False)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def dialect_insert(session: AsyncSession, model: Any) -> Any:
    """The backend's own INSERT, which knows ``ON CONFLICT`` (SQLite and PostgreSQL alike)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # loaded with the driver; not for SQLite's CLI

        return postgresql.insert(model)
    return sqlite.insert(model)


def commits_in_id_order(session: AsyncSession) -> bool:
    """Whether rows become visible in the order of their ids, so that a reader who saw id n
    will never see a new row with a lower one.

    SQLite: one writer at a time takes its ids (the highest + 1) and commits before the next
    begins. PostgreSQL hands out ids from a sequence before commit: a transaction holding a
    lower id may commit after one holding a higher.
    """
    return session.get_bind().dialect.name != "postgresql"


async def take_turns(session: AsyncSession, keys: Sequence[str]) -> None:
    """Make concurrent transactions on these keys (hex digests) take turns until commit.

    SQLite: every writing transaction begins IMMEDIATE, so they take turns already.
    PostgreSQL: a transaction-scoped advisory lock per key, taken in one order (no deadlock).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(keys):
        lock_id = int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


def rowset(
    session: AsyncSession,
    name: str,
    columns: Sequence[tuple[str, TypeEngine[Any]]],
    rows: Sequence[dict[str, Any]],
) -> FromClause:
    """A batch of rows as one bound JSON parameter that the database unpacks into a table.

    ``UPDATE … FROM rowset`` or ``INSERT … SELECT … FROM rowset`` then writes a whole batch in one
    statement with one parameter, however many rows it has: no per-row statement executions
    (PostgreSQL) and no per-row parameter processing in SQLAlchemy (both). PostgreSQL unpacks it
    with ``json_to_recordset``, SQLite with ``json_each``. Datetimes are stored in the form the
    column type (models.UTCDateTime) would have written.

    A statement run for every batch is better built once with ``rowset_of`` and a named
    parameter, given ``rowset_json(rows)`` at execution: building it anew costs more than
    encoding the rows.
    """
    dialect = session.get_bind().dialect
    encoded = rowset_json(dialect, rows)
    return rowset_of(dialect.name, name, columns, bindparam(None, encoded, type_=String()))


def rowset_of(
    dialect: str, name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: BindParameter[str]
) -> FromClause:
    """The table that the JSON bound as ``rows`` (made by ``rowset_json``) unpacks into."""
    if dialect == "postgresql":
        recordset = func.json_to_recordset(sa_cast(rows, JSON))
        return recordset.table_valued(*(column(n, t) for n, t in columns)).render_derived(
            name, with_types=True
        )
    each = func.json_each(rows).table_valued("value")
    return select(
        *(type_coerce(func.json_extract(each.c.value, f"$.{n}"), t).label(n) for n, t in columns)
    ).subquery(name)


def rowset_json(dialect: Dialect, rows: Sequence[dict[str, Any]]) -> str:
    """The parameter of a rowset: the rows as a JSON array, datetimes as the database stores them."""
    return json.dumps(rows, default=_datetime_encoder(dialect), separators=(",", ":"))


def _datetime_encoder(dialect: Dialect) -> Callable[[Any], Any]:
    as_text = dialect.name == "sqlite"

    def encode(value: Any) -> Any:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError(f"{value!r} is not an aware datetime")
        value = value.astimezone(UTC)
        if as_text:
            # the very text SQLAlchemy's SQLite DATETIME writes (comparisons there are textual)
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value.isoformat()  # with its offset, for PostgreSQL's timestamptz

    return encode


def any_of(dialect: str, column: ColumnElement[int], name: str) -> ColumnElement[bool]:
    """``column`` is one of the ids bound as ``name``, as a statement whose text does not
    depend on how many ids there are.

    An expanded ``IN ($1, $2, …)`` is new SQL for every length: PostgreSQL (through asyncpg's
    statement cache) parsed and planned each claim afresh. ``= ANY($1::BIGINT[])`` is one
    prepared statement. SQLite has no arrays, and re-preparing is cheap there.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return column == any_(bindparam(name, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))
