"""Contacts CSV: streaming import (bulk statements, bounded memory) and export.

Format (DESIGN.md): UTF-8 (a BOM is tolerated), comma or semicolon delimited (detected from
the header line), columns ``name,email,telegram,kind,language,organisation,country,lists,
title,form_of_address`` in any order; header names are case-insensitive; ``lists`` is
``;``-separated. Only ``name`` and one address column (``email`` or ``telegram``) are required;
a missing column is an empty cell in every row, except ``kind``, which is then ``default_kind``
(``partner`` unless the importer names another).

The import reads the file twice: a first pass checks the encoding and the CSV structure and
counts rows, so that a file that is not UTF-8 or not CSV is refused before anything is
written; the second pass validates each row and writes batches of ``batch_size`` rows, each
batch in one short transaction with bulk INSERT/UPDATE statements.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tqdm import tqdm

from alerts.contacts.batch import BatchWriter, ImportReport, PendingRow, RowError
from alerts.contacts.directory import get_list
from alerts.contacts.fields import KINDS, clean_list_name
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.text import spreadsheet_safe
from alerts.store.models import Contact, ContactList, ListMember

logger = logging.getLogger(__name__)

EXPORT_COLUMNS = (
    "name",
    "email",
    "telegram",
    "kind",
    "language",
    "organisation",
    "country",
    "lists",
    "title",
    "form_of_address",
)
ADDRESS_COLUMNS = ("email", "telegram")
#: The kind of every contact of a file without a ``kind`` column, unless the importer says.
DEFAULT_KIND = "partner"
_BOM = b"\xef\xbb\xbf"


class _Undecodable(Exception):
    def __init__(self, exc: UnicodeDecodeError) -> None:
        super().__init__(str(exc))
        self.exc = exc


@contextlib.contextmanager
def _seekable(source: BinaryIO | Path) -> Iterator[BinaryIO]:
    """The source as a binary file that can be read twice (a pipe is spooled to a temp file)."""
    if isinstance(source, Path):
        with source.open("rb") as fh:
            yield fh
    elif source.seekable():
        yield source
    else:
        with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
            shutil.copyfileobj(source, spool)
            spool.seek(0)
            yield spool  # type: ignore[misc]


#: A contact's row is a few hundred bytes; a longer line is junk, refused before it is parsed.
MAX_LINE = 64 * 1024


def _lines(fh: BinaryIO) -> Iterator[str]:
    first = True
    number = 0
    while raw := fh.readline(MAX_LINE + 1):
        number += 1
        if len(raw) > MAX_LINE:
            raise ValidationError(
                f"line {number}: longer than {MAX_LINE:,} bytes; is this a contacts CSV file?",
                details={"line": number},
            )
        if first:
            raw = raw.removeprefix(_BOM)
            first = False
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Undecodable(exc) from None


def _records(fh: BinaryIO) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) for every record, the header being row 1; ValidationError on bad bytes."""
    lines = _lines(fh)
    row = 0  # the last row read; a fault is in the next one (the header is row 1)
    try:
        first = next(lines, "")
        delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
        for row, cells in enumerate(reader, start=1):
            yield row, cells
    except _Undecodable as exc:
        bad = exc.exc.object[exc.exc.start]
        raise ValidationError(
            f'row {row + 1}: not valid UTF-8 (byte 0x{bad:02x}); save the file as "CSV UTF-8"',
            details={"row": row + 1},
        ) from None
    except csv.Error as exc:
        raise ValidationError(f"row {row + 1}: not valid CSV: {exc}", details={"row": row + 1}) from None


def _header(cells: list[str]) -> list[str]:
    columns = [c.strip().lower() for c in cells]
    known = set(EXPORT_COLUMNS)
    for column in columns:
        if column not in known:
            raise ValidationError(
                f"row 1: unknown column {column!r}; the columns are {', '.join(EXPORT_COLUMNS)}",
                details={"row": 1, "column": column},
            )
        if columns.count(column) > 1:
            raise ValidationError(
                f"row 1: column {column!r} appears twice", details={"row": 1, "column": column}
            )
    if "name" not in columns:
        raise ValidationError("row 1: missing column 'name'", details={"row": 1, "column": "name"})
    if not any(c in columns for c in ADDRESS_COLUMNS):
        raise ValidationError(
            "row 1: no address column: the file needs an 'email' or a 'telegram' column (or both)",
            details={"row": 1, "column": "email"},
        )
    return columns


def _scan(fh: BinaryIO) -> tuple[list[str], int]:
    """First pass: the header, and the number of data rows; refuses bad encoding or CSV."""
    records = _records(fh)
    first = next(records, None)
    if first is None or not any(cell.strip() for cell in first[1]):
        raise ValidationError("row 1: the file is empty; expected a header line", details={"row": 1})
    columns = _header(first[1])
    rows = sum(1 for _ in records)
    return columns, rows


