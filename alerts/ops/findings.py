"""What a doctor's check finds: a level, what it saw and the fix; and what it reaches out with."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import IntEnum

from dns.asyncresolver import Resolver


class Level(IntEnum):
    """How a check came out; its value is the exit code it asks for."""

    OK = 0  # ready
    WARN = 1  # works, but should be changed before real recipients depend on it
    FAIL = 2  # will not work, or will harm someone: fix before going live


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One check's outcome: what was found and, unless ok, what to do."""

    check: str
    level: Level
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Probes:
    """What the checks reach the world with; tests put loopback servers behind them."""

    resolver: Resolver | None = None  # DNS for the DKIM record (None: the system's)
    tls: ssl.SSLContext | None = None  # trust for the relay and public_url (None: the system's)
    timeout: float = 10.0  # seconds, for each network check
    min_free_bytes: int = 100 << 20  # SQLite's disk: fail below this
    warn_free_bytes: int = 1 << 30  # … and warn below this (or below twice the database)
