"""Files sent with an alert's press release: checked before they are stored."""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.errors import ValidationError
from alerts.store.models import Alert, AlertAttachment

#: Press releases carry documents and pictures, nothing executable.
ALLOWED_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_BYTES = 10 * 1024 * 1024
MAX_FILES = 10


def read_attachment(path: Path) -> tuple[str, str, bytes]:
    """(safe filename, content type, data) of a file, or ValidationError naming the file."""
    ctype, _ = mimetypes.guess_type(path.name)
    if ctype not in ALLOWED_TYPES:
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise ValidationError(
            f"--attach {path}: type {ctype or 'unknown'} is not allowed; allowed: {allowed}."
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ValidationError(f"--attach {path}: file not found.") from None
    if size > MAX_BYTES:
        raise ValidationError(f"--attach {path}: {size:,} bytes is over the {MAX_BYTES:,}-byte limit.")
    # the stored name is the file's own name, never a path the recipient could be led through
    name = path.name.replace("\r", "").replace("\n", "")
    return name, ctype, path.read_bytes()


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
