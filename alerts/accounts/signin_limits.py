"""Sign-in limits and account locks, kept in the database so that they survive a restart and
hold across several ``serve`` processes.

Every attempt is counted against three keys and, if no limit is full, written as a row against
each before its password is checked (so attempts in flight count as failures, in every
process); otherwise it is refused before any password is checked:

- the account at a client network (``ACCOUNT_NETWORK_LIMIT`` in ``WINDOW``): someone guessing
  from elsewhere cannot lock a real officer out of their own network;
- the client network (``NETWORK_LIMIT`` in ``WINDOW``, any account): IPv4 /24, IPv6 /64;
- the account from anywhere: after ``ACCOUNT_FREE`` failures in ``ACCOUNT_WINDOW`` each
  further attempt waits twice as long as the last (``2 s``, ``4 s``, … up to ``MAX_DELAY``)
  after the latest failure; at ``ACCOUNT_LOCK`` failures the account is locked until an admin
  unlocks it (``alerts users unlock NAME`` or the users page).

Counting and writing are one transaction, and concurrent ones on the same keys take turns
(``_serialise``), so parallel requests, in one process or several, cannot slip past a limit. A success
deletes the account's rows (its reservation and earlier failures); a failure keeps them.
Keys are SHA-256 digests: fixed length, whatever a client sends as a name.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.core.errors import AlertsError
from alerts.core.networks import network_of
from alerts.store.models import SignInAttempt, SignInLock

logger = logging.getLogger(__name__)

ACCOUNT_NETWORK_LIMIT = 5  # failures per account from one network in WINDOW
NETWORK_LIMIT = 20  # failures per network in WINDOW, whatever the account
WINDOW = 15 * 60
ACCOUNT_FREE = 10  # failures per account, from anywhere, before each attempt must wait
ACCOUNT_LOCK = 30  # failures per account in ACCOUNT_WINDOW: locked until an admin unlocks
ACCOUNT_WINDOW = 24 * 3600
MAX_DELAY = 15 * 60
TOO_MANY = "too many failed sign-in attempts; try again in {minutes} minutes"
LOCKED = "sign-in to this account is locked after too many failed attempts; an admin can unlock it"


class TooManyAttempts(AlertsError):
    """Sign-in refused for a while after repeated failures."""

    code, http_status = "rate_limited", 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            TOO_MANY.format(minutes=max(1, -(-retry_after // 60))), details={"retry_after": retry_after}
        )
        self.retry_after = retry_after


class AccountLocked(AlertsError):
    """Sign-in refused until an admin unlocks the account."""

    code, http_status = "account_locked", 423


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def account_key(name: str) -> str:
    """The limit key of an account name (as typed at sign-in, trimmed)."""
    return _digest(f"account|{name.strip()}")


@dataclass(frozen=True, slots=True)
class Reservation:
    """An attempt let through: its rows, to be kept (failed) or dropped with the account's (succeeded)."""

    ids: tuple[int, ...]
    account: str
    account_network: str


def _keys(name: str, address: str) -> tuple[str, str, str]:
    network = network_of(address)
    return (
        account_key(name),
        _digest(f"account-network|{name.strip()}|{network}"),
        _digest(f"network|{network}"),
    )


async def _recent(db: AsyncSession, key: str, since: datetime) -> list[datetime]:
    """When the attempts of ``key`` since ``since`` were made (failed or in flight), newest first."""
    rows = await db.scalars(
        select(SignInAttempt.at)
        .where(SignInAttempt.key == key, SignInAttempt.at > since)
        .order_by(SignInAttempt.at.desc())
    )
    return list(rows)


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds()) + 1)


