"""AudienceReports: who an alert would reach, worked out once for the calls that ask the same
question at about the same time; kept a while only when someone stopped waiting for it
(alerts/delivery/audience_reports.py), and through ``overview.audience_within`` on a real
database."""

from __future__ import annotations

import asyncio

import pytest

from alerts.actions import alerts as alert_actions
from alerts.actions import overview
from alerts.app import open_app
from alerts.compose import drafts
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.delivery.audience_report import AudienceReport
from alerts.delivery.audience_reports import AudienceReports
from tests.factories import RENDERER, add_contacts, approved_alert, make_users
from tests.test_live_counts import Clock


def made(alert_id: int) -> AudienceReport:
    return AudienceReport(
        alert_id=alert_id, languages=("en",), channels=("email",), reached=(), fallbacks=(), left_out=()
    )


class Work:
    """A piece of work that answers when ``go`` is set, and counts how often it was started."""

    def __init__(self, *, fails: bool = False) -> None:
        self.go = asyncio.Event()
        self.runs = 0
        self.fails = fails

    async def __call__(self) -> AudienceReport:
        self.runs += 1
        await self.go.wait()
        if self.fails:
            raise RuntimeError("the database went away")
        return made(self.runs)


async def test_calls_with_the_same_question_share_one_piece_of_work_while_it_runs() -> None:
    reports, work = AudienceReports(), Work()
    first = asyncio.create_task(reports.get("q", work))
    second = asyncio.create_task(reports.get("q", work))
    other = asyncio.create_task(reports.get("other", work))
    await asyncio.sleep(0)
    work.go.set()
    one, two, three = await asyncio.gather(first, second, other)
    assert one is two and one is not three
    assert (work.runs, reports.started) == (2, 2)


async def test_a_report_waited_for_to_the_end_is_not_kept() -> None:
    reports, work = AudienceReports(), Work()
    work.go.set()
    first = await reports.get("q", work)
    again = await reports.get("q", work)
    assert first is not None and again is not None
    assert (first.alert_id, again.alert_id) == (1, 2)  # counted afresh: contacts may have changed


async def test_a_report_left_by_a_caller_goes_on_and_answers_the_pages_for_keep_seconds() -> None:
    clock = Clock()
    reports, work = AudienceReports(keep=10.0, clock=clock), Work()
    assert await reports.get("q", work, within=0.01, kept=True) is None  # the page shows without it
    assert len(reports.background) == 1  # still being worked out
    work.go.set()
    later = await reports.get("q", work, kept=True)  # the page's request for it
    assert later is not None and later.alert_id == 1 and work.runs == 1
    clock.now += 9.0
    assert await reports.get("q", work, within=0.01, kept=True) is later  # kept: within keep of its end
    clock.now += 2.0
    fresh = await reports.get("q", work, kept=True)
    assert fresh is not None and fresh.alert_id == 2  # older than keep: counted again


async def test_a_caller_that_does_not_take_kept_reports_counts_afresh_unless_a_count_runs() -> None:
    reports, work = AudienceReports(), Work()
    assert await reports.get("q", work, within=0.01, kept=True) is None
    running = await reports.get("q", work, within=0.01)  # the API: the count running will do
    assert running is None and work.runs == 1
    work.go.set()
    kept = await reports.get("q", work, kept=True)
    fresh = await reports.get("q", work)  # the API, after it ended: counted again
    assert kept is not None and fresh is not None
    assert (kept.alert_id, fresh.alert_id, work.runs) == (1, 2, 2)


async def test_at_most_limit_pieces_of_work_run_at_once_the_others_wait_their_turn() -> None:
    reports, works = AudienceReports(limit=2), [Work() for _ in range(3)]
    calls = [asyncio.create_task(reports.get(i, work)) for i, work in enumerate(works)]
    await asyncio.sleep(0.01)
    assert [w.runs for w in works] == [1, 1, 0]  # the third waits for a turn
    works[0].go.set()
    await calls[0]
    works[2].go.set()
    await asyncio.sleep(0.01)
    assert works[2].runs == 1 and calls[2].done()
    works[1].go.set()
    await asyncio.gather(*calls)


