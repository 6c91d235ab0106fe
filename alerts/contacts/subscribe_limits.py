"""The public subscribe form's limits, kept in the database so that they hold across several
``serve`` processes and survive a restart (as ``alerts.accounts.signin_limits`` does for sign-in).

Every ``POST /subscribe`` with a valid form is counted against its client network (``requests``
in ``request_window``; IPv4 /24, IPv6 /64, ``alerts.core.networks``); past that it is refused
(too many requests) and nothing is recorded. A request let through spends one confirmation
mail of three hourly budgets: the service's, the client network's and the recipient domain's,
so strangers cannot use up the service's budget from one network, nor starve one domain's
subscribers from many. When a budget is spent the request is held back: it is counted, nothing
else is recorded, and the subscriber is told to retry later.

The budgets are spent for every request let through, whatever its address (new, pending,
subscribed, suppressed, or a contact an officer entered): a held-back answer, and the work
done, say nothing about the address. ``admit`` runs in the subscribe transaction and takes
the same statements every time: concurrent ones take turns (``alerts.store.db.take_turns``).
Keys are SHA-256 digests: fixed length, whatever a client sends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.store.db import take_turns
from alerts.store.models import SubscribeAttempt


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How many subscribe requests and confirmation mails are allowed, and in what windows."""

    requests: int = 5  # subscribe requests per client network in request_window
    request_window: int = 10 * 60
    service_mails: int = 200  # confirmation mails per mail_window, the whole service
    network_mails: int = 5  # ... per client network
    domain_mails: int = 50  # ... per recipient domain
    mail_window: int = 3600


class Refusal(StrEnum):
    """Why a subscribe request was not let through."""

    TOO_MANY = "too_many"  # the client network sent too many requests: nothing recorded
    HELD = "held"  # a confirmation-mail budget is spent: counted, nothing else recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What ``admit`` decided: let through (``refusal`` None) or refused for ``retry_after`` seconds."""

    refusal: Refusal | None
    retry_after: int = 0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


async def _wait(db: AsyncSession, key: str, limit: int, window: int, now: datetime) -> int:
    """Seconds until ``key`` has room again in its window (0: room now): the ``limit``-th newest
    count in the window must leave it first."""
    full = await db.scalar(
        select(SubscribeAttempt.at)
        .where(SubscribeAttempt.key == key, SubscribeAttempt.at > now - timedelta(seconds=window))
        .order_by(SubscribeAttempt.at.desc())
        .offset(max(limit, 1) - 1)
        .limit(1)
    )
    if full is None:
        return 0
    return max(1, int((full + timedelta(seconds=window) - now).total_seconds()) + 1)


async def admit(db: AsyncSession, *, network: str, domain: str, limits: Limits, now: datetime) -> Admission:
    """Count a subscribe request from ``network`` for an address at ``domain``; spend its
    confirmation mail unless a budget is spent. Flushes, never commits (the caller's transaction
    holds the request's other work too, so a refusal there rolls everything back)."""
    request = _digest(f"subscribe|{network}")
    budgets = (
        (_digest("mails|service"), limits.service_mails),
        (_digest(f"mails-network|{network}"), limits.network_mails),
        (_digest(f"mails-domain|{domain.lower()}"), limits.domain_mails),
    )
    await take_turns(db, (request, *(key for key, _ in budgets)))
    oldest = now - timedelta(seconds=max(limits.request_window, limits.mail_window))
    await db.execute(delete(SubscribeAttempt).where(SubscribeAttempt.at < oldest))
    too_many = await _wait(db, request, limits.requests, limits.request_window, now)
    held = 0
    for key, limit in budgets:  # read every budget, whatever the first said: the same work
        held = max(held, await _wait(db, key, limit, limits.mail_window, now))
    if too_many:
        return Admission(refusal=Refusal.TOO_MANY, retry_after=too_many)
    spent = [request] if held else [request, *(key for key, _ in budgets)]
    await db.execute(insert(SubscribeAttempt), [{"key": key, "at": now} for key in spent])
    if held:
        return Admission(refusal=Refusal.HELD, retry_after=held)
    return Admission(refusal=None)
