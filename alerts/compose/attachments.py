"""Files sent with an alert's press release: checked before they are stored.

A file's type is what its content is — its magic bytes, read by ``filetype`` — never what its
name claims: an executable renamed ``statement.pdf`` is refused, and so is a real PDF named
``photo.png`` (a recipient's system would open it with the wrong program). The stored name is
a safe base name: no folder, no control or bidirectional characters (``invoice\\u202efdp.exe``
would read as ``invoiceexe.pdf``), none of the characters Windows refuses, at most
``MAX_NAME`` characters, with the extension of the detected type. Every refusal names the file.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from datetime import datetime
from pathlib import Path

import filetype
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import ValidationError
from alerts.core.text import one_line
from alerts.store.models import Alert, AlertAttachment

#: Press releases carry documents and pictures, nothing executable: type → the stored extension.
ALLOWED_TYPES: dict[str, str] = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 10
MAX_NAME = 100  # characters of a stored file name, extension included
_SNIFF_BYTES = 8192  # filetype reads the first 8 KiB at most
_UNSAFE_IN_NAME = re.compile(r'[<>:"/\\|?*]')
_ALLOWED = ", ".join(sorted(ALLOWED_TYPES))


def content_type(data: bytes, label: str) -> str:
    """The allowed type that ``data`` is, by its magic bytes; ValidationError naming ``label``."""
    kind = filetype.guess(data[:_SNIFF_BYTES]) if data else None
    found: str | None = kind.mime if kind is not None else None
    if found not in ALLOWED_TYPES:
        what = f"is {found}" if found else "is of no type recognised"
        raise ValidationError(
            f"{label}: the content {what}; allowed: {_ALLOWED}.",
            details={"file": label, "content_type": found},
        )
    return found


def safe_name(name: str, ctype: str, label: str) -> str:
    """``name`` reduced to a safe base name for a file of type ``ctype``: ValidationError
    naming ``label`` when its extension says another type than the content."""
    base = unicodedata.normalize("NFC", re.split(r"[\\/]", name)[-1])
    base = _UNSAFE_IN_NAME.sub("_", one_line(base)).strip(" .")
    stem, dot, extension = base.rpartition(".")
    if not dot:
        stem, extension = base, ""
    claimed = mimetypes.guess_type(f"x.{extension}")[0] if extension else None
    if claimed is not None and claimed != ctype:
        raise ValidationError(
            f"{label}: the name says {claimed} but the content is {ctype}; rename the file or "
            "attach the right one.",
            details={"file": label, "content_type": ctype, "name_type": claimed},
        )
    if claimed is None:  # no extension, or one that names no type: the content's is added
        stem, suffix = base, ALLOWED_TYPES[ctype]
    else:
        suffix = f".{extension.lower()}"
    stem = (stem.strip(" .") or "attachment")[: MAX_NAME - len(suffix)].rstrip(" .")
    return (stem or "attachment") + suffix


def read_attachment(path: Path) -> tuple[str, str, bytes]:
    """(safe file name, content type, data) of a file, or ValidationError naming the file."""
    label = f"--attach {path}"
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ValidationError(
                f"{label}: {size:,} bytes is over the {MAX_BYTES:,}-byte limit.", details={"file": label}
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # a file still growing is bounded too
    except FileNotFoundError:
        raise ValidationError(f"{label}: file not found.", details={"file": label}) from None
    except IsADirectoryError:
        raise ValidationError(f"{label}: a directory, not a file.", details={"file": label}) from None
    except PermissionError:
        raise ValidationError(
            f"{label}: cannot be read (permission denied).", details={"file": label}
        ) from None
    if len(data) > MAX_BYTES:
        raise ValidationError(f"{label}: over the {MAX_BYTES:,}-byte limit.", details={"file": label})
    ctype = content_type(data, label)
    return safe_name(path.name, ctype, label), ctype, data


async def attach(session: AsyncSession, alert: Alert, paths: list[Path], *, now: datetime) -> int:
    """Store the files with the alert (caller commits); all or nothing."""
    if len(paths) > MAX_FILES:
        raise ValidationError(f"--attach: at most {MAX_FILES} files per alert.")
    files = [read_attachment(p) for p in paths]  # every check before anything is written
    for name, ctype, data in files:
        session.add(
            AlertAttachment(alert_id=alert.id, filename=name, content_type=ctype, data=data, created_at=now)
        )
    return len(files)
