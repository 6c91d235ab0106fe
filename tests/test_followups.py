"""Follow-ups against a real database and a real SMTP capture server (real email channel)."""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.app import App, open_app
from alerts.cli.capture import CapturedMessage, CaptureServer, RecordingHandler
from alerts.compose import approval, drafts
from alerts.core.clock import utcnow
from alerts.core.config import DispatcherSettings, Settings
from alerts.core.errors import Conflict, PermissionDenied, ValidationError
from alerts.core.states import AlertStatus
from alerts.delivery import tracking
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.publish import publish, publish_due, schedule
from alerts.followups.manage import (
    add_followup,
    cancel_followup,
    fire,
    get_followup,
    list_followups,
    parse_duration,
)
from alerts.store.models import Alert, Delivery, Followup, User
from alerts.web import make_web_app
from channels.email import EmailChannel
from tests.factories import RENDERER, add_contacts, approved_alert

T0 = datetime(2030, 3, 20, 8, 0, tzinfo=UTC)
FAST = DispatcherSettings(
    backoff_base=0.05, backoff_max=0.1, flush_interval=0.01, lease_seconds=30, max_attempts=3
)


class FlakyHandler(RecordingHandler):
    """Answers 451 to the first ``failures`` messages, then records like the capture server."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def capture(request: pytest.FixtureRequest) -> AsyncIterator[CaptureServer]:
    """A real SMTP server on loopback; ``@pytest.mark.parametrize`` not needed: see ``flaky``."""
    async with CaptureServer() as server:
        yield server


def settings_for(db_url: str, smtp_port: int, **server: object) -> Settings:
    """Settings pointing at the test database and the capture server."""
    s = (
        Settings()
        .replace("database", url=db_url)
        .replace("email", host="127.0.0.1", port=smtp_port, pool_size=2, timeout=5.0)
    )
    s = s.replace("server", public_url="https://alerts.example.org", **server)
    return s.replace("scheduler", timezone="Europe/Paris")


@pytest.fixture
async def app(db_url: str, capture: CaptureServer) -> AsyncIterator[App]:
    """The open App with the real email channel pointed at the capture server."""
    settings = settings_for(db_url, capture.port)
    async with open_app(settings, channels={"email": EmailChannel(settings.email)}) as opened:
        yield opened


async def people(session: AsyncSession) -> tuple[User, User]:
    """An officer and a reviewer, both with mailboxes."""
    officer, _ = await users.create_user(
        session, name="olga", role="officer", email="olga@example.org", now=T0
    )
    reviewer, _ = await users.create_user(
        session, name="rafael", role="reviewer", email="rafael@example.org", now=T0
    )
    return officer, reviewer


async def sent_alert(app: App, n: int = 3, *, kind: str = "authority") -> tuple[int, User]:
    """An alert published to n contacts and sent through the real email channel."""
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, n, kind=kind)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await publish(session, alert, now=utcnow())  # due now, for the real dispatcher
        alert_id = alert.id
    await dispatch(app, alert_id)
    return alert_id, officer


async def dispatch(app: App, alert_id: int) -> None:
    d = Dispatcher(
        sessions=app.sessions,
        channels={"email": app.channels["email"]},
        builder=app.builder,
        settings=FAST,
        publish_scheduled=False,
    )
    await d.run_until_done(alert_id, timeout=10)


async def add(app: App, alert_id: int | None, **kw: object) -> int:
    async with app.sessions.begin() as session:
        user = await users.get_user(session, str(kw.pop("user", "olga")))
        alert = await drafts.get_alert(session, alert_id) if alert_id is not None else None
        f = await add_followup(
            session,
            alert=alert,
            user=user,
            now=kw.pop("now", T0),  # type: ignore[arg-type]
            validate_case=RENDERER.validate_case,
            **kw,
        )  # type: ignore[arg-type]
        return f.id


async def row(app: App, followup_id: int) -> Followup:
    async with app.sessions() as session:
        return await get_followup(session, followup_id)


def body(message: CapturedMessage) -> str:
    parsed = email.message_from_bytes(message.raw)
    part = parsed.get_body(("plain",)) if hasattr(parsed, "get_body") else parsed
    payload = (part or parsed).get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode("utf-8")


def header(message: CapturedMessage, name: str) -> str | None:
    return email.message_from_bytes(message.raw).get(name)


# -- adding and refusing ----------------------------------------------------------------------


async def test_refusals_name_what_is_wrong(app: App) -> None:
    alert_id, _ = await sent_alert(app, 1)
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        (
            {"kind": "reminder", "due_at": T0 - timedelta(minutes=2)},
            Conflict,
            "due time: 2030-03-20T07:58:00+00:00 is in the past; give a future time "
            "(a time within the last minute fires at once).",
        ),
        (
            {"kind": "nudge", "due_at": T0},
            ValidationError,
            "kind: 'nudge' is not a follow-up kind; kinds are reminder, update, send, digest.",
        ),
        (
            {"kind": "update", "due_at": T0 + timedelta(days=1)},
            ValidationError,
            "data: an update follow-up needs the update's case data (like templates/update/example.toml).",
        ),
        (
            {"kind": "update", "due_at": T0, "condition": "no-response", "data": {"x": 1}},
            ValidationError,
            "condition: only reminders are conditional, not update follow-ups.",
        ),
        (
            {"kind": "reminder", "due_at": T0, "condition": "maybe"},
            ValidationError,
            "condition: 'maybe' is not a condition; conditions are no-response, case-open.",
        ),
        (
            {"kind": "reminder", "due_at": T0, "kinds": ["authority"]},
            ValidationError,
            "kind filter: only a no-response condition can be narrowed to contact kinds.",
        ),
        (
            {"kind": "reminder", "due_at": T0, "condition": "no-response", "kinds": ["minister"]},
            ValidationError,
            "kind filter: unknown contact kind 'minister'; kinds are authority, media, press, partner, public.",
        ),
        (
            {"kind": "reminder", "due_at": T0, "data": {"a": 1}},
            ValidationError,
            "data: only update follow-ups take case data, not reminder follow-ups.",
        ),
        (
            {"kind": "update", "due_at": T0, "data": {"family": "urgent-appeal"}},
            ValidationError,
            "data: family 'urgent-appeal' is not an update family; use update or closure.",
        ),
        (
            {"kind": "send", "due_at": T0 + timedelta(hours=1)},
            Conflict,
            f"alert {alert_id} is sent; only an approved alert can be scheduled.",
        ),
        (
            {"kind": "reminder", "due_at": T0, "user": "rafael"},
            PermissionDenied,
            "user 'rafael' (reviewer) may not followup.manage; allowed roles: admin, officer",
        ),
    ]
    for kw, error, message in cases:
        with pytest.raises(error) as info:
            await add(app, alert_id, **kw)
        assert str(info.value) == message, kw
    with pytest.raises(ValidationError, match=r"^alert: a digest covers every open case; give no alert"):
        await add(app, alert_id, kind="digest", due_at=T0)
    with pytest.raises(
        ValidationError, match=r"^alert: a reminder follow-up needs the alert it follows up\.$"
    ):
        await add(app, None, kind="reminder", due_at=T0)
    async with app.sessions() as session:
        assert await list_followups(session) == []  # nothing half-written
        assert (await session.scalars(select(Alert.id))).all() == [alert_id]
    # a time within the last minute is accepted and due at once
    fid = await add(app, alert_id, kind="reminder", due_at=T0 - timedelta(seconds=30))
    assert (await row(app, fid)).due_at == T0


def test_durations() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1w2d") == timedelta(days=9)
    assert parse_duration("90m") == timedelta(minutes=90)
    for bad in ("", "7", "d7", "7 days", "0d", "-1d", "\u0667d", "\u00b2d"):
        with pytest.raises(ValidationError, match="--in: .* not a"):
            parse_duration(bad)
    # no OverflowError from a huge number: a clear refusal naming the field
    for huge in ("99999999999999999999w", "400000w"):
        with pytest.raises(ValidationError, match="--in: .* further than 366000 days"):
            parse_duration(huge)
    assert parse_duration("9999w9999w9999d") == timedelta(weeks=19998, days=9999)  # the API's longest


# -- firing exactly once ----------------------------------------------------------------------


async def test_notice_links_resolve_to_the_officer_alert_page(app: App, capture: CaptureServer) -> None:
    """The link in a reminder (and a digest: the same ``alert_link``) opens a page the web app serves."""
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    fid = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1))
    await fire(app, fid, T0 + timedelta(hours=1))
    [message] = capture.messages()
    [link] = re.findall(r"https://alerts\.example\.org(/\S*)", body(message))
    webapp = make_web_app(app)
    match = await webapp.router.resolve(make_mocked_request("GET", link, app=webapp))
    assert match.http_exception is None, link
    assert match.route.method == "GET" and match.get("id") == str(alert_id)


async def test_reminder_reaches_the_author_late_with_link(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 2)
    capture.handler.clear()
    fid = await add(
        app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1), note="Call the ministry again"
    )
    fired = await fire(app, fid, T0 + timedelta(hours=1, minutes=20))
    assert fired is not None and fired.late_seconds == 1200
    [message] = capture.messages()
    assert message.rcpt_tos == ("olga@example.org",)
    assert message.subject.startswith(f"Follow-up due: alert {alert_id} ")
    text = body(message)
    assert f"https://alerts.example.org/office/alerts/{alert_id}" in text
    assert "Due: 2030-03-20 10:00 CET (late by 20 min: the service was down)" in text  # [scheduler] timezone
    assert "Note: Call the ministry again" in text
    assert header(message, "Message-ID") == f"<followup-{fid}.u1@localhost>"
    f = await row(app, fid)
    assert f.fired_at == T0 + timedelta(hours=1, minutes=20) and f.late_seconds == 1200
    assert f.result == "reminder sent; sent to olga"


async def test_on_time_reminder_does_not_say_late(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    fid = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1))
    await fire(app, fid, T0 + timedelta(hours=1, seconds=2))
    assert "late by" not in body(capture.messages()[0])


async def test_concurrent_fires_act_once(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    fids = [await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(minutes=i)) for i in range(3)]
    now = T0 + timedelta(hours=1)
    results = await asyncio.gather(*(fire(app, fid, now) for fid in fids for _ in range(2)))
    assert sorted(r.followup_id for r in results if r is not None) == fids
    assert results.count(None) == 3
    assert len(capture.messages()) == 3
    assert await fire(app, fids[0], now + timedelta(hours=1)) is None  # and never again
    assert len(capture.messages()) == 3


async def test_cancelled_never_fires_and_fired_cannot_be_cancelled(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    keep = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1))
    drop = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1))
    async with app.sessions.begin() as session:
        olga = await users.get_user(session, "olga")
        await cancel_followup(session, drop, user=olga, now=T0)
    assert await fire(app, drop, T0 + timedelta(hours=2)) is None
    assert await fire(app, keep, T0 + timedelta(hours=2)) is not None
    assert len(capture.messages()) == 1
    async with app.sessions.begin() as session:
        olga = await users.get_user(session, "olga")
        with pytest.raises(
            Conflict, match=rf"^follow-up {drop} was already cancelled at 2030-03-20T08:00:00\+00:00\.$"
        ):
            await cancel_followup(session, drop, user=olga, now=T0)
        with pytest.raises(
            Conflict, match=rf"^follow-up {keep} fired at 2030-03-20T10:00:00\+00:00: it can no longer"
        ):
            await cancel_followup(session, keep, user=olga, now=T0)
    assert (await row(app, drop)).result == "cancelled by olga"


# -- conditions ---------------------------------------------------------------------------------


async def test_no_response_condition_uses_recorded_responses(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 2)
    capture.handler.clear()
    any_reply = await add(
        app, alert_id, kind="reminder", due_at=T0 + timedelta(days=7), condition="no-response"
    )
    media_reply = await add(
        app,
        alert_id,
        kind="reminder",
        due_at=T0 + timedelta(days=7),
        condition="no-response",
        kinds=["media"],
    )
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        contact_id = (
            await session.scalars(select(Delivery.contact_id).where(Delivery.alert_id == alert_id))
        ).first()
        await tracking.record_response(
            session,
            alert,
            contact_id=contact_id,
            summary="The ministry replied",
            recorded_by=None,
            now=T0 + timedelta(days=2),
        )
    skipped = await fire(app, any_reply, T0 + timedelta(days=7))
    assert skipped is not None and skipped.result == (
        "skipped: a response was recorded on 2030-03-22 09:00 CET (condition: no response)."
    )
    reminded = await fire(app, media_reply, T0 + timedelta(days=7))  # the answer came from an authority
    assert reminded is not None and reminded.result == "reminder sent; sent to olga"
    [message] = capture.messages()
    assert "No response from media has been recorded so far." in body(message)


async def test_case_open_condition(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 1)
    capture.handler.clear()
    fid = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(days=7), condition="case-open")
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        await approval.close_alert(session, alert, user=await users.get_user(session, "olga"), now=T0)
    fired = await fire(app, fid, T0 + timedelta(days=7))
    assert fired is not None and fired.result == "skipped: the case is closed (condition: case open)."
    assert capture.messages() == []


# -- updates and scheduled sends ------------------------------------------------------------------


async def test_update_followup_publishes_to_the_original_recipients_threaded(
    app: App, capture: CaptureServer
) -> None:
    alert_id, _ = await sent_alert(app, 3)
    originals = {m.rcpt_tos[0]: header(m, "Message-ID") for m in capture.messages()}
    assert len(originals) == 3
    capture.handler.clear()
    case = RENDERER.example("update")
    start = utcnow()  # the update's deliveries must be due for the real dispatcher
    fid = await add(app, alert_id, kind="update", due_at=start, data=case, now=start)
    f = await row(app, fid)
    update_id = (f.data or {})["update_alert_id"]
    async with app.sessions.begin() as session:
        await add_contacts(session, 2, start=50)  # joined the list after the original went out
        update_alert = await drafts.get_alert(session, update_id)
        assert (update_alert.parent_id, update_alert.family, update_alert.status) == (
            alert_id,
            "update",
            "draft",
        )
        await approval.submit(session, update_alert, user=await users.get_user(session, "olga"), now=T0)
        await approval.approve(session, update_alert, user=await users.get_user(session, "rafael"), now=T0)
    fired = await fire(app, fid, start)
    assert fired is not None and fired.result == f"update {update_id} published: 3 deliveries queued."
    await dispatch(app, update_id)
    sent = capture.messages()
    assert sorted(m.rcpt_tos[0] for m in sent) == sorted(originals)
    for m in sent:
        assert header(m, "In-Reply-To") == originals[m.rcpt_tos[0]]
        assert originals[m.rcpt_tos[0]] in (header(m, "References") or "")


async def test_followup_add_of_an_update_tells_the_officer_which_draft_to_review(
    app: App, db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``alerts followup add ALERT --kind update --data FILE`` drafts the update at once and says
    which alert it is, to submit and approve before it is due (the CLI, in this process)."""
    from alerts.cli.parser import main

    alert_id, _ = await sent_alert(app, 1)
    monkeypatch.delenv("ALERTS_CONFIG", raising=False)
    monkeypatch.setenv("ALERTS_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).parent.parent / "templates" / "update" / "example.toml"
    capsys.readouterr()
    argv = ["followup", "add", str(alert_id), "--kind", "update", "--in", "3d", "--data", str(example)]
    assert await asyncio.to_thread(main, [*argv, "--as", "olga"]) == 0
    said = capsys.readouterr()
    fid = int(said.out.strip())
    update_id = ((await row(app, fid)).data or {})["update_alert_id"]
    async with app.sessions() as session:
        drafted = await drafts.get_alert(session, update_id)
    assert (drafted.parent_id, drafted.status) == (alert_id, "draft")
    assert f"update draft: alert {update_id} — submit and approve it before it is due" in said.err


async def test_unapproved_update_reminds_officers(app: App, capture: CaptureServer) -> None:
    alert_id, _ = await sent_alert(app, 2)
    capture.handler.clear()
    fid = await add(
        app,
        alert_id,
        kind="update",
        due_at=T0 + timedelta(days=3),
        data={**RENDERER.example("closure"), "family": "closure"},
    )
    update_id = ((await row(app, fid)).data or {})["update_alert_id"]
    fired = await fire(app, fid, T0 + timedelta(days=3))
    assert fired is not None
    assert fired.result.startswith(f"update alert {update_id} is draft, not approved: officers reminded.")
    [message] = capture.messages()
    assert message.rcpt_tos == ("olga@example.org",)
    assert message.subject == f"Update waiting for approval: alert {update_id} (follows alert {alert_id})"
    assert f"alerts alert send {update_id}" in body(message)
    async with app.sessions() as session:
        assert (await session.scalar(select(Alert.status).where(Alert.id == update_id))) == "draft"
        assert (await session.scalar(select(Alert.family).where(Alert.id == update_id))) == "closure"


async def test_send_followup_and_the_dispatcher_publish_once(app: App) -> None:
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 2)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        alert_id = alert.id
    due = T0 + timedelta(hours=2)
    fid = await add(app, alert_id, kind="send", due_at=due)
    async with app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id)
        assert (alert.status, alert.send_at) == ("scheduled", due)
    with pytest.raises(
        Conflict, match=rf"already has a scheduled send \(follow-up {fid}\): cancel it first\.$"
    ):
        await add(app, alert_id, kind="send", due_at=due + timedelta(hours=1))
    fired = await fire(app, fid, due)
    assert fired is not None and fired.result == f"alert {alert_id} published: 2 deliveries queued."
    async with app.sessions.begin() as session:
        assert (
            await publish_due(session, now=due + timedelta(seconds=1)) == []
        )  # the dispatcher finds it gone
        assert (
            len((await session.scalars(select(Delivery.id).where(Delivery.alert_id == alert_id))).all()) == 2
        )


