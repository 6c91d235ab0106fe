"""Every retry decision, in one place (like procrastinate's RetryStrategy)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome, OutcomeKind


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring a server's ``retry_after``.

    A server-requested pause (429 / RetryAfter) is not the recipient's fault, so it may
    repeat up to ``rate_limited_factor`` times as often as other transient failures.
    An UNKNOWN outcome (no answer after the data was sent) is retried once, after
    ``unknown_grace``; a second UNKNOWN fails the delivery rather than risk a third copy.
    """

    max_attempts: int = 8
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    unknown_grace: timedelta = timedelta(minutes=15)
    rate_limited_factor: int = 5

    @classmethod
    def from_settings(cls, s: DispatcherSettings) -> RetryPolicy:
        """Build the policy from the [dispatcher] section."""
        return cls(
            max_attempts=s.max_attempts,
            base=timedelta(seconds=s.backoff_base),
            cap=timedelta(seconds=s.backoff_max),
            unknown_grace=timedelta(seconds=s.unknown_grace_seconds),
        )

    def decide(
        self, *, attempts: int, unknown_before: int, outcome: Outcome, now: datetime
    ) -> datetime | None:
        """When to try again, or None to give up (the delivery fails)."""
        if outcome.kind is OutcomeKind.UNKNOWN:
            return now + self.unknown_grace if unknown_before == 0 else None
        if outcome.kind is not OutcomeKind.TRANSIENT:
            return None
        if outcome.retry_after is not None:
            if attempts >= self.max_attempts * self.rate_limited_factor:
                return None
            # honour the server's value exactly, plus a little jitter so a crowd of
            # deferred deliveries does not hit the server in the same millisecond
            return now + outcome.retry_after + timedelta(seconds=random.uniform(0, 0.25))
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.cap, self.base * (2 ** max(attempts - 1, 0)))
        return now + timedelta(seconds=random.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))
