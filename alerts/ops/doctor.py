"""``alerts doctor``: is this deployment ready to send? One line per check, each with its fix.

Run it before going live and after any change. Every check is bounded in time, sends nothing
(the relay sees EHLO, STARTTLS and AUTH, never MAIL) and prints no secret. The exit code is the
worst level found: 0 all ok, 1 a warning, 2 a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from alerts.core.config import Settings
from alerts.ops import local, remote
from alerts.ops.findings import Finding, Level, Probes

Check = Callable[[Settings, Probes], Awaitable[Finding]]


async def examine(settings: Settings, probes: Probes | None = None) -> list[Finding]:
    """Run every check (at once: they wait on different servers); findings in a fixed order."""
    probes = probes or Probes()
    checks: list[tuple[str, Check]] = [
        ("database", local.database),
        ("disk", local.disk),
        ("secret_key", local.secret_key),
        ("templates", local.templates),
        ("smtp", remote.smtp),
        ("telegram", remote.telegram),
        ("dkim", remote.dkim_record),
        ("public_url", remote.public_url),
    ]
    return list(await asyncio.gather(*(_bounded(name, check, settings, probes) for name, check in checks)))


async def _bounded(name: str, check: Check, settings: Settings, probes: Probes) -> Finding:
    """A check that cannot hang the doctor."""
    try:
        return await asyncio.wait_for(check(settings, probes), probes.timeout + 5)
    except TimeoutError:
        return Finding(
            check=name,
            level=Level.FAIL,
            detail=f"no answer within {probes.timeout + 5:.0f} s",
            fix="check that the server it talks to is up and reachable from here",
        )


def worst(findings: list[Finding]) -> Level:
    """The exit code: the worst level found."""
    return max((f.level for f in findings), default=Level.OK)


def format_finding(finding: Finding) -> str:
    """``ok    database    …`` and, unless ok, an indented ``fix:`` line."""
    line = f"{finding.level.name.lower():<5} {finding.check:<11} {finding.detail}"
    return f"{line}\n{'':<18}fix: {finding.fix}" if finding.fix else line
