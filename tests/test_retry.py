"""The one retry policy (alerts/delivery/retry.py): when a failed send is tried again.

Found by the mutation run (bench/mutation.py): the dispatcher tests reach ``decide`` but did
not pin its bounds, so one retry too many, a backoff that shrinks and a grace in the past all
passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.core.config import DispatcherSettings
from alerts.core.types import Outcome, OutcomeKind
from alerts.delivery.retry import RetryPolicy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    max_attempts=4,
    base=timedelta(seconds=30),
    cap=timedelta(hours=1),
    unknown_grace=timedelta(minutes=15),
    rate_limited_factor=5,
)
TRANSIENT = Outcome(kind=OutcomeKind.TRANSIENT)
SAMPLES = 200  # jitter is random: enough draws that a wrong range shows


def decide(attempts: int, outcome: Outcome = TRANSIENT, *, unknown_before: int = 0) -> datetime | None:
    return POLICY.decide(attempts=attempts, unknown_before=unknown_before, outcome=outcome, now=NOW)


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


def test_transient_failures_are_retried_until_max_attempts_and_not_once_more() -> None:
    assert decide(POLICY.max_attempts - 1) is not None
    assert decide(POLICY.max_attempts) is None
    assert decide(POLICY.max_attempts + 1) is None


def test_backoff_doubles_from_base_with_jitter_in_the_upper_half_and_stops_at_the_cap() -> None:
    base = POLICY.base
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


def test_rate_limited_sends_may_repeat_factor_times_max_attempts() -> None:
    limited = Outcome(kind=OutcomeKind.TRANSIENT, retry_after=timedelta(seconds=1))
    limit = POLICY.max_attempts * POLICY.rate_limited_factor
    assert decide(POLICY.max_attempts, limited) is not None
    assert decide(limit - 1, limited) is not None
    assert decide(limit, limited) is None


def test_an_unknown_outcome_is_retried_once_after_the_grace() -> None:
    unknown = Outcome(kind=OutcomeKind.UNKNOWN)
    assert decide(1, unknown) == NOW + POLICY.unknown_grace
    assert decide(1, unknown, unknown_before=1) is None


def test_permanent_and_sent_are_never_retried() -> None:
    assert decide(1, Outcome(kind=OutcomeKind.PERMANENT)) is None
    assert decide(1, Outcome(kind=OutcomeKind.SENT)) is None
