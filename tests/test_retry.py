"""The one retry policy: how many attempts a delivery gets, and when.

The bounds of ``decide`` and ``from_settings`` below were found by the mutation run
(bench/mutation.py): the dispatcher tests reach them but did not pin them, so a backoff that
shrinks, a grace in the past or a wider jitter passed."""

from __future__ import annotations

from datetime import datetime, timedelta

from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings
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


# The rest: found by the mutation run.

LONG = RetryPolicy(max_attempts=10)  # room for the backoff to grow
TRANSIENT = Outcome(kind=OutcomeKind.TRANSIENT)
SAMPLES = 200  # jitter is random: enough draws that a wrong range shows


def decide(attempts: int, outcome: Outcome = TRANSIENT) -> datetime | None:
    return LONG.decide(attempts=attempts, unknown_before=0, outcome=outcome, now=NOW)


def delays(attempts: int, outcome: Outcome = TRANSIENT) -> list[timedelta]:
    result = []
    for _ in range(SAMPLES):
        when = decide(attempts, outcome)
        assert when is not None
        result.append(when - NOW)
    return result


def test_from_settings_takes_every_value_from_the_dispatcher_section() -> None:
    settings = DispatcherSettings(
        max_attempts=3, backoff_base=2.0, backoff_max=60.0, unknown_grace_seconds=120.0
    )
    assert RetryPolicy.from_settings(settings) == RetryPolicy(
        max_attempts=3,
        base=timedelta(seconds=2),
        cap=timedelta(seconds=60),
        unknown_grace=timedelta(seconds=120),
    )


def test_backoff_doubles_from_base_with_jitter_in_the_upper_half_and_stops_at_the_cap() -> None:
    base = LONG.base
    for attempts, ceiling in [(0, base), (1, base), (2, 2 * base), (3, 4 * base)]:
        got = delays(attempts)
        assert all(ceiling / 2 <= d <= ceiling for d in got), (attempts, min(got), max(got))
    capped = RetryPolicy(max_attempts=50, base=base, cap=timedelta(minutes=5))
    for _ in range(SAMPLES):
        when = capped.decide(attempts=20, unknown_before=0, outcome=TRANSIENT, now=NOW)
        assert when is not None and timedelta(minutes=2.5) <= when - NOW <= timedelta(minutes=5)


def test_a_servers_retry_after_is_honoured_with_at_most_a_quarter_second_of_jitter() -> None:
    limited = Outcome(kind=OutcomeKind.TRANSIENT, retry_after=timedelta(seconds=7))
    got = delays(1, limited)
    assert all(timedelta(seconds=7) <= d <= timedelta(seconds=7.25) for d in got), (min(got), max(got))
    # the whole quarter second is used, so a crowd of deferred deliveries spreads out
    assert max(got) - min(got) > timedelta(seconds=0.1)


def test_permanent_and_sent_are_never_retried() -> None:
    assert decide(1, Outcome(kind=OutcomeKind.PERMANENT)) is None
    assert decide(1, Outcome(kind=OutcomeKind.SENT)) is None