async def test_work_that_takes_too_long_is_stopped_and_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    reports, work = AudienceReports(timeout=0.05), Work()
    assert await reports.get("q", work, within=0.01, kept=True) is None
    with pytest.raises(TimeoutError):
        await reports.get("q", work, kept=True)
    work.go.set()
    assert await reports.get("q", work, kept=True) is not None and work.runs == 2
    assert "an audience report failed" in caplog.text  # nobody may have been waiting: logged


async def test_a_failed_report_reaches_every_waiting_caller_and_is_not_kept() -> None:
    reports, work = AudienceReports(), Work(fails=True)
    assert await reports.get("q", work, within=0.01) is None
    waiting = [asyncio.create_task(reports.get("q", work)) for _ in range(2)]
    await asyncio.sleep(0)
    work.go.set()
    for task in waiting:
        with pytest.raises(RuntimeError, match="went away"):
            await task
    work.fails = False
    assert await reports.get("q", work) is not None
    assert work.runs == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_work_another_waits_on() -> None:
    reports, work = AudienceReports(), Work()
    gone = asyncio.create_task(reports.get("q", work))
    stays = asyncio.create_task(reports.get("q", work))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    work.go.set()
    assert (await stays) is not None
    assert gone.cancelled() and work.runs == 1


async def test_closing_cancels_the_work_still_running() -> None:
    reports, work = AudienceReports(), Work()
    assert await reports.get("q", work, within=0.01) is None
    (task,) = list(reports.background)
    await reports.close()
    assert task.cancelled() and len(reports.background) == 0


async def test_the_page_can_leave_a_report_and_the_next_call_takes_it_up_on_a_real_database(
    db_url: str,
) -> None:
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 3)
            alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email",))
        app.reports.keep = 3600.0  # however slow the machine
        assert await overview.audience_within(app, officer, alert.id, within=0, kept=True) is None
        report = await overview.audience(app, officer, alert.id, kept=True)
        assert report.deliveries == 3 and app.reports.started == 1  # the work the page left
        async with app.sessions.begin() as session:
            await add_contacts(session, 2, start=10, kind="media")
        # kept for the page's own request (and the pages' for KEEP seconds)…
        assert (await overview.audience(app, officer, alert.id, kept=True)).deliveries == 3
        # …but the alert's own changes are another question: counted at once
        async with app.sessions.begin() as session:
            edited = await drafts.get_alert(session, alert.id)
            await drafts.edit_alert(
                session,
                edited,
                user=officer,
                audience=drafts.Audience(lists=("urgent-appeals",), kinds=("media",), channels=("email",)),
                validate_case=RENDERER.validate_case,
                now=utcnow(),
            )
        assert (await overview.audience(app, officer, alert.id, kept=True)).deliveries == 2
        assert app.reports.started == 2
        # a draft edited again stays a draft in the same languages: its audience is the question
        assert await overview.audience_within(app, officer, alert.id, within=0, kept=True) is None
        async with app.sessions.begin() as session:
            await drafts.edit_alert(
                session,
                await drafts.get_alert(session, alert.id),
                user=officer,
                audience=drafts.Audience(lists=("urgent-appeals",), channels=("email",)),
                validate_case=RENDERER.validate_case,
                now=utcnow(),
            )
        assert (await overview.audience(app, officer, alert.id, kept=True)).deliveries == 5


async def test_a_consent_recorded_is_counted_afresh_on_the_page(db_url: str) -> None:
    """What the report depends on besides the contacts is in its question: a page never shows a
    count kept from before the defender's consent was recorded."""
    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        app.reports.keep = 3600.0
        async with app.sessions.begin() as session:
            officer, reviewer = await make_users(session)
            await add_contacts(session, 2)
            await add_contacts(session, 1, kind="public", start=10)
            alert = await approved_alert(session, author=officer, reviewer=reviewer, channels=("email",))
        assert await overview.audience_within(app, officer, alert.id, within=0, kept=True) is None
        first = await overview.audience(app, officer, alert.id, kept=True)
        assert first.deliveries == 2 and first.left_out_counts == {"no_consent": 1}
        await alert_actions.record_consent(app, officer, alert.id, scope="public")
        after = await overview.audience(app, officer, alert.id, kept=True)
        assert after.deliveries == 3 and not after.left_out_counts
        assert app.reports.started == 2
