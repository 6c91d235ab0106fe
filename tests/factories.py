"""Build real rows for tests through the service's own functions (no shortcuts past them
except bulk contact inserts, which the CSV import tests cover separately)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.compose import approval, drafts
from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.models import Alert, Contact, ContactList, ListMember, User

RENDERER = Renderer()


async def make_users(session: AsyncSession) -> tuple[User, User]:
    """An officer (author) and a reviewer (second person)."""
    officer, _ = await users.create_user(session, name="olga", role="officer", now=utcnow())
    reviewer, _ = await users.create_user(session, name="rafael", role="reviewer", now=utcnow())
    return officer, reviewer


async def add_contacts(
    session: AsyncSession,
    n: int,
    *,
    list_name: str = "urgent-appeals",
    kind: str = "authority",
    language: str = "en",
    telegram: bool = False,
    email: bool = True,
    start: int = 0,
) -> list[int]:
    """n contacts in one list, bulk-inserted."""
    lst = (
        await session.execute(select(ContactList).where(ContactList.name == list_name))
    ).scalar_one_or_none()
    if lst is None:
        lst = ContactList(name=list_name)
        session.add(lst)
        await session.flush()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for i in range(start, start + n):
        addr = f"person{i}@example.org" if email else None
        rows.append(
            {
                "name": f"Person {i}",
                "email": addr,
                "email_key": addr,
                "telegram": str(100000 + i) if telegram else None,
                "kind": kind,
                "language": language,
                "status": "active",
                "token": secrets.token_urlsafe(16),
                "created_at": now,
                "updated_at": now,
            }
        )
    ids = list((await session.execute(insert(Contact).returning(Contact.id), rows)).scalars().all())
    await session.execute(insert(ListMember), [{"list_id": lst.id, "contact_id": i} for i in ids])
    return ids


async def approved_alert(
    session: AsyncSession,
    *,
    author: User,
    reviewer: User,
    lists: Sequence[str] = ("urgent-appeals",),
    kinds: Sequence[str] = (),
    channels: Sequence[str] = ("email",),
    languages: Sequence[str] = ("en",),
    family: str = "urgent-appeal",
    parent_id: int | None = None,
    fallback_email: bool = False,
) -> Alert:
    """A draft from the family's example case, submitted and approved by a second person."""
    now = utcnow()
    alert = await drafts.create_alert(
        session,
        author=author,
        family=family,
        case_data=RENDERER.example(family),
        audience=drafts.Audience(
            lists=tuple(lists), kinds=tuple(kinds), channels=tuple(channels), languages=tuple(languages)
        ),
        is_public=False,
        validate_case=RENDERER.validate_case,
        now=now,
    )
    alert.parent_id = parent_id
    alert.fallback_email = fallback_email
    await approval.submit(session, alert, user=author, now=now)
    await approval.approve(session, alert, user=reviewer, now=now)
    return alert


async def published_alert(sessions: async_sessionmaker[AsyncSession], n: int, **kw: Any) -> int:
    """Users, n contacts, an approved alert fanned out; returns the alert id."""
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        await add_contacts(session, n, telegram="telegram" in kw.get("channels", ()))
        alert = await approved_alert(session, author=officer, reviewer=reviewer, **kw)
        await publish(session, alert, now=utcnow())
        return alert.id


async def our_message_id(
    sessions: async_sessionmaker[AsyncSession], alert_id: int, contact_id: int, domain: str = "alerts.test"
) -> str:
    """The Message-ID the service gives the alert's message to this contact (with its MAC)."""
    from alerts.delivery.messages import message_id

    async with sessions() as session:
        token = await session.scalar(select(Contact.token).where(Contact.id == contact_id))
    return message_id(alert_id, contact_id, domain, token)
