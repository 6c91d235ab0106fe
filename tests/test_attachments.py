"""Files sent with a press release (alerts/compose/attachments.py): checked by their content
(magic bytes), named safely, bounded in size, then stored; every refusal names the file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.compose.attachments import (
    ALLOWED_TYPES,
    MAX_BYTES,
    MAX_FILES,
    MAX_NAME,
    attach,
    read_attachment,
)
from alerts.core.errors import ValidationError
from alerts.store.models import AlertAttachment
from tests.factories import approved_alert, make_users

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ALLOWED = ", ".join(sorted(ALLOWED_TYPES))
# The first bytes of real files of each kind (what `file` and browsers read too).
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 60
HTML = b"<!doctype html><script>alert(1)</script>"
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00"


def write(path: Path, data: bytes = PDF) -> Path:
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
    pdf = write(tmp_path / "statement.pdf", PDF)
    png = write(tmp_path / "photo.PNG", PNG)
    assert await attach(session, alert, [pdf, png], now=NOW) == 2
    await session.flush()
    assert await stored(session) == [
        (alert.id, "statement.pdf", "application/pdf", PDF, NOW),
        (alert.id, "photo.png", "image/png", PNG, NOW),
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
    bad = write(tmp_path / "statement.pdf.exe", EXE)
    with pytest.raises(ValidationError):
        await attach(session, alert, [paths[0], bad], now=NOW)
    await session.flush()
    assert await stored(session) == []
    assert await attach(session, alert, paths[:MAX_FILES], now=NOW) == MAX_FILES
    await session.flush()
    assert len(await stored(session)) == MAX_FILES


@pytest.mark.parametrize(
    "data,ctype",
    [
        (PDF, "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
    ],
)
def test_the_type_is_read_from_the_content(tmp_path: Path, data: bytes, ctype: str) -> None:
    name, found, read = read_attachment(write(tmp_path / "file", data))
    assert (found, read) == (ctype, data)
    assert name == "file" + ALLOWED_TYPES[ctype]  # no extension: the content's is added


@pytest.mark.parametrize(
    "name,data,detected",
    [
        ("statement.pdf", EXE, "application/x-msdownload"),  # an executable renamed
        ("photo.png", ELF, "application/x-executable"),
        ("archive.pdf", ZIP, "application/zip"),
        ("page.pdf", HTML, None),  # HTML has no magic bytes: not an allowed type
        ("empty.pdf", b"", None),
        ("notes.txt", b"just text", None),
    ],
)
def test_content_that_is_not_an_allowed_type_is_refused_whatever_the_name(
    tmp_path: Path, name: str, data: bytes, detected: str | None
) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(ValidationError) as refused:
        read_attachment(path)
    what = f"is {detected}" if detected else "is of no type recognised"
    assert str(refused.value) == f"--attach {path}: the content {what}; allowed: {ALLOWED}."
    assert refused.value.details["file"] == f"--attach {path}"


def test_a_name_claiming_another_type_than_the_content_is_refused(tmp_path: Path) -> None:
    for name, data, claimed, actual in [
        ("photo.png", PDF, "image/png", "application/pdf"),
        ("report.pdf", JPEG, "application/pdf", "image/jpeg"),
        ("setup.exe", PNG, None, "image/png"),
        ("page.html", GIF, "text/html", "image/gif"),
    ]:
        path = write(tmp_path / name, data)
        with pytest.raises(ValidationError) as refused:
            read_attachment(path)
        message = str(refused.value)
        assert message.startswith(f"--attach {path}: the name says "), message
        assert f"but the content is {actual}; rename the file" in message, message
        if claimed is not None:
            assert f"the name says {claimed} " in message
            assert refused.value.details == {
                "file": f"--attach {path}",
                "content_type": actual,
                "name_type": claimed,
            }


def test_names_are_reduced_to_a_safe_base_name(tmp_path: Path) -> None:
    cases = {
        "re\r\nport.pdf": "re port.pdf",
        "invoice\u202efdp.exe.pdf": "invoice fdp.exe.pdf",  # RIGHT-TO-LEFT OVERRIDE gone
        'a<b>c:d"e|f?g*h.pdf': "a_b_c_d_e_f_g_h.pdf",
        "..pdf": "pdf.pdf",
        "...": "attachment.pdf",
        " .hidden.pdf ": "hidden.pdf",
        "Report.PDF": "Report.pdf",
        "x" * 250 + ".pdf": "x" * (MAX_NAME - 4) + ".pdf",
        "cafe\u0301.pdf": "caf\u00e9.pdf",  # NFC
        "scan.jpeg": "scan.jpeg",
        "no-extension-at-all": "no-extension-at-all.pdf",
        "version.2": "version.2.pdf",
    }
    for given, expected in cases.items():
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        data = JPEG if given.endswith(".jpeg") else PDF
        name, _, _ = read_attachment(write(folder / given, data))
        assert name == expected, given
        assert len(name) <= MAX_NAME


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pdf"
    with pytest.raises(ValidationError) as refused:
        read_attachment(missing)
    assert str(refused.value) == f"--attach {missing}: file not found."
    assert refused.value.details == {"file": f"--attach {missing}"}


def test_a_directory_is_named_as_not_a_file(tmp_path: Path) -> None:
    from alerts.cli.textio import read_case_file

    with pytest.raises(ValidationError) as refused:
        read_attachment(tmp_path)
    assert str(refused.value) == f"--attach {tmp_path}: a directory, not a file."
    with pytest.raises(ValidationError) as refused:
        read_case_file(tmp_path)  # alert create --data: refused the same way (exit 2, not 1)
    assert str(refused.value) == f"{tmp_path}: a directory, not a file."


def test_the_size_limit_is_inclusive(tmp_path: Path) -> None:
    at_limit = write(tmp_path / "big.pdf", PDF)
    with at_limit.open("r+b") as fh:
        fh.truncate(MAX_BYTES)
    name, ctype, data = read_attachment(at_limit)
    assert (name, ctype, len(data)) == ("big.pdf", "application/pdf", MAX_BYTES)
    over = write(tmp_path / "bigger.pdf", PDF)
    with over.open("r+b") as fh:
        fh.truncate(MAX_BYTES + 1)
    with pytest.raises(ValidationError) as refused:
        read_attachment(over)
    assert str(refused.value) == (
        f"--attach {over}: {MAX_BYTES + 1:,} bytes is over the {MAX_BYTES:,}-byte limit."
    )
    assert refused.value.details == {"file": f"--attach {over}"}


def test_a_refused_content_names_the_file_and_the_type_found_in_details(tmp_path: Path) -> None:
    for name, data, found in [("statement.pdf", EXE, "application/x-msdownload"), ("page.pdf", HTML, None)]:
        path = write(tmp_path / name, data)
        with pytest.raises(ValidationError) as refused:
            read_attachment(path)
        assert refused.value.details == {"file": f"--attach {path}", "content_type": found}


def test_a_pipe_over_the_limit_is_refused_once_read(tmp_path: Path) -> None:
    """``--attach <(some command)`` names a pipe: its size is unknown (0) until it is read, so the
    limit is checked again on what was read, and the refusal names the file as before."""
    import os
    import threading

    pipe = tmp_path / "from-a-command.pdf"
    os.mkfifo(pipe)

    def feed() -> None:
        data = memoryview(PDF + b"\0" * MAX_BYTES)
        fd = os.open(pipe, os.O_WRONLY)
        try:
            while data:
                data = data[os.write(fd, data[:65536]) :]
        except BrokenPipeError:  # the reader stops at MAX_BYTES + 1 and closes its end
            pass
        finally:
            os.close(fd)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with pytest.raises(ValidationError) as refused:
            read_attachment(pipe)
    finally:
        writer.join(timeout=10)
    assert not writer.is_alive()
    assert str(refused.value) == f"--attach {pipe}: over the {MAX_BYTES:,}-byte limit."
    assert refused.value.details == {"file": f"--attach {pipe}"}


def test_a_name_claiming_another_type_is_refused_with_the_whole_advice(tmp_path: Path) -> None:
    path = write(tmp_path / "photo.png", PDF)
    with pytest.raises(ValidationError) as refused:
        read_attachment(path)
    assert str(refused.value) == (
        f"--attach {path}: the name says image/png but the content is application/pdf; "
        "rename the file or attach the right one."
    )


def test_a_long_name_cut_at_a_space_or_a_dot_does_not_end_its_stem_in_one(tmp_path: Path) -> None:
    """Cut to ``MAX_NAME`` characters, a stem that now ends in a space or a dot loses it: no
    "report .pdf" or "report..pdf" (Windows drops a trailing dot or space, and mangles the name)."""
    keep = MAX_NAME - len(".pdf") - 1
    for cut_at in (" ", "."):
        folder = tmp_path / ("space" if cut_at == " " else "dot")
        folder.mkdir()
        name, _, _ = read_attachment(write(folder / ("a" * keep + cut_at + "b" * 10 + ".pdf")))
        assert name == "a" * keep + ".pdf", cut_at


def test_a_file_that_cannot_be_read_is_named_in_the_message_and_details(tmp_path: Path) -> None:
    """Permission denied (read by a user other than the file's owner): the refusal names the file
    in its text and in its details, like every other refusal. Root reads anything, so as root the
    file is read by a child process that became ``nobody``."""
    import json
    import os
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="alerts-attach-"))
    try:
        folder.chmod(0o755)  # tmp_path's parents are private to the user running the tests
        path = write(folder / "locked.pdf")
        path.chmod(0o000)
        label = f"--attach {path}"
        if os.geteuid() != 0:
            with pytest.raises(ValidationError) as refused:
                read_attachment(path)
            said = (str(refused.value), refused.value.details)
        else:
            read_end, write_end = os.pipe()
            child = os.fork()
            if child == 0:  # pragma: no cover - the child reports through the pipe
                result: object = "read"
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    read_attachment(path)
                except ValidationError as exc:
                    result = [str(exc), exc.details]
                except BaseException as exc:  # whatever it was, the parent reports it
                    result = repr(exc)
                os.write(write_end, json.dumps(result).encode())
                os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as fh:
                reported = json.loads(fh.read())
            os.waitpid(child, 0)
            assert isinstance(reported, list), reported
            said = (reported[0], reported[1])
        assert said == (f"{label}: cannot be read (permission denied).", {"file": label})
    finally:
        import shutil

        shutil.rmtree(folder)