async def test_cancelling_a_send_unschedules_the_alert(app: App) -> None:
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 1)
        alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
    fid = await add(app, alert_id, kind="send", due_at=T0 + timedelta(hours=2))
    async with app.sessions.begin() as session:
        await cancel_followup(session, fid, user=await users.get_user(session, "olga"), now=T0)
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        assert (alert.status, alert.send_at) == ("approved", None)
        assert await publish_due(session, now=T0 + timedelta(hours=3)) == []


# -- delivery failures and digests -------------------------------------------------------------------


async def test_transient_smtp_failure_rearms_and_sends_once(db_url: str) -> None:
    async with CaptureServer(handler=FlakyHandler(failures=1)) as flaky:
        settings = settings_for(db_url, flaky.port)
        async with open_app(settings, channels={"email": EmailChannel(settings.email)}) as app:
            async with app.sessions.begin() as session:
                officer, _ = await people(session)
                await add_contacts(session, 1)
                alert = await drafts.create_alert(
                    session,
                    author=officer,
                    family="urgent-appeal",
                    case_data=RENDERER.example("urgent-appeal"),
                    audience=drafts.Audience(lists=("urgent-appeals",)),
                    validate_case=RENDERER.validate_case,
                    now=T0,
                )
                alert_id = alert.id
            fid = await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(hours=1))
            first = await fire(app, fid, T0 + timedelta(hours=1))
            assert first is not None
            f = await row(app, fid)
            # the delivery retry policy: first backoff in [base/2, base] (base 30 s), with jitter
            assert f.fired_at is None
            assert T0 + timedelta(hours=1, seconds=15) <= f.due_at <= T0 + timedelta(hours=1, seconds=30)
            assert first.result.startswith(f"retrying at {f.due_at.isoformat()}: olga (email)")
            second = await fire(app, fid, f.due_at)
            assert second is not None and second.result == "reminder sent; sent to olga"
            assert [m.rcpt_tos for m in flaky.messages()] == [("olga@example.org",)]


