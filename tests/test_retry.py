"""The one retry policy: how many attempts a delivery gets."""

from __future__ import annotations

from datetime import timedelta

from alerts.core.clock import utcnow
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=3, rate_limited_factor=2)
NOW = utcnow()


def test_a_transient_failure_is_retried_until_max_attempts_and_no_more() -> None:
    transient = Outcome(kind=OutcomeKind.TRANSIENT, detail="451")
    retries = [POLICY.decide(attempts=n, unknown_before=0, outcome=transient, now=NOW) for n in (1, 2, 3)]
    assert [r is not None for r in retries] == [True, True, False]


def test_a_server_asked_pause_is_retried_up_to_its_own_larger_limit() -> None:
    slow_down = Outcome(kind=OutcomeKind.TRANSIENT, retry_after=timedelta(seconds=7))
    last_retry = POLICY.decide(attempts=5, unknown_before=0, outcome=slow_down, now=NOW)
    assert last_retry is not None and last_retry >= NOW + timedelta(seconds=7)
    assert POLICY.decide(attempts=6, unknown_before=0, outcome=slow_down, now=NOW) is None


def test_an_unknown_outcome_is_retried_once_after_the_grace_period() -> None:
    unknown = Outcome(kind=OutcomeKind.UNKNOWN)
    assert POLICY.decide(attempts=1, unknown_before=0, outcome=unknown, now=NOW) == NOW + POLICY.unknown_grace
    assert POLICY.decide(attempts=2, unknown_before=1, outcome=unknown, now=NOW) is None
