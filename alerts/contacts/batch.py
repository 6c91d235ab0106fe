"""Writing one batch of validated import rows with bulk statements, in one short transaction.

Used by ``alerts.contacts.csv_import.import_csv``, whose ``ImportReport`` (defined here) it
fills. Across batches the writer keeps only a dict of identity key → contact id (to merge later
duplicates of the file into the same contact) and the ids counted as unchanged (a later
duplicate may still change them), never the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.contacts.directory import contact_addresses, new_token
from alerts.contacts.fields import DEFAULT_LANGUAGE, TEXT_FIELDS, clean_fields, parse_list_names
from alerts.contacts.suppressions import any_erased, restore_erased
from alerts.store.models import Contact, ContactList, ListMember

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RowError:
    """One refused row: its number (the header is row 1) and why."""

    row: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"


@dataclass(slots=True, kw_only=True)
class ImportReport:
    """What an import did. ``created + updated + unchanged`` counts distinct contacts."""

    total: int = 0  # data rows read (blank rows skipped)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged_in_file: int = 0  # rows that repeated an earlier row's email (or Telegram id)
    previously_erased: int = 0  # contacts whose address had been erased: imported, kept suppressed
    refused: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI and the logs."""
        text = (
            f"{self.total} rows: {self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.merged_in_file} merged with an earlier row, {len(self.refused)} refused"
        )
        if self.previously_erased:
            text += f"; {self.previously_erased} previously erased (kept suppressed)"
        return text


CONTACTS = cast(Table, Contact.__table__)
MEMBERS = cast(Table, ListMember.__table__)
LISTS = cast(Table, ContactList.__table__)
_STORED = (*TEXT_FIELDS, "email_key")
_CHUNK = 500  # bound parameters per IN (...) query


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRow:
    """One valid CSV row, cleaned, waiting for its batch."""

    row: int
    fields: dict[str, str | None]
    lists: tuple[str, ...]

    @property
    def key(self) -> str:
        """Identity in the file and the database: the email key, else the Telegram id."""
        email_key = self.fields.get("email_key")
        return f"e:{email_key}" if email_key else f"t:{self.fields['telegram']}"

    @classmethod
    def validate(cls, row: int, values: dict[str, str], raw_lists: str, extra_lists: list[str]) -> PendingRow:
        """Check one row with the shared validator (ValidationError names the column)."""
        fields = clean_fields(values, complete=True)
        lists = parse_list_names(raw_lists)
        lists += [name for name in extra_lists if name not in lists]
        return cls(row=row, fields=fields, lists=tuple(lists))


@dataclass(slots=True)
class _Merged:
    fields: dict[str, str | None]
    lists: dict[str, None]  # ordered set

    def overlay(self, later: PendingRow) -> None:
        for name, value in later.fields.items():
            if value is not None:
                self.fields[name] = value
        self.lists.update(dict.fromkeys(later.lists))


@dataclass(slots=True)
class _Delta:
    created: int = 0
    updated: int = 0
    previously_erased: int = 0
    unchanged: set[int] = field(default_factory=set)
    promoted: set[int] = field(default_factory=set)  # counted unchanged before, changed now
    ids: dict[str, int] = field(default_factory=dict)
    list_ids: dict[str, int] = field(default_factory=dict)