async def test_weekly_digest_lists_open_cases_and_silent_authorities(
    app: App, capture: CaptureServer
) -> None:
    alert_id, _ = await sent_alert(app, 3)
    async with app.sessions.begin() as session:
        alert = await drafts.get_alert(session, alert_id)
        first = (
            await session.scalars(
                select(Delivery.contact_id).where(Delivery.alert_id == alert_id).order_by(Delivery.contact_id)
            )
        ).first()
        await tracking.record_response(
            session, alert, contact_id=first, summary="Acknowledged", recorded_by=None, now=T0
        )
    await add(app, alert_id, kind="reminder", due_at=T0 + timedelta(days=2), note="Check the trial date")
    capture.handler.clear()
    fid = await add(app, None, kind="digest", due_at=T0 + timedelta(days=1))
    fired = await fire(app, fid, T0 + timedelta(days=1))
    assert fired is not None and fired.result == "digest sent; sent to olga"
    [message] = capture.messages()
    text = body(message)
    assert f'alert {alert_id} "' in text and "Open cases (1):" in text
    assert "Check the trial date" in text
    assert "Authorities that have not responded (2):" in text
    assert "Person 1" in text and "Person 2" in text and "Person 0" not in text
    async with app.sessions() as session:
        upcoming = await list_followups(session, include_done=False)
    assert [(f.kind, f.due_at) for f in upcoming if f.kind == "digest"] == [
        ("digest", T0 + timedelta(days=8))
    ]


