"""What the CLI reads and prints besides its arguments: case data files in, JSON out.

Shared by the parser (``alerts.cli.parser``) and the handlers (``alerts.cli.commands``) so
that neither imports the other for them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alerts.core.errors import ValidationError
from alerts.core.ids import parse_id
from alerts.core.nesting import MAX_TOML, load_toml


def row_id(text: str) -> int:
    """An id argument: ASCII digits naming a row that can exist (``alerts.core.ids``)."""
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id")
    return value


def read_case_file(path: Path) -> dict[str, Any]:
    """Parse a case data TOML file (bounded in size and depth: ``alerts.core.nesting``), with
    errors naming the file."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(4 * MAX_TOML + 1)  # UTF-8: at most 4 bytes a character
    except FileNotFoundError:
        raise ValidationError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise ValidationError(f"{path}: a directory, not a file.") from None
    except PermissionError:
        raise ValidationError(f"{path}: cannot be read (permission denied).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 (byte {exc.start + 1}).") from None
    try:
        return load_toml(text, str(path))
    except ValidationError as exc:
        raise ValidationError(f"{exc.message}.", details=exc.details) from None


def print_json(data: Any) -> None:
    """JSON on stdout, for scripts."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
