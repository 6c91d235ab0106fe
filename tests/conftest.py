"""Shared fixtures: a real, migrated database per test (SQLite file copy, or a PostgreSQL
database cloned from a template when ALERTS_TEST_DATABASE_URL names a server)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.store.db import create_engine, make_sessionmaker
from alerts.store.migrate import upgrade

pytest_plugins = ["tests.smtpd", "tests.botapi", "tests.dnsd"]

PG_ADMIN_URL = os.environ.get(
    "ALERTS_TEST_DATABASE_URL", ""
)  # e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test


def pg_url(name: str) -> str:
    base, _, _db = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def pg_execute(sql: str) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """The tests run on the event loop the service runs on (alerts/core/loop.py): uvloop, or
    asyncio's own with ``ALERTS_SERVER_EVENT_LOOP=asyncio``, which the services the tests start
    read as their ``[server] event_loop`` too."""
    from alerts.core.loop import chosen, loop_factory

    try:
        name = chosen(os.environ)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return {name: loop_factory(name)}


@pytest.fixture(autouse=True, scope="session")
def _render_time_limit_for_the_mutation_run() -> None:
    """bench/mutation.py runs the tests through mutmut's trampolines, which call every function
    of the sandbox through a lookup: a render that takes milliseconds can pass the sandbox's
    two-second wall-clock limit on a busy machine, and one such failure stops the whole run. The
    limit is a guard against templates that never end; no test measures it."""
    if os.environ.get("ALERTS_MUTATION_RUN"):
        from alerts.compose import sandbox

        sandbox.MAX_SECONDS = 60


@pytest.fixture(autouse=True)
def _hot_statements_built_afresh() -> None:
    """The claim and the recorder build their statements once per process (``functools.cache``).
    The mutation run (bench/mutation.py) forks a child per mutant from a process whose caches
    the unmutated code filled, so a mutant in what builds them was never run: each test builds
    them again (a few milliseconds), and the tests that reach them are the ones mutmut maps."""
    from alerts.delivery import claim, recorder

    for built in (claim._candidates, claim._take, recorder._writes):
        built.cache_clear()


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated template database, built once per test run."""
    if PG_ADMIN_URL:
        name = f"alerts_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(pg_execute(f'CREATE DATABASE "{name}"'))
        asyncio.run(_migrate(pg_url(name)))
        yield name
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        yield str(path)


@pytest.fixture
def db_url(db_template: str, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database for one test; its URL."""
    if PG_ADMIN_URL:
        name = f"alerts_t_{uuid.uuid4().hex[:10]}"
        asyncio.run(pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{db_template}"'))
        yield pg_url(name)
        asyncio.run(pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        path = tmp_path / "alerts.db"
        shutil.copyfile(db_template, path)
        yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's own database."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The session factory for the test's database."""
    return make_sessionmaker(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session on the test's database."""
    async with sessions() as s:
        yield s