async def _serialise(db: AsyncSession, keys: tuple[str, ...]) -> None:
    """Make concurrent reservations of these keys take turns until commit.

    SQLite: every writing transaction begins IMMEDIATE, so they take turns already.
    PostgreSQL: a transaction-scoped advisory lock per key, taken in one order (no deadlock).
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(keys):
        lock_id = int.from_bytes(bytes.fromhex(key[:16]), "big", signed=True)
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


async def reserve(
    sessions: async_sessionmaker[AsyncSession], name: str, address: str, *, now: datetime
) -> Reservation:
    """Count an attempt against its limits; TooManyAttempts or AccountLocked if one is full.

    Check and reservation are one transaction whose keys are taken in turn (``_serialise``),
    so of attempts made at once, in one process or several, exactly as many as the limits
    allow go on to have their password checked.
    """
    account, account_network, network = _keys(name, address)
    wait, lock = 0, False
    async with sessions.begin() as db:
        await _serialise(db, (account, account_network, network))
        if await db.get(SignInLock, account) is not None:
            raise AccountLocked(LOCKED)
        await db.execute(
            delete(SignInAttempt).where(SignInAttempt.at < now - timedelta(seconds=ACCOUNT_WINDOW))
        )
        window = now - timedelta(seconds=WINDOW)
        for key, limit in ((account_network, ACCOUNT_NETWORK_LIMIT), (network, NETWORK_LIMIT)):
            times = await _recent(db, key, window)
            if len(times) >= limit:
                wait = max(wait, _seconds(times[limit - 1] + timedelta(seconds=WINDOW) - now))
        times = await _recent(db, account, now - timedelta(seconds=ACCOUNT_WINDOW))
        if len(times) >= ACCOUNT_LOCK:
            lock = True
            db.add(SignInLock(key=account, locked_at=now))
        elif len(times) >= ACCOUNT_FREE:
            delay = timedelta(seconds=min(MAX_DELAY, 2 ** (len(times) - ACCOUNT_FREE + 1)))
            if times[0] + delay > now:
                wait = max(wait, _seconds(times[0] + delay - now))
        mine: tuple[int, ...] = ()
        if not (wait or lock):
            rows = [SignInAttempt(key=key, at=now) for key in (account, account_network, network)]
            db.add_all(rows)
            await db.flush()
            mine = tuple(row.id for row in rows)
    if lock:
        logger.warning("sign-in locked for an account after %d failed attempts", ACCOUNT_LOCK)
        raise AccountLocked(LOCKED)
    if wait:
        logger.info("sign-in refused: too many failures")
        raise TooManyAttempts(wait)
    return Reservation(ids=mine, account=account, account_network=account_network)


async def failed(sessions: async_sessionmaker[AsyncSession], held: Reservation, *, now: datetime) -> None:
    """The attempt failed: its rows stay, as failures, dated now."""
    async with sessions.begin() as db:
        await db.execute(update(SignInAttempt).where(SignInAttempt.id.in_(held.ids)).values(at=now))


async def succeeded(sessions: async_sessionmaker[AsyncSession], held: Reservation) -> None:
    """The attempt succeeded: the account's failures are forgotten (the network's stay)."""
    async with sessions.begin() as db:
        await db.execute(
            delete(SignInAttempt).where(
                SignInAttempt.id.in_(held.ids) | SignInAttempt.key.in_((held.account, held.account_network))
            )
        )


async def passed(sessions: async_sessionmaker[AsyncSession], held: Reservation) -> None:
    """The password was right but a second factor is still due: this attempt is not counted,
    and the account's earlier failures stay (only a complete sign-in forgets them)."""
    async with sessions.begin() as db:
        await db.execute(delete(SignInAttempt).where(SignInAttempt.id.in_(held.ids)))


async def unlock(db: AsyncSession, name: str) -> bool:
    """Lift the lock of an account and forget its failures; whether it was locked."""
    key = account_key(name)
    found = await db.get(SignInLock, key)
    if found is not None:
        await db.delete(found)
    await db.execute(delete(SignInAttempt).where(SignInAttempt.key == key))
    await db.flush()
    return found is not None


async def locked(db: AsyncSession, names: list[str]) -> set[str]:
    """Which of these account names are locked."""
    keys = {account_key(name): name for name in names}
    found = await db.scalars(select(SignInLock.key).where(SignInLock.key.in_(list(keys))))
    return {keys[key] for key in found}
