"""Scenes the delivery tests share: an alert that reached authorities and the public with
the defender's consent, and the moves that withdraw it (through the service's own functions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.compose import approval
from alerts.core.clock import utcnow
from alerts.delivery.publish import publish
from alerts.store.models import Alert, Contact, Delivery, User
from tests.factories import add_contacts, approved_alert, make_users


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicCase:
    """An alert fanned out to authorities and public contacts with public consent."""

    alert_id: int
    authorities: list[int]
    public: list[int]


async def staff(session: AsyncSession) -> tuple[User, User]:
    """The officer and reviewer made by ``make_users`` (loaded again in a new session)."""
    return await users.get_user(session, "olga"), await users.get_user(session, "rafael")


async def public_case(
    sessions: async_sessionmaker[AsyncSession],
    *,
    authorities: int = 2,
    public: int = 2,
    channels: tuple[str, ...] = ("email",),
    kinds: tuple[str, ...] = ("authority", "public"),
    now: datetime | None = None,
) -> PublicCase:
    """Authorities and public contacts on one list, an alert to both, consent public, fanned out.

    ``kinds=()``: the alert names only the list (not addressed to the public as such), and its
    public members get it because consent was recorded.
    """
    now = now or utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        with_telegram = "telegram" in channels
        auth, pub = [], []
        if authorities:
            auth = await add_contacts(session, authorities, kind="authority", telegram=with_telegram)
        if public:
            pub = await add_contacts(session, public, kind="public", start=100, telegram=with_telegram)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, kinds=kinds, channels=channels
        )
        alert.is_public = "public" in kinds
        await approval.record_consent(session, alert, user=reviewer, scope="public", now=now)
        await publish(session, alert, now=now)
        return PublicCase(alert_id=alert.id, authorities=auth, public=pub)


async def set_consent(
    sessions: async_sessionmaker[AsyncSession], alert_id: int, scope: str, *, now: datetime | None = None
) -> None:
    """Record the defender's consent (``restricted`` withdraws it) as an officer would."""
    async with sessions.begin() as session:
        _, reviewer = await staff(session)
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        await approval.record_consent(session, alert, user=reviewer, scope=scope, now=now or utcnow())


async def mark_sent(sessions: async_sessionmaker[AsyncSession], alert_id: int) -> None:
    """Every delivery of the alert went out (as if a dispatcher had sent them), the alert is sent."""
    async with sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="sent"))
        await session.execute(update(Alert).where(Alert.id == alert_id).values(status="sent"))


async def public_update(
    sessions: async_sessionmaker[AsyncSession],
    parent_id: int,
    *,
    consent: str | None = "public",
    publish_it: bool = True,
    now: datetime | None = None,
) -> int:
    """An update to the original's recipients, with its own consent, published unless told not."""
    now = now or utcnow()
    async with sessions.begin() as session:
        officer, reviewer = await staff(session)
        follow = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            family="update",
            kinds=("authority", "public"),
            parent_id=parent_id,
        )
        follow.is_public = True
        if consent is not None:
            await approval.record_consent(session, follow, user=reviewer, scope=consent, now=now)
        if publish_it:
            await publish(session, follow, now=now)
        return follow.id


async def states_by_contact(
    sessions: async_sessionmaker[AsyncSession], alert_id: int
) -> dict[int | None, str]:
    """{contact id: state} of the alert's deliveries."""
    async with sessions() as session:
        rows = await session.execute(
            select(Delivery.contact_id, Delivery.state).where(Delivery.alert_id == alert_id)
        )
        return {contact: state for contact, state in rows.all()}


async def set_email(sessions: async_sessionmaker[AsyncSession], contact_id: int, email: str) -> None:
    """Give a contact an address in another case (``Jane@X.org``), as an import may store it."""
    async with sessions.begin() as session:
        await session.execute(
            update(Contact).where(Contact.id == contact_id).values(email=email, email_key=email.lower())
        )


LATER = timedelta(seconds=1)
