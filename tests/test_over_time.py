"""The chart of an alert's deliveries over time, read as events come (``over_time.Charts``):
after every change the chart is the one the database's events give, never what was kept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.core.clock import utcnow
from alerts.delivery.over_time import Charts, OverTime, Read, over_time
from alerts.delivery.publish import publish
from alerts.store.db import commits_in_id_order
from alerts.store.models import Delivery, DeliveryEvent, User
from tests.factories import approved_alert, published_alert

T0 = utcnow().replace(microsecond=0) - timedelta(hours=1)


async def _add(
    sessions: async_sessionmaker[AsyncSession],
    alert_id: int,
    *events: tuple[int, str, datetime],
    id: int | None = None,
) -> None:
    """Events (delivery index, state reached, when) for the alert's deliveries in id order."""
    async with sessions.begin() as session:
        ids = list(
            await session.scalars(
                select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id)
            )
        )
        for k, state, at in events:
            session.add(
                DeliveryEvent(
                    id=id,
                    delivery_id=ids[k],
                    alert_id=alert_id,
                    type=state,
                    at=at,
                    from_state="sending",
                    to_state=state,
                )
            )


async def _chart(
    sessions: async_sessionmaker[AsyncSession], alert_id: int, charts: Charts | None, *, sending: bool = False
) -> OverTime:
    async with sessions() as session:
        return await over_time(session, alert_id, buckets=3, charts=charts, sending=sending)


async def test_the_chart_kept_counts_every_event_added_since(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 4)
    charts = Charts()
    empty = await _chart(sessions, alert_id, charts)
    assert empty.channels == {} and empty.start is None
    await _add(
        sessions,
        alert_id,
        (0, "sent", T0),
        (1, "sent", T0 + timedelta(seconds=10)),
        (2, "failed", T0 + timedelta(seconds=29)),
    )
    chart = await _chart(sessions, alert_id, charts)
    assert chart.start == T0
    assert chart.channels == {"email": {"sent": [1, 1, 0], "failed": [0, 0, 1], "bounced": [0, 0, 0]}}
    # a later event widens the slices: every count moves, from what was kept plus the new one
    await _add(sessions, alert_id, (3, "bounced", T0 + timedelta(seconds=59)), (0, "delivered", T0))
    chart = await _chart(sessions, alert_id, charts)
    assert chart.step == timedelta(seconds=59) / 3
    assert chart.channels == {"email": {"sent": [3, 0, 0], "failed": [0, 1, 0], "bounced": [0, 0, 1]}}
    assert chart == await _chart(sessions, alert_id, None)  # what a full read gives


async def _top_event_id_or_skip(sessions: async_sessionmaker[AsyncSession]) -> int:
    """The highest event id so far, to write events "committed late" below it (PostgreSQL only)."""
    async with sessions() as session:
        if commits_in_id_order(session):
            pytest.skip("SQLite: one writer at a time takes the next id and commits")
        return int(await session.scalar(select(func.max(DeliveryEvent.id))) or 0)


async def test_an_event_committed_late_with_a_lower_id_is_counted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL hands out ids before commit: a transaction may commit after one with higher ids."""
    alert_id = await published_alert(sessions, 3)
    top = await _top_event_id_or_skip(sessions)
    charts = Charts()
    await _add(sessions, alert_id, (0, "sent", T0), id=top + 100)
    await _add(sessions, alert_id, (1, "sent", T0 + timedelta(seconds=30)), id=top + 101)
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 1]
    await _add(sessions, alert_id, (2, "failed", T0 + timedelta(seconds=15)), id=top + 50)
    chart = await _chart(sessions, alert_id, charts)
    assert chart.channels["email"] == {"sent": [1, 0, 1], "failed": [0, 1, 0], "bounced": [0, 0, 0]}


async def test_events_deleted_leave_no_chart_behind(sessions: async_sessionmaker[AsyncSession]) -> None:
    """``alerts prune`` deletes an alert's events: the chart kept goes with them."""
    alert_id = await published_alert(sessions, 2)
    charts = Charts()
    await _add(sessions, alert_id, (0, "sent", T0), (1, "sent", T0 + timedelta(seconds=5)))
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 1]
    async with sessions.begin() as session:
        await session.execute(delete(DeliveryEvent).where(DeliveryEvent.alert_id == alert_id))
    assert (await _chart(sessions, alert_id, charts)).channels == {}