async def test_send_followup_left_over_after_a_reschedule_publishes_nothing(app: App) -> None:
    monday, wednesday = T0 + timedelta(days=5), T0 + timedelta(days=7)
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 2)
        alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
    fid = await add(app, alert_id, kind="send", due_at=monday)
    async with app.sessions.begin() as session:  # unschedule (web/API/CLI all go through set_status)
        alert = await drafts.get_alert(session, alert_id)
        await approval.set_status(session, alert, AlertStatus.APPROVED, user=officer, now=T0)
    assert (await row(app, fid)).result == "cancelled: the alert was unscheduled"
    async with app.sessions.begin() as session:
        await schedule(session, await drafts.get_alert(session, alert_id), at=wednesday, now=T0)
    assert await fire(app, fid, monday) is None  # cancelled with the unscheduling
    async with app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id)
        assert (alert.status, alert.send_at) == ("scheduled", wednesday)
        assert (await session.scalars(select(Delivery.id).where(Delivery.alert_id == alert_id))).all() == []


async def test_rescheduling_cancels_the_send_followup_for_the_old_time(app: App) -> None:
    monday, wednesday = T0 + timedelta(days=5), T0 + timedelta(days=7)
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 1)
        alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
    fid = await add(app, alert_id, kind="send", due_at=monday)
    async with app.sessions.begin() as session:  # back to approved behind the follow-up's back
        await session.execute(
            update(Alert).where(Alert.id == alert_id).values(status="approved", send_at=None)
        )
    async with app.sessions.begin() as session:
        await schedule(session, await drafts.get_alert(session, alert_id), at=wednesday, now=T0)
    f = await row(app, fid)
    assert f.cancelled_at is not None
    assert f.result == f"cancelled: the alert was rescheduled for {wednesday.isoformat()}"
    assert await fire(app, fid, monday) is None


