"""What the CLI reads and prints besides its arguments: case data files in, JSON out.

Shared by the parser (``alerts.cli.parser``) and the handlers (``alerts.cli.commands``) so
that neither imports the other for them.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from alerts.core.errors import ValidationError
from alerts.core.ids import parse_id


def row_id(text: str) -> int:
    """An id argument: ASCII digits naming a row that can exist (``alerts.core.ids``)."""
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id")
    return value


def read_case_file(path: Path) -> dict[str, Any]:
    """Parse a case data TOML file, with errors naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ValidationError(f"{path}: file not found.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}.") from None


def print_json(data: Any) -> None:
    """JSON on stdout, for scripts."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
