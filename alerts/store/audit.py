"""The audit log: who did what, when. Append-only.

Every change to users and alerts appends an ``AuditEntry`` in the same transaction as the
change itself, so a rolled-back change leaves no entry and a committed one always has one.
``record`` adds and flushes; the caller commits.

Details describe the change (version numbers, languages, statuses). They never hold contact
addresses, passwords, tokens or case data: ``record`` refuses the obvious keys so that a slip
fails loudly in tests instead of leaking into a log that many people read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import ValidationError
from alerts.store.models import AuditEntry

#: Keys that would carry an address or a secret; ``record`` refuses them.
FORBIDDEN_KEYS = frozenset(
    {"address", "email", "telegram", "password", "password_hash", "token", "token_hash", "secret"}
)

MAX_LIMIT = 1000


async def record(
    session: AsyncSession,
    *,
    user_id: int | None,
    action: str,
    object_type: str,
    object_id: int | str | None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> AuditEntry:
    """Append one audit entry (``user_id`` None: the service itself); flushes, never commits."""
    if details is not None:
        leaking = sorted(FORBIDDEN_KEYS.intersection(details))
        if leaking:
            # A programming error, not bad user input: fail loudly.
            raise ValueError(f"audit details must not hold addresses or secrets: {', '.join(leaking)}")
    entry = AuditEntry(
        at=now,
        user_id=user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=dict(details) if details is not None else None,
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_entries(
    session: AsyncSession,
    *,
    object_type: str | None = None,
    object_id: int | str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest entries first, optionally only those about one object or type of object."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit: {limit} is out of range (1 to {MAX_LIMIT})")
    query = select(AuditEntry)
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