async def test_send_followup_whose_alert_moved_to_another_time_is_skipped(app: App) -> None:
    """Even a left-over (not cancelled) send follow-up checks the alert's time before publishing."""
    monday, wednesday = T0 + timedelta(days=5), T0 + timedelta(days=7)
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 2)
        alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
    fid = await add(app, alert_id, kind="send", due_at=monday)
    async with app.sessions.begin() as session:  # as a version without the cancellation left it
        await session.execute(update(Alert).where(Alert.id == alert_id).values(send_at=wednesday))
    fired = await fire(app, fid, monday)
    assert fired is not None
    assert fired.result == (
        f"skipped: rescheduled; alert {alert_id} is now scheduled for {wednesday.isoformat()}."
    )
    async with app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id)
        assert (alert.status, alert.send_at) == ("scheduled", wednesday)
        assert (await session.scalars(select(Delivery.id).where(Delivery.alert_id == alert_id))).all() == []


async def test_a_response_keeps_who_recorded_it_and_a_blank_summary_is_refused_naming_the_field(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from alerts.store.models import Response
    from tests.delivery_cases import staff
    from tests.factories import published_alert

    alert_id = await published_alert(sessions, 1)
    async with sessions.begin() as session:
        officer, _ = await staff(session)
        alert = await drafts.get_alert(session, alert_id)
        with pytest.raises(ValidationError) as refused:
            await tracking.record_response(
                session, alert, contact_id=None, summary="  ", recorded_by=officer.id, now=utcnow()
            )
        assert refused.value.message == "summary: a response needs a summary."
        assert refused.value.details == {"field": "summary"}
        await tracking.record_response(
            session, alert, contact_id=None, summary="Replied", recorded_by=officer.id, now=utcnow()
        )
    async with sessions() as session:
        assert (await session.execute(select(Response.summary, Response.recorded_by))).one() == (
            "Replied",
            officer.id,
        )


async def test_scheduling_again_for_the_send_followups_own_time_keeps_it_and_it_publishes(app: App) -> None:
    monday = T0 + timedelta(days=5)
    async with app.sessions.begin() as session:
        officer, reviewer = await people(session)
        await add_contacts(session, 2)
        alert_id = (await approved_alert(session, author=officer, reviewer=reviewer)).id
    fid = await add(app, alert_id, kind="send", due_at=monday)
    async with app.sessions.begin() as session:  # back to approved behind the follow-up's back
        await session.execute(
            update(Alert).where(Alert.id == alert_id).values(status="approved", send_at=None)
        )
    async with app.sessions.begin() as session:  # then scheduled again for the same time
        await schedule(session, await drafts.get_alert(session, alert_id), at=monday, now=T0)
    f = await row(app, fid)
    assert (f.cancelled_at, f.result) == (None, None)
    fired = await fire(app, fid, monday)
    assert fired is not None, "the kept follow-up fires"
    async with app.sessions() as session:
        sent = (await session.scalars(select(Delivery.id).where(Delivery.alert_id == alert_id))).all()
    assert len(sent) == 2