def _unescape(cell: str) -> str:
    """Undo the export's protection against formulas ("'=x" back to "=x")."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


async def import_csv(
    sessions: async_sessionmaker[AsyncSession],
    source: BinaryIO | Path,
    *,
    list_name: str | None = None,
    progress: bool = False,
    batch_size: int = 1000,
    now: datetime | None = None,
    default_kind: str = DEFAULT_KIND,
) -> ImportReport:
    """Import contacts from a CSV file; refused rows are reported, never half-written.

    Row numbers count the header as row 1, so the first data row is row 2 (as a spreadsheet
    shows it). A bad header, or a file that is not UTF-8 or not CSV, raises ValidationError
    and writes nothing. Rows with the same email (any case) are merged: later non-empty
    values win and lists are united; an email already in the database updates that contact
    (empty cells keep the stored values; the contact's status is never changed). Rows without
    email are matched by Telegram id among contacts without email. ``list_name`` adds every
    imported contact to that list. A file without a ``kind`` column gives every contact
    ``default_kind``.
    """
    if batch_size < 1:
        raise ValidationError("batch_size must be at least 1", details={"field": "batch_size"})
    if default_kind not in KINDS:
        raise ValidationError(
            f"kind {default_kind!r} is not one of {', '.join(KINDS)}", details={"field": "kind"}
        )
    extra_lists = [clean_list_name(list_name)] if list_name is not None else []
    report = ImportReport()
    with _seekable(source) as fh:
        start = fh.tell()
        columns, rows = _scan(fh)
        fh.seek(start)
        writer = BatchWriter(sessions, report=report, now=now or utcnow())
        bar = tqdm(total=rows, file=sys.stderr, disable=not progress, unit="rows", desc="import")
        try:
            pending: list[PendingRow] = []
            for row, cells in _records(fh):
                if row == 1:
                    continue
                if not any(c.strip() for c in cells):
                    continue
                report.total += 1
                parsed = _parse_row(row, cells, columns, extra_lists, default_kind)
                if isinstance(parsed, RowError):
                    report.refused.append(parsed)
                else:
                    pending.append(parsed)
                if len(pending) >= batch_size:
                    await writer.write(pending)
                    bar.update(len(pending))
                    pending = []
            if pending:
                await writer.write(pending)
            bar.update(bar.total - bar.n)
        finally:
            bar.close()
    logger.info("contacts import: %s", report.summary())
    return report


def _parse_row(
    row: int, cells: list[str], columns: list[str], extra_lists: list[str], default_kind: str
) -> PendingRow | RowError:
    if len(cells) != len(columns):
        return RowError(row, f"the row has {len(cells)} columns, the header {len(columns)}")
    values = {col: _unescape(cell) for col, cell in zip(columns, cells, strict=True)}
    raw_lists = values.pop("lists", "")
    values.setdefault("kind", default_kind)
    try:
        clean = PendingRow.validate(row, values, raw_lists, extra_lists)
    except ValidationError as exc:
        return RowError(row, exc.message)
    return clean


async def export_contacts_csv(
    session: AsyncSession, out: TextIO, *, list_name: str | None = None, page_size: int = 1000
) -> int:
    """Write contacts in the import format, safe to open in a spreadsheet; returns the row count."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    list_id: int | None = None
    if list_name is not None:
        list_id = (await get_list(session, list_name)).id
    count, last_id = 0, 0
    while True:
        stmt = select(Contact).where(Contact.id > last_id).order_by(Contact.id).limit(page_size)
        if list_id is not None:
            stmt = stmt.join(ListMember, ListMember.contact_id == Contact.id).where(
                ListMember.list_id == list_id
            )
        page = list(await session.scalars(stmt))
        if not page:
            return count
        memberships: dict[int, list[str]] = {}
        rows = await session.execute(
            select(ListMember.contact_id, ContactList.name)
            .join(ContactList, ContactList.id == ListMember.list_id)
            .where(ListMember.contact_id.in_([c.id for c in page]))
            .order_by(ContactList.name)
        )
        for contact_id, name in rows:
            memberships.setdefault(contact_id, []).append(name)
        for c in page:
            values = [
                c.name,
                c.email,
                c.telegram,
                c.kind,
                c.language,
                c.organisation,
                c.country,
                ";".join(memberships.get(c.id, [])),
                c.title,
                c.form_of_address,
            ]
            writer.writerow([spreadsheet_safe(v) for v in values])
        count += len(page)
        last_id = page[-1].id
        session.expunge_all()
