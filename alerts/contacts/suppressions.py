"""Addresses that must receive nothing more, per channel.

An address is stored under its channel's address space and its *key*
(``alerts.core.channels``): ``email`` for the ``email`` and ``press`` channels, which both
deliver to email addresses, with the address lower-cased; a Telegram chat id or @name as
given. A suppression named for ``press`` is stored under ``email``, so it stops both. When a
contact is erased, the keys of their addresses are kept only as SHA-256 hashes
(``hashed_key``) with reason ``erased``, so that a later import can never mail them again
while nothing readable about them remains. ``is_suppressed`` checks both forms.

The fan-out excludes suppressed addresses in the same query that expands the audience::

    select(Contact).where(Contact.email_key.not_in(suppressed_keys("email")))

That works on plain keys only (SQLite has no SHA-256), so whenever an erased address comes
back (an import or a new contact), ``restore_erased`` writes its plain key again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ALL, address_space
from alerts.core.channels import address_key as channel_address_key
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.states import SuppressionReason
from alerts.store.db import dialect_insert
from alerts.store.models import Suppression

logger = logging.getLogger(__name__)

HASH_PREFIX = "sha256:"


def _space(channel: str) -> str:
    """The channel a suppression is stored under (press shares email's), or ValidationError."""
    if channel not in ALL:
        raise ValidationError(
            f"channel {channel!r} is not one of {', '.join(ALL)}", details={"field": "channel"}
        )
    return address_space(channel)


def address_key(channel: str, address: str) -> str:
    """The stored form of an address: email lower-cased, anything else as given (trimmed)."""
    _space(channel)
    key = address.strip()
    if not key:
        raise ValidationError("address is empty", details={"field": "address"})
    return channel_address_key(channel, key)


def hashed_key(channel: str, address: str) -> str:
    """The key kept for an erased contact: ``sha256:`` + hex digest of ``address_key``."""
    digest = hashlib.sha256(address_key(channel, address).encode("utf-8")).hexdigest()
    return HASH_PREFIX + digest


async def suppress(
    session: AsyncSession,
    *,
    channel: str,
    address: str,
    reason: SuppressionReason,
    detail: str = "",
    now: datetime | None = None,
) -> None:
    """Record that ``address`` on ``channel`` gets nothing more (idempotent; the latest reason wins)."""
    await _upsert(
        session,
        channel=_space(channel),
        key=address_key(channel, address),
        reason=reason,
        detail=detail,
        now=now,
    )
    logger.info("suppressed an address on %s (%s)", channel, reason.value)


async def _upsert(
    session: AsyncSession,
    *,
    channel: str,
    key: str,
    reason: SuppressionReason,
    detail: str,
    now: datetime | None,
) -> None:
    stmt = dialect_insert(session, Suppression).values(
        channel=channel, address_key=key, reason=reason.value, detail=detail, created_at=now or utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Suppression.channel, Suppression.address_key],
        set_={"reason": stmt.excluded.reason, "detail": stmt.excluded.detail},
    )
    await session.execute(stmt)


async def is_suppressed(session: AsyncSession, channel: str, address: str) -> bool:
    """Whether ``address`` on ``channel`` is suppressed (plainly, or as an erased hash)."""
    keys = (address_key(channel, address), hashed_key(channel, address))
    found = await session.scalar(
        select(Suppression.id)
        .where(Suppression.channel == _space(channel), Suppression.address_key.in_(keys))
        .limit(1)
    )
    return found is not None


async def unsuppress(
    session: AsyncSession, *, channel: str, address: str, include_erased: bool = False
) -> bool:
    """Lift a suppression; an erasure's hash only with ``include_erased`` (new, explicit consent).

    Returns whether anything was removed.
    """
    keys = [address_key(channel, address)]
    if include_erased:
        keys.append(hashed_key(channel, address))
    result = await session.execute(
        delete(Suppression).where(Suppression.channel == _space(channel), Suppression.address_key.in_(keys))
    )
    removed = bool(getattr(result, "rowcount", 0))
    if removed:
        logger.info("suppression lifted on %s", channel)
    return removed


def suppressed_keys(channel: str) -> Select[str]:
    """``SELECT address_key`` of the channel's suppressions, to exclude in one query."""
    return select(Suppression.address_key).where(Suppression.channel == _space(channel))


async def hash_for_erasure(
    session: AsyncSession, addresses: Iterable[tuple[str, str]], *, now: datetime
) -> int:
    """Replace the plain suppressions of (channel, address) pairs by hashed ``erased`` ones.

    Every pair gets a hashed row whether it was suppressed before or not, so the erased
    person is never contacted there again. Returns the number of hashed rows written.
    """
    count = 0
    for channel, address in addresses:
        await session.execute(
            delete(Suppression).where(
                Suppression.channel == _space(channel),
                Suppression.address_key == address_key(channel, address),
            )
        )
        await _upsert(
            session,
            channel=_space(channel),
            key=hashed_key(channel, address),
            reason=SuppressionReason.ERASED,
            detail="",
            now=now,
        )
        count += 1
    return count


async def any_erased(session: AsyncSession) -> bool:
    """Whether any erased address is on record (lets a bulk import skip ``restore_erased``)."""
    found = await session.scalar(
        select(Suppression.id).where(Suppression.address_key.startswith(HASH_PREFIX)).limit(1)
    )
    return found is not None


async def restore_erased(
    session: AsyncSession, addresses: Iterable[tuple[str, str]], *, now: datetime
) -> set[tuple[str, str]]:
    """Write plain ``erased`` suppressions for pairs whose hash says they were erased.

    Called when an address comes back (import, new contact) so the one-query exclusion in
    the fan-out sees it. Returns the (channel, address) pairs found erased.
    """
    by_hash = {(_space(c), hashed_key(c, a)): (c, a) for c, a in addresses}
    if not by_hash:
        return set()
    found: set[tuple[str, str]] = set()
    hashes = sorted({key for _, key in by_hash})
    for start in range(0, len(hashes), 500):
        rows = await session.execute(
            select(Suppression.channel, Suppression.address_key).where(
                Suppression.address_key.in_(hashes[start : start + 500])
            )
        )
        for channel, key in rows:
            if (channel, key) in by_hash:
                found.add(by_hash[(channel, key)])
    for channel, address in sorted(found):
        await _upsert(
            session,
            channel=_space(channel),
            key=address_key(channel, address),
            reason=SuppressionReason.ERASED,
            detail="previously erased",
            now=now,
        )
    if found:
        logger.info("%d erased addresses came back; kept suppressed", len(found))
    return found
