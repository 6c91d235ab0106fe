"""Who a CLI command acts as, and the App it acts on (without channels unless it sends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.core.config import Settings
from alerts.core.errors import NotFound
from alerts.store.models import User


@asynccontextmanager
async def quiet_app(settings: Settings) -> AsyncIterator[App]:
    """The App with no channels: for commands that only read or write the database."""
    async with open_app(settings, channels={}) as app:
        yield app


async def named_user(session: AsyncSession, name: str | None) -> User:
    """The named user, or (no name) the first active admin."""
    if name:
        return await users.get_user(session, name)
    first_active = select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    admin = (await session.execute(first_active)).scalars().first()
    if admin is None:
        raise NotFound("no active admin user exists: run `alerts init` first, or pass --as USER.")
    return admin


async def actor(app: App, name: str | None) -> User:
    """The user the CLI acts as: ``--as NAME``, or the first active admin."""
    async with app.reads() as session:
        return await named_user(session, name)
