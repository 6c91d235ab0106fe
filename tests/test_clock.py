"""Local wall-clock times (the officers' pages' send and due times) turned into UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.core.clock import from_local
from alerts.core.errors import ValidationError

PARIS = ZoneInfo("Europe/Paris")


def test_an_ordinary_local_time_is_its_utc_instant() -> None:
    assert from_local(datetime(2027, 1, 15, 9, 30), PARIS, field="due") == datetime(
        2027, 1, 15, 8, 30, tzinfo=UTC
    )
    assert from_local(datetime(2027, 7, 15, 9, 30), PARIS, field="due") == datetime(
        2027, 7, 15, 7, 30, tzinfo=UTC
    )
    # just outside the hours the clocks skip and repeat
    assert from_local(datetime(2027, 3, 28, 3, 0), PARIS, field="due") == datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
    assert from_local(datetime(2027, 10, 31, 3, 0), PARIS, field="due") == datetime(
        2027, 10, 31, 2, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("when", "said"),
    [
        (
            datetime(2027, 3, 28, 2, 30),
            "send at: 2027-03-28 02:30 does not exist in Europe/Paris (the clocks skip that hour); "
            "pick another time",
        ),
        (
            datetime(2027, 10, 31, 2, 30),
            "send at: 2027-10-31 02:30 happens twice in Europe/Paris (the clocks go back that hour); "
            "pick another time",
        ),
    ],
)
def test_a_time_the_clocks_skip_or_repeat_is_refused_naming_the_field(when: datetime, said: str) -> None:
    with pytest.raises(ValidationError) as refused:
        from_local(when, PARIS, field="send at")
    assert refused.value.message == said
    assert refused.value.details == {"field": "send at"}