class BatchWriter:
    """Writes batches of one import; counts into the import's report."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, report: ImportReport, now: datetime
    ) -> None:
        self.sessions = sessions
        self.report = report
        self.now = now
        self.seen: dict[str, int] = {}
        self.unchanged: set[int] = set()
        self.list_ids: dict[str, int] = {}
        self.batches = 0

    async def write(self, rows: Sequence[PendingRow]) -> None:
        """Merge the rows by identity and write them in one transaction (retried once on a race)."""
        merged: dict[str, _Merged] = {}
        repeats = 0
        for r in rows:
            key = r.key
            if key in merged or key in self.seen:
                repeats += 1
            if key in merged:
                merged[key].overlay(r)
            else:
                merged[key] = _Merged(dict(r.fields), dict.fromkeys(r.lists))
        for attempt in (1, 2):
            try:
                async with self.sessions() as session, session.begin():
                    delta = await self._apply(session, merged)
                break
            except IntegrityError:
                # Another writer inserted one of these contacts or lists meanwhile; re-reading
                # the batch finds them. SQLite (BEGIN IMMEDIATE) never gets here.
                if attempt == 2:
                    raise
                logger.warning("contacts import: concurrent change to the same contacts; retrying the batch")
        self.batches += 1
        if self.batches & (self.batches - 1) == 0:  # after batches 1, 2, 4, 8...
            await self._analyze()
        report = self.report
        report.merged_in_file += repeats
        report.created += delta.created
        report.updated += delta.updated + len(delta.promoted)
        report.unchanged += len(delta.unchanged) - len(delta.promoted)
        report.previously_erased += delta.previously_erased
        self.unchanged |= delta.unchanged
        self.unchanged -= delta.promoted
        self.seen.update(delta.ids)
        self.list_ids.update(delta.list_ids)

    async def _analyze(self) -> None:
        """Refresh PostgreSQL's statistics while the tables grow.

        A new table has none until autovacuum runs (up to a minute later); meanwhile the planner
        takes it for tiny and reads it whole for every ``IN (...)`` lookup, which makes a large
        import quadratic. SQLite plans by the indexes alone.
        """
        async with self.sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(text("ANALYZE contacts, list_members, lists"))
                await session.commit()

    async def _existing(self, session: AsyncSession, keys: list[str]) -> dict[str, Any]:
        """Stored rows for the keys: by id when seen earlier in the file, else by email / Telegram id."""
        cols = [CONTACTS.c.id, *(CONTACTS.c[f] for f in _STORED)]
        found: dict[str, Any] = {}
        by_id = {self.seen[k]: k for k in keys if k in self.seen}
        emails = [k[2:] for k in keys if k.startswith("e:") and k not in self.seen]
        chats = [k[2:] for k in keys if k.startswith("t:") and k not in self.seen]
        for chunk in _chunks(list(by_id)):
            for row in await session.execute(select(*cols).where(CONTACTS.c.id.in_(chunk))):
                found[by_id[row.id]] = row
        for chunk in _chunks(emails):
            for row in await session.execute(select(*cols).where(CONTACTS.c.email_key.in_(chunk))):
                found[f"e:{row.email_key}"] = row
        for chunk in _chunks(chats):
            stmt = select(*cols).where(CONTACTS.c.telegram.in_(chunk), CONTACTS.c.email_key.is_(None))
            for row in await session.execute(stmt.order_by(CONTACTS.c.id)):
                found.setdefault(f"t:{row.telegram}", row)
        return found

    async def _apply(self, session: AsyncSession, merged: dict[str, _Merged]) -> _Delta:
        delta = _Delta()
        existing = await self._existing(session, list(merged))
        inserts: list[tuple[str, dict[str, Any]]] = []
        updates: list[dict[str, Any]] = []
        changed: set[str] = set()
        for key, m in merged.items():
            row = existing.get(key)
            if row is None:
                values: dict[str, Any] = {f: m.fields.get(f) for f in _STORED}
                values["language"] = values["language"] or DEFAULT_LANGUAGE
                values.update(token=new_token(), status="active", created_at=self.now, updated_at=self.now)
                inserts.append((key, values))
                continue
            current = row._mapping
            values = {f: m.fields[f] if m.fields.get(f) is not None else current[f] for f in _STORED}
            delta.ids[key] = row.id
            if any(values[f] != current[f] for f in _STORED):
                changed.add(key)
                updates.append(
                    {"b_id": row.id, "b_updated_at": self.now, **{f"b_{f}": v for f, v in values.items()}}
                )
        if inserts:
            # One executemany without RETURNING (RETURNING in parameter order makes SQLite run one
            # statement per row), then the new ids by the unique random tokens we just generated.
            await session.execute(insert(CONTACTS), [values for _, values in inserts])
            key_of = {values["token"]: key for key, values in inserts}
            for chunk in _chunks(list(key_of)):
                rows = await session.execute(
                    select(CONTACTS.c.token, CONTACTS.c.id).where(CONTACTS.c.token.in_(chunk))
                )
                delta.ids.update((key_of[token], new_id) for token, new_id in rows)
        if updates:
            targets: dict[str, Any] = {f: bindparam(f"b_{f}") for f in (*_STORED, "updated_at")}
            stmt_u = update(CONTACTS).where(CONTACTS.c.id == bindparam("b_id")).values(targets)
            await session.execute(stmt_u, updates)
        joined = await self._add_memberships(session, merged, existing, delta)
        for key in merged:
            contact_id = delta.ids[key]
            was_changed = key in changed or contact_id in joined
            if key in self.seen:
                if was_changed and contact_id in self.unchanged:
                    delta.promoted.add(contact_id)
            elif key not in existing:
                delta.created += 1
            elif was_changed:
                delta.updated += 1
            else:
                delta.unchanged.add(contact_id)
        await self._restore_erased(session, merged, [k for k, _ in inserts] + sorted(changed), delta)
        return delta

    async def _list_ids(self, session: AsyncSession, names: set[str], delta: _Delta) -> dict[str, int]:
        ids = {name: self.list_ids[name] for name in names if name in self.list_ids}
        missing = sorted(names - ids.keys())
        if missing:
            rows = await session.execute(select(LISTS.c.name, LISTS.c.id).where(LISTS.c.name.in_(missing)))
            delta.list_ids.update({name: list_id for name, list_id in rows})
            new = [n for n in missing if n not in delta.list_ids]
            if new:
                await session.execute(
                    insert(LISTS), [{"name": n, "description": "", "created_at": self.now} for n in new]
                )
                rows = await session.execute(select(LISTS.c.name, LISTS.c.id).where(LISTS.c.name.in_(new)))
                delta.list_ids.update({name: list_id for name, list_id in rows})
                logger.info("contacts import: %d lists created", len(new))
            ids.update({name: delta.list_ids[name] for name in missing})
        return ids

    async def _add_memberships(
        self, session: AsyncSession, merged: dict[str, _Merged], existing: dict[str, Any], delta: _Delta
    ) -> set[int]:
        """Insert the missing (list, contact) pairs; returns the contacts that joined a list."""
        names = {name for m in merged.values() for name in m.lists}
        if not names:
            return set()
        list_ids = await self._list_ids(session, names, delta)
        wanted = {(list_ids[n], delta.ids[k]) for k, m in merged.items() for n in m.lists}
        known = [delta.ids[k] for k in merged if k in existing]
        have: set[tuple[int, int]] = set()
        for chunk in _chunks(known):
            rows = await session.execute(
                select(MEMBERS.c.list_id, MEMBERS.c.contact_id).where(
                    MEMBERS.c.contact_id.in_(chunk), MEMBERS.c.list_id.in_(set(list_ids.values()))
                )
            )
            have.update((a, b) for a, b in rows)
        new_pairs = sorted(wanted - have)
        if new_pairs:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(MEMBERS).on_conflict_do_nothing()
            await session.execute(stmt, [{"list_id": a, "contact_id": b} for a, b in new_pairs])
        return {contact_id for _, contact_id in new_pairs}

    async def _restore_erased(
        self, session: AsyncSession, merged: dict[str, _Merged], keys: list[str], delta: _Delta
    ) -> None:
        """Keep suppressed the addresses of people erased before who come back in this file."""
        if not keys or not await any_erased(session):
            return
        owners: dict[tuple[str, str], str] = {}
        for key in keys:
            fields = merged[key].fields
            for pair in contact_addresses(fields.get("email"), fields.get("telegram")):
                owners[pair] = key
        found = await restore_erased(session, list(owners), now=self.now)
        delta.previously_erased += len({owners[pair] for pair in found})
