"""The audit log: who did what, when. Append-only.

Every change to users and alerts appends an ``AuditEntry`` in the same transaction as the
change itself, so a rolled-back change leaves no entry and a committed one always has one.
``record`` adds and flushes; the caller commits.

Details describe the change (version numbers, languages, statuses). They never hold contact
addresses, passwords, tokens or case data: ``record`` refuses the obvious keys so that a slip
fails loudly in tests instead of leaking into a log that many people read.

**Tamper evidence.** Each entry carries ``prev_hash``, the hash of the entry before it
(``GENESIS`` for the first), and ``hash``, the SHA-256 of its own content and ``prev_hash``
(``entry_hash``). Changing an entry breaks its own hash; removing, inserting or reordering
entries — or rewriting one and its hash — breaks the next entry's link. ``verify_chain``
walks the log in id order and reports the first broken link (``alerts audit verify``).
Whoever can write the database can still rewrite the whole chain from the broken entry on:
the chain makes a quiet edit visible, it does not stop a full rewrite (note the head hash
``verify_chain`` reports somewhere else to detect that too).

Two writers must not both chain onto the same entry (a fork). ``record`` therefore takes a
lock before it reads the last hash: on PostgreSQL ``LOCK TABLE audit_log IN SHARE ROW
EXCLUSIVE MODE`` (conflicts with itself and with any other insert; plain reads go on),
held to the end of the transaction, so the next writer reads the committed entry and its id
comes after it; on SQLite every writing transaction already holds the database's one write
lock from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import ValidationError
from alerts.store.models import AuditEntry

#: Keys that would carry an address or a secret; ``record`` refuses them.
FORBIDDEN_KEYS = frozenset(
    {"address", "email", "telegram", "password", "password_hash", "token", "token_hash", "secret"}
)

MAX_LIMIT = 1000
#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64
_VERIFY_BATCH = 1000


def entry_hash(
    *,
    prev_hash: str,
    at: datetime,
    user_id: int | None,
    action: str,
    object_type: str,
    object_id: str | None,
    details: Mapping[str, Any] | None,
) -> str:
    """The SHA-256 (hex) of an entry's content and the hash before it, in canonical JSON."""
    content = {
        "prev": prev_hash,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user_id": user_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def hash_of(entry: AuditEntry, prev_hash: str) -> str:
    """``entry_hash`` of a stored entry, chained onto ``prev_hash``."""
    return entry_hash(
        prev_hash=prev_hash,
        at=entry.at,
        user_id=entry.user_id,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        details=entry.details,
    )


async def _lock_chain(session: AsyncSession) -> None:
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))


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
    # as the JSON column will give it back (tuples as lists, keys as strings): what is hashed
    stored = json.loads(json.dumps(dict(details))) if details is not None else None
    await _lock_chain(session)
    last = await session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    prev_hash = last or GENESIS
    entry = AuditEntry(
        at=now,
        user_id=user_id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=stored,
        prev_hash=prev_hash,
    )
    entry.hash = hash_of(entry, prev_hash)
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """What ``verify_chain`` found: entries checked, and the first broken link if any."""

    entries: int
    head: str  # the last entry's hash (GENESIS for an empty log)
    broken_at: int | None = None  # the id of the first entry whose link or hash is wrong
    reason: str = ""

    @property
    def intact(self) -> bool:
        """Whether every link held."""
        return self.broken_at is None


async def verify_chain(session: AsyncSession) -> ChainReport:
    """Walk the log in id order; stop at the first entry whose link or own hash is wrong."""
    prev_hash, count, after = GENESIS, 0, -1
    while True:
        batch = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(_VERIFY_BATCH)
            )
        ).all()
        if not batch:
            return ChainReport(entries=count, head=prev_hash)
        for entry in batch:
            if entry.prev_hash != prev_hash:
                reason = (
                    f"entry {entry.id} does not link to the entry before it: an entry was removed, "
                    "inserted or reordered there, or the one before was rewritten"
                )
                return ChainReport(entries=count, head=prev_hash, broken_at=entry.id, reason=reason)
            if entry.hash != hash_of(entry, prev_hash):
                reason = f"entry {entry.id} does not match its hash: it was changed after it was written"
                return ChainReport(entries=count, head=prev_hash, broken_at=entry.id, reason=reason)
            prev_hash, count, after = entry.hash, count + 1, entry.id
        session.expunge_all()  # a long log is read in batches, not held in memory
