"""Files sent with a press release (alerts/compose/attachments.py): checked, then stored.

The mutation run (bench/mutation.py) found no in-process test reaching this module: only the
CLI's child-process test attached a file, so every limit here could change unnoticed."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.compose.attachments import ALLOWED_TYPES, MAX_BYTES, MAX_FILES, attach, read_attachment
from alerts.core.errors import ValidationError
from alerts.store.models import AlertAttachment
from tests.factories import approved_alert, make_users

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ALLOWED = ", ".join(sorted(ALLOWED_TYPES))


def write(path: Path, data: bytes = b"%PDF-1.4 x") -> Path:
    path.write_bytes(data)
    return path


async def stored(session: AsyncSession) -> list[tuple[int, str, str, bytes, datetime]]:
    rows = (await session.execute(select(AlertAttachment).order_by(AlertAttachment.id))).scalars()
    return [(r.alert_id, r.filename, r.content_type, r.data, r.created_at) for r in rows]


async def test_files_are_stored_with_the_alert_name_type_data_and_time(
    session: AsyncSession, tmp_path: Path
) -> None:
    officer, reviewer = await make_users(session)
    alert = await approved_alert(session, author=officer, reviewer=reviewer)
    pdf = write(tmp_path / "statement.pdf", b"%PDF-1.4 statement")
    png = write(tmp_path / "photo.PNG", b"\x89PNG picture")
    assert await attach(session, alert, [pdf, png], now=NOW) == 2
    await session.flush()
    assert await stored(session) == [
        (alert.id, "statement.pdf", "application/pdf", b"%PDF-1.4 statement", NOW),
        (alert.id, "photo.PNG", "image/png", b"\x89PNG picture", NOW),
    ]


async def test_at_most_max_files_and_nothing_stored_when_one_file_is_refused(
    session: AsyncSession, tmp_path: Path
) -> None:
    officer, reviewer = await make_users(session)
    alert = await approved_alert(session, author=officer, reviewer=reviewer)
    paths = [write(tmp_path / f"p{i}.pdf") for i in range(MAX_FILES + 1)]
    with pytest.raises(ValidationError) as refused:
        await attach(session, alert, paths, now=NOW)
    assert str(refused.value) == f"--attach: at most {MAX_FILES} files per alert."
    bad = write(tmp_path / "run.exe", b"MZ")
    with pytest.raises(ValidationError):
        await attach(session, alert, [paths[0], bad], now=NOW)
    await session.flush()
    assert await stored(session) == []
    assert await attach(session, alert, paths[:MAX_FILES], now=NOW) == MAX_FILES
    await session.flush()
    assert len(await stored(session)) == MAX_FILES


def test_only_documents_and_pictures_are_allowed(tmp_path: Path) -> None:
    for name in ["run.exe", "page.html"]:
        path = write(tmp_path / name)
        ctype = mimetypes.guess_type(name)[0]
        assert ctype is not None and ctype not in ALLOWED_TYPES
        with pytest.raises(ValidationError) as refused:
            read_attachment(path)
        assert str(refused.value) == f"--attach {path}: type {ctype} is not allowed; allowed: {ALLOWED}."
    odd = write(tmp_path / "notes.unknownext")
    with pytest.raises(ValidationError) as refused:
        read_attachment(odd)
    assert str(refused.value) == f"--attach {odd}: type unknown is not allowed; allowed: {ALLOWED}."
    for name in ["a.pdf", "b.png", "c.jpg", "d.gif", "e.webp"]:
        assert read_attachment(write(tmp_path / name))[1] in ALLOWED_TYPES


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pdf"
    with pytest.raises(ValidationError) as refused:
        read_attachment(missing)
    assert str(refused.value) == f"--attach {missing}: file not found."


def test_the_size_limit_is_inclusive(tmp_path: Path) -> None:
    at_limit = tmp_path / "big.pdf"
    with at_limit.open("wb") as fh:
        fh.truncate(MAX_BYTES)
    name, ctype, data = read_attachment(at_limit)
    assert (name, ctype, len(data)) == ("big.pdf", "application/pdf", MAX_BYTES)
    over = tmp_path / "bigger.pdf"
    with over.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)
    with pytest.raises(ValidationError) as refused:
        read_attachment(over)
    assert str(refused.value) == (
        f"--attach {over}: {MAX_BYTES + 1:,} bytes is over the {MAX_BYTES:,}-byte limit."
    )


def test_the_stored_name_is_the_files_own_name_without_line_breaks(tmp_path: Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    path = write(folder / "re\r\nport.pdf", b"%PDF-1.4 r")
    assert read_attachment(path) == ("report.pdf", "application/pdf", b"%PDF-1.4 r")