async def test_the_chart_of_an_alert_whose_one_event_has_the_first_id_goes_when_it_is_pruned(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The first event a database holds has id 1: once pruned, the alert has no events (its
    highest id counts as 0, below the 1 kept), and the chart kept goes with it."""
    alert_id = await published_alert(sessions, 1)
    async with sessions.begin() as session:
        await session.execute(delete(DeliveryEvent))
    await _add(sessions, alert_id, (0, "sent", T0), id=1)
    charts = Charts()
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 0]
    async with sessions.begin() as session:
        await session.execute(delete(DeliveryEvent).where(DeliveryEvent.alert_id == alert_id))
    assert (await _chart(sessions, alert_id, charts)).channels == {}


async def test_the_charts_kept_are_of_the_last_alerts_viewed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    charts = Charts(size=2)
    first, second, third = 101, 102, 103  # no such alerts: nothing to chart, still kept
    for alert_id in (first, second, first, third):
        await _chart(sessions, alert_id, charts)
    assert list(charts.kept) == [first, third]


async def test_opens_clicks_and_answers_are_not_counted_as_more_sends(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """They keep the delivery's state (``sent``) as their ``to_state``; only the send counts."""
    alert_id = await published_alert(sessions, 2)
    await _add(sessions, alert_id, (0, "sent", T0), (1, "failed", T0 + timedelta(minutes=1)))
    async with sessions.begin() as session:
        first = await session.scalar(select(func.min(Delivery.id)).where(Delivery.alert_id == alert_id))
        for kind in ("opened", "clicked", "responded", "unsubscribed"):
            session.add(
                DeliveryEvent(
                    delivery_id=first, alert_id=alert_id, type=kind, at=T0 + timedelta(minutes=2),
                    from_state="sent", to_state="sent",
                )
            )  # fmt: skip
    chart = await _chart(sessions, alert_id, Charts())
    assert {state: sum(col) for state, col in chart.channels["email"].items()} == {
        "sent": 1,
        "failed": 1,
        "bounced": 0,
    }


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements on the events table run meanwhile."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "delivery_events" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


async def test_a_kept_chart_is_read_on_from_where_it_was_in_one_statement(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The alert page is reloaded while the alert sends: each view reads only the events since
    the last one, in one statement, instead of all the alert's events again."""
    alert_id = await published_alert(sessions, 3)
    charts = Charts()
    await _add(sessions, alert_id, (0, "sent", T0))
    await _chart(sessions, alert_id, charts)
    await _add(sessions, alert_id, (1, "sent", T0 + timedelta(seconds=30)))
    with _statements(engine) as statements:
        chart = await _chart(sessions, alert_id, charts)
    assert chart.channels["email"]["sent"] == [1, 0, 1]
    assert len(statements) == 1, statements
    with _statements(engine) as statements:
        assert await _chart(sessions, alert_id, charts) == chart
    assert len(statements) == 1, statements


async def test_after_a_late_commit_the_chart_is_read_again_once_then_read_on(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL: an event committed late with a lower id makes the next view read the alert's
    events in full (the kept chart missed it); the views after that read on from there again."""
    alert_id = await published_alert(sessions, 3)
    top = await _top_event_id_or_skip(sessions)
    charts = Charts()
    await _add(sessions, alert_id, (0, "sent", T0), id=top + 100)
    await _chart(sessions, alert_id, charts)
    await _add(sessions, alert_id, (1, "failed", T0 + timedelta(seconds=30)), id=top + 50)
    with _statements(engine) as statements:
        chart = await _chart(sessions, alert_id, charts)
    assert chart.channels["email"] == {"sent": [1, 0, 0], "failed": [0, 0, 1], "bounced": [0, 0, 0]}
    assert len(statements) == 2, statements  # the read on, then the full read
    with _statements(engine) as statements:
        assert await _chart(sessions, alert_id, charts) == chart
    assert len(statements) == 1, statements


async def _add_by_channel(
    sessions: async_sessionmaker[AsyncSession], alert_id: int, *events: tuple[str, int, str, datetime]
) -> None:
    """Events (channel, index among its deliveries, state reached, when)."""
    async with sessions.begin() as session:
        rows = (
            await session.execute(
                select(Delivery.channel, Delivery.id)
                .where(Delivery.alert_id == alert_id)
                .order_by(Delivery.id)
            )
        ).all()
        for channel, k, state, at in events:
            delivery_id = [i for c, i in rows if c == channel][k]
            session.add(
                DeliveryEvent(
                    delivery_id=delivery_id, alert_id=alert_id, type=state, at=at,
                    from_state="sending", to_state=state,
                )
            )  # fmt: skip


async def test_the_chart_has_24_slices_per_channel_and_its_peak_is_one_channels_busiest_slice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 3, channels=("email", "telegram"))
    async with sessions() as session:
        empty = await over_time(session, alert_id)
    assert (empty.channels, empty.peak, empty.start, empty.step) == ({}, 0, None, timedelta(0))
    await _add_by_channel(
        sessions,
        alert_id,
        ("telegram", 0, "sent", T0),
        ("telegram", 1, "sent", T0 + timedelta(seconds=1)),
        ("email", 0, "sent", T0 + timedelta(seconds=2)),
        ("email", 1, "failed", T0 + timedelta(seconds=3)),
        ("email", 2, "bounced", T0 + timedelta(seconds=4)),
        ("telegram", 2, "failed", T0 + timedelta(seconds=240)),
    )
    async with sessions() as session:
        chart = await over_time(session, alert_id)
    assert list(chart.channels) == ["email", "telegram"]
    assert chart.start == T0 and chart.step == timedelta(seconds=10)
    first_slice = [0] * 23
    assert chart.channels["email"] == {
        "sent": [1, *first_slice],
        "failed": [1, *first_slice],
        "bounced": [1, *first_slice],
    }
    assert chart.channels["telegram"] == {
        "sent": [2, *first_slice],
        "failed": [*first_slice, 1],
        "bounced": [0] * 24,
    }
    assert chart.peak == 3  # the email column at T0: the channels' slices are not added up


async def test_events_at_one_instant_fill_the_first_of_slices_one_second_long(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 3)
    await _add(sessions, alert_id, (0, "sent", T0), (1, "sent", T0), (2, "bounced", T0))
    chart = await _chart(sessions, alert_id, Charts())
    assert chart.start == T0 and chart.step == timedelta(seconds=1)
    assert chart.channels == {"email": {"sent": [2, 0, 0], "failed": [0, 0, 0], "bounced": [1, 0, 0]}}
    assert chart.peak == 3


async def _second_alert(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Another alert, to the contacts ``published_alert`` added."""
    async with sessions.begin() as session:
        officer = await session.scalar(select(User).where(User.name == "olga"))
        reviewer = await session.scalar(select(User).where(User.name == "rafael"))
        assert officer is not None and reviewer is not None
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())
        return alert.id


async def test_another_alerts_events_never_reach_the_chart(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await published_alert(sessions, 2)
    other = await _second_alert(sessions)
    charts = Charts()
    await _add(sessions, mine, (0, "sent", T0))
    await _add(sessions, other, (0, "failed", T0 + timedelta(seconds=30)))
    chart = await _chart(sessions, mine, charts)
    assert chart.channels == {"email": {"sent": [1, 0, 0], "failed": [0, 0, 0], "bounced": [0, 0, 0]}}
    await _add(sessions, other, (1, "bounced", T0 - timedelta(seconds=30)))
    with _statements(engine) as statements:  # read on: nothing new of this alert, nothing read again
        assert await _chart(sessions, mine, charts) == chart
    assert len(statements) == 1, statements
    await _add(sessions, mine, (1, "sent", T0 + timedelta(seconds=3)))
    assert (await _chart(sessions, mine, charts)).channels["email"]["sent"] == [1, 0, 1]
    full = Charts()
    await _chart(sessions, mine, full)
    assert charts.kept[mine][0] == full.kept[mine][0]  # what was kept: this alert's events only


def test_the_charts_of_the_last_16_alerts_viewed_are_kept() -> None:
    charts = Charts()
    for alert_id in range(1, 18):
        charts.put(alert_id, charts.get(alert_id))
    assert list(charts.kept) == list(range(2, 18))
    charts.get(2)  # viewed again: the most recent
    charts.put(18, charts.get(18))
    assert list(charts.kept) == [*range(4, 18), 2, 18]


async def test_a_pruned_alerts_chart_goes_while_another_alert_sends_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Its events deleted, the chart kept is dropped even though newer events of other alerts
    remain (the highest id that tells a prune is this alert's)."""
    mine = await published_alert(sessions, 2)
    other = await _second_alert(sessions)
    charts = Charts()
    await _add(sessions, mine, (0, "sent", T0), (1, "sent", T0 + timedelta(seconds=5)))
    assert (await _chart(sessions, mine, charts)).channels["email"]["sent"] == [1, 0, 1]
    await _add(sessions, other, (0, "sent", T0))
    async with sessions.begin() as session:
        await session.execute(delete(DeliveryEvent).where(DeliveryEvent.alert_id == mine))
    assert (await _chart(sessions, mine, charts)).channels == {}


async def test_events_read_on_that_happened_before_those_kept_fall_in_their_own_slices(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alert_id = await published_alert(sessions, 4)
    charts = Charts()
    await _add(
        sessions, alert_id, (0, "sent", T0 + timedelta(seconds=50)), (1, "sent", T0 + timedelta(seconds=59))
    )
    await _chart(sessions, alert_id, charts)
    await _add(sessions, alert_id, (2, "sent", T0), (3, "sent", T0 + timedelta(seconds=1)))  # recorded late
    chart = await _chart(sessions, alert_id, charts)
    assert chart.channels["email"]["sent"] == [2, 0, 2]
    assert chart == await _chart(sessions, alert_id, None)


async def test_a_large_alerts_chart_read_less_than_fresh_ago_is_drawn_from_what_was_read(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """During a large send every view would read the events since the last one: within
    ``fresh`` seconds of a read, a large alert's chart is drawn without asking the database."""
    alert_id = await published_alert(sessions, 4)  # 4 "queued" events: large below
    now = [100.0]
    charts = Charts(large=4, fresh=1.0, clock=lambda: now[0])
    await _add(sessions, alert_id, (0, "sent", T0))
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 0]
    await _add(sessions, alert_id, (1, "sent", T0 + timedelta(seconds=30)))
    now[0] += 0.5
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 0]  # kept
    now[0] += 0.6  # a second after the read: the database again
    assert (await _chart(sessions, alert_id, charts)).channels["email"]["sent"] == [1, 0, 1]
    small = Charts(large=7, fresh=1.0, clock=lambda: now[0])  # 6 events now: fewer than "large"
    await _chart(sessions, alert_id, small)
    await _add(sessions, alert_id, (2, "failed", T0 + timedelta(seconds=15)))
    assert (await _chart(sessions, alert_id, small)).channels["email"]["failed"] == [0, 1, 0]


async def test_a_sending_alerts_chart_up_to_stale_is_shown_at_once_and_read_again_in_the_background(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """With the app's read sessions, a view of a large alert that is sending, between
    ``fresh`` and ``stale`` seconds after the last read, gets that read at once, and one read
    of what came since starts in the background (one, however many views come meanwhile);
    past ``stale``, or once the alert no longer sends, the view reads."""
    alert_id = await published_alert(sessions, 4)
    now = [100.0]
    charts = Charts(reads=sessions, large=4, fresh=1.0, stale=3.0, clock=lambda: now[0])

    async def sent(*, sending: bool = True) -> list[int]:
        return (await _chart(sessions, alert_id, charts, sending=sending)).channels["email"]["sent"]

    try:
        await _add(sessions, alert_id, (0, "sent", T0))
        assert await sent() == [1, 0, 0]
        await _add(sessions, alert_id, (1, "sent", T0 + timedelta(seconds=30)))
        now[0] += 1.5
        for _ in range(3):  # at once, as read 1.5 s ago; one read in the background for all three
            assert await sent() == [1, 0, 0]
        assert len(charts.background) == 1 and charts.refreshing == {alert_id}
        await charts.background.wait()
        assert charts.kept[alert_id][1] == now[0] and not charts.refreshing
        assert await sent() == [1, 0, 1]
        await _add(sessions, alert_id, (2, "sent", T0 + timedelta(seconds=15)))
        now[0] += 3.0  # past stale: this view reads for itself
        assert await sent() == [1, 1, 1] and not charts.background
        await _add(sessions, alert_id, (3, "sent", T0 + timedelta(seconds=16)))
        now[0] += 1.5  # no longer sending (sent, paused, closed): past fresh, the view reads
        assert await sent(sending=False) == [1, 2, 1] and not charts.background
    finally:
        await charts.close()


async def test_a_background_read_that_fails_is_logged_and_a_view_past_stale_reads(
    sessions: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    alert_id = await published_alert(sessions, 4)
    now = [100.0]

    def broken() -> AsyncSession:
        raise RuntimeError("the database is gone")

    charts = Charts(reads=cast(Any, broken), large=4, fresh=1.0, stale=3.0, clock=lambda: now[0])
    await _chart(sessions, alert_id, charts, sending=True)
    await _add(sessions, alert_id, (0, "sent", T0))
    now[0] += 1.5
    assert (await _chart(sessions, alert_id, charts, sending=True)).channels == {}  # as kept
    await charts.background.wait()
    assert f"reading alert {alert_id}'s events in the background failed" in caplog.text
    assert not charts.refreshing and charts.kept[alert_id][1] == 100.0  # what was kept stays
    now[0] += 2.0
    chart = await _chart(sessions, alert_id, charts, sending=True)
    assert chart.channels["email"]["sent"] == [1, 0, 0]


def test_a_read_never_replaces_one_that_started_later() -> None:
    """Two reads of one alert (a view's and a background one) may end in either order: the
    chart keeps the later start, so it never goes back."""
    charts = Charts(clock=lambda: 0.0)
    later, earlier = Read(events=2, last_id=20), Read(events=1, last_id=10)
    charts.put(1, later, at=5.0)
    charts.put(1, earlier, at=4.0)
    assert charts.get(1) == later
