"""Review and approval by a second person, per language; consent; the alert status table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts.users import create_user
from alerts.compose.approval import (
    MAX_NOTE,
    approve,
    approved_languages,
    close_alert,
    consent_scope,
    ready_to_send,
    record_consent,
    set_status,
    submit,
)
from alerts.compose.drafts import ALERT_TRANSITIONS, Audience, edit_alert, get_alert
from alerts.core.errors import ApprovalRequired, Conflict, ConsentRequired, PermissionDenied, ValidationError
from alerts.core.states import AlertStatus
from alerts.store import audit
from alerts.store.models import Alert, User
from tests.test_drafts import CASE, NOW, People, make_people, new_alert, snapshot, validate_case

A = AlertStatus
LATER = NOW + timedelta(hours=6)


@pytest.fixture
async def people(session: AsyncSession) -> People:
    return await make_people(session)


async def in_review(session: AsyncSession, people: People, audience: Audience | None = None) -> Alert:
    alert = await new_alert(session, people.officer, **({"audience": audience} if audience else {}))
    await submit(session, alert, user=people.officer, now=NOW)
    await session.commit()
    return alert


async def approved(session: AsyncSession, people: People, audience: Audience | None = None) -> Alert:
    alert = await in_review(session, people, audience)
    await approve(session, alert, user=people.reviewer, now=NOW)
    await session.commit()
    return alert


async def test_submit_notifies_active_reviewers_and_admins_other_than_the_author(
    session: AsyncSession, people: People
) -> None:
    retired, _ = await create_user(session, name="rosa", role="reviewer", now=NOW)
    retired.active = False
    alert = await new_alert(session, people.admin)  # the admin wrote it: only the reviewer is told
    notified = await submit(session, alert, user=people.admin, now=NOW)
    assert [u.name for u in notified] == ["rita"]
    other = await new_alert(session, people.officer)
    assert [u.name for u in await submit(session, other, user=people.officer, now=NOW)] == ["rita", "root"]
    assert (alert.status, other.status) == ("in_review", "in_review")
    [entry] = await audit.list_entries(session, object_type="alert", object_id=alert.id, limit=1)
    assert (entry.action, entry.details) == ("alert.submit", {"version": 1})


async def test_submit_refused_unless_draft(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await in_review(session, people)
    before = await snapshot(sessions)
    with pytest.raises(Conflict) as err:
        await submit(session, alert, user=people.officer, now=NOW)
    assert err.value.message == f"alert {alert.id} is in_review: only a draft can be submitted for review"
    await session.rollback()
    assert await snapshot(sessions) == before


async def test_approval_by_a_second_person_approves_every_language(
    session: AsyncSession, people: People
) -> None:
    alert = await in_review(session, people)
    assert await approve(session, alert, user=people.reviewer, now=NOW) == []
    await session.commit()
    fresh = await get_alert(session, alert.id)
    assert fresh.status == "approved"
    assert await approved_languages(session, fresh) == ["en", "es"]
    await ready_to_send(session, fresh)  # not public: no consent needed
    [entry] = await audit.list_entries(session, object_type="alert", object_id=alert.id, limit=1)
    assert (entry.action, entry.user_id) == ("alert.approve", people.reviewer.id)
    assert entry.details == {"version": 1, "languages": ["en", "es"], "remaining": []}


async def test_languages_are_approved_one_by_one(session: AsyncSession, people: People) -> None:
    alert = await in_review(session, people)
    assert await approve(session, alert, user=people.reviewer, languages=["es"], now=NOW) == ["en"]
    assert alert.status == "in_review"
    with pytest.raises(ApprovalRequired) as err:
        await ready_to_send(session, alert)
    assert err.value.message == f"alert {alert.id} is in_review: it must be approved before sending"
    with pytest.raises(Conflict) as again:
        await approve(session, alert, user=people.admin, languages=["es"], now=NOW)
    assert again.value.message == f"alert {alert.id}: version 1 is already approved in es"
    assert await approve(session, alert, user=people.admin, now=NOW) == []  # the rest: en
    assert alert.status == "approved"
    assert await approved_languages(session, alert) == ["en", "es"]


@pytest.mark.parametrize(
    ("who", "kw", "error", "message"),
    [
        ("officer", {}, PermissionDenied,
         "user 'olga' (officer) may not alert.approve; allowed roles: admin, reviewer"),
        ("viewer", {}, PermissionDenied,
         "user 'vic' (viewer) may not alert.approve; allowed roles: admin, reviewer"),
        ("other_officer", {}, PermissionDenied,
         "user 'omar' (officer) may not alert.approve; allowed roles: admin, reviewer"),
        ("reviewer", {"languages": ["de"]}, Conflict,
         "alert {id}: language 'de' is not one of the alert's languages (en, es)"),
    ],
)  # fmt: skip
async def test_refused_approval_writes_nothing(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People,
    who: str, kw: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    alert = await in_review(session, people)
    before = await snapshot(sessions)
    with pytest.raises(error) as err:
        await approve(session, alert, user=getattr(people, who), now=NOW, **kw)
    assert str(err.value) == message.format(id=alert.id)
    await session.rollback()
    assert await snapshot(sessions) == before


async def test_the_author_cannot_approve_their_own_alert(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await new_alert(session, people.admin)
    await submit(session, alert, user=people.admin, now=NOW)
    await session.commit()
    alert_id = alert.id
    before = await snapshot(sessions)
    with pytest.raises(PermissionDenied) as err:
        await approve(session, alert, user=people.admin, now=NOW)
    assert err.value.message == (
        f"alert {alert_id}: the author cannot approve their own alert; a second person must approve it"
    )
    await session.rollback()
    assert await snapshot(sessions) == before
    assert before["statuses"] == {alert_id: "in_review"} and before["counts"]["approvals"] == 0

    # Where the workflow says so (a one-person office), the author may approve.
    await session.refresh(people.admin)  # the rollback expired every loaded object
    alert = await get_alert(session, alert_id)
    assert await approve(session, alert, user=people.admin, require_second_approver=False, now=NOW) == []


async def test_whoever_wrote_the_current_version_cannot_approve_it(
    session: AsyncSession, people: People
) -> None:
    alert = await new_alert(session, people.officer)
    await edit_alert(session, alert, user=people.admin, title="Ana", validate_case=validate_case, now=NOW)
    await submit(session, alert, user=people.officer, now=NOW)
    with pytest.raises(PermissionDenied) as err:
        await approve(session, alert, user=people.admin, now=NOW)
    assert err.value.message == (
        f"alert {alert.id}: 'root' wrote version 2 and cannot approve it; a second person must approve it"
    )
    await approve(session, alert, user=people.reviewer, now=NOW)
    assert alert.status == "approved"


@pytest.mark.parametrize("status", [A.DRAFT, A.APPROVED])
async def test_approval_refused_unless_in_review(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People, status: AlertStatus
) -> None:
    alert = await (approved(session, people) if status is A.APPROVED else new_alert(session, people.officer))
    before = await snapshot(sessions)
    with pytest.raises(Conflict) as err:
        await approve(session, alert, user=people.reviewer, now=NOW)
    assert err.value.message == f"alert {alert.id} is {status}: only an alert in review can be approved"
    await session.rollback()
    assert await snapshot(sessions) == before


async def test_editing_after_approval_needs_a_new_review(session: AsyncSession, people: People) -> None:
    alert = await approved(session, people)
    await edit_alert(session, alert, user=people.officer, case_data=CASE | {"summary": "Released on bail."},
                     validate_case=validate_case, now=NOW)  # fmt: skip
    assert (alert.status, alert.current_version) == ("draft", 2)
    assert await approved_languages(session, alert) == []
    await submit(session, alert, user=people.officer, now=NOW)
    await approve(session, alert, user=people.reviewer, now=NOW)
    assert await approved_languages(session, alert) == ["en", "es"]


# -- consent --------------------------------------------------------------------------------


async def test_public_alert_needs_the_defenders_consent(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await approved(session, people, Audience(kinds=("public", "media")))
    alert_id = alert.id
    before = await snapshot(sessions)
    message = (
        f"alert {alert.id} is addressed to the public: record the defender's consent "
        f"(alerts alert consent {alert.id} --scope public) before sending"
    )
    with pytest.raises(ConsentRequired) as err:
        await ready_to_send(session, alert)
    assert err.value.message == message
    with pytest.raises(ConsentRequired):
        await set_status(session, alert, A.SENDING, user=people.officer, now=NOW)
    await session.rollback()
    assert await snapshot(sessions) == before

    await session.refresh(people.officer)  # the rollback expired every loaded object
    alert = await get_alert(session, alert_id)
    await record_consent(session, alert, user=people.officer, scope="public", note="by phone", now=NOW)
    await ready_to_send(session, alert)
    # A later, narrower consent withdraws the public one.
    await record_consent(session, alert, user=people.officer, scope="restricted", now=LATER)
    assert await consent_scope(session, alert) == "restricted"
    with pytest.raises(ConsentRequired):
        await ready_to_send(session, alert)
    entry = (await audit.list_entries(session, object_type="alert", object_id=alert.id, limit=1))[0]
    assert (entry.action, entry.details) == ("alert.consent", {"scope": "restricted"})


async def test_bad_consent_scope_is_refused(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await new_alert(session, people.officer)
    before = await snapshot(sessions)
    with pytest.raises(ValidationError) as err:
        await record_consent(session, alert, user=people.officer, scope="everyone", now=NOW)
    assert err.value.message == "consent scope: 'everyone' is not one of public, restricted"
    with pytest.raises(PermissionDenied):
        await record_consent(session, alert, user=people.viewer, scope="public", now=NOW)
    await session.rollback()
    assert await snapshot(sessions) == before


# -- status table ---------------------------------------------------------------------------


async def test_schedule_send_and_close(session: AsyncSession, people: People) -> None:
    alert = await approved(session, people)
    await set_status(session, alert, A.SCHEDULED, user=people.officer, send_at=LATER, now=NOW)
    assert (alert.status, alert.send_at) == ("scheduled", LATER)
    await set_status(session, alert, A.APPROVED, user=people.officer, now=NOW)  # unschedule
    assert (alert.status, alert.send_at) == ("approved", None)
    await set_status(session, alert, A.SENDING, user=people.officer, now=NOW)
    assert alert.published_at == NOW
    await set_status(session, alert, A.SENT, user=None, now=LATER)  # the dispatcher: no user
    await set_status(session, alert, A.SENDING, user=people.officer, now=LATER)  # resend-failed
    await set_status(session, alert, A.SENT, user=None, now=LATER)
    await close_alert(session, alert, user=people.officer, now=LATER)
    await session.commit()
    fresh = await get_alert(session, alert.id)
    assert (fresh.status, fresh.published_at, fresh.completed_at, fresh.closed_at) == (
        "closed",
        NOW,
        LATER,
        LATER,
    )
    entries = await audit.list_entries(session, object_type="alert", object_id=alert.id, limit=7)
    assert [(e.action, e.details) for e in entries[:2]] == [
        ("alert.close", {"from": "sent", "to": "closed"}),
        ("alert.status", {"from": "sending", "to": "sent"}),
    ]
    assert entries[1].user_id is None


@pytest.mark.parametrize(
    ("start", "to", "kw", "error", "message"),
    [
        (A.APPROVED, A.SENT, {}, Conflict, "alert {id} is approved: it cannot become sent"),
        (A.DRAFT, A.SENDING, {}, Conflict, "alert {id} is draft: it cannot become sending"),
        (A.CLOSED, A.DRAFT, {}, Conflict, "alert {id} is closed: it cannot become draft"),
        (A.IN_REVIEW, A.APPROVED, {}, Conflict,
         "alert {id} is in review: a reviewer other than its author approves it "
         "(alerts alert approve {id} --as REVIEWER)"),
        (A.APPROVED, A.SCHEDULED, {}, ValidationError, "alert {id}: a time to send is needed to schedule it"),
        (A.APPROVED, A.SCHEDULED, {"send_at": NOW}, ValidationError,
         "alert {id}: the time to send (2025-03-01T12:00:00+00:00) is not in the future"),
        (A.APPROVED, A.CLOSED, {"user": "reviewer"}, PermissionDenied,
         "user 'rita' (reviewer) may not alert.close; allowed roles: admin, officer"),
    ],
)  # fmt: skip
async def test_refused_status_change_writes_nothing(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People,
    start: AlertStatus, to: AlertStatus, kw: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    if start is A.DRAFT:
        alert = await new_alert(session, people.officer)
    elif start is A.IN_REVIEW:
        alert = await in_review(session, people)
    else:
        alert = await approved(session, people)
    if start is A.CLOSED:
        await close_alert(session, alert, user=people.officer, now=NOW)
        await session.commit()
    before = await snapshot(sessions)
    kw = dict(kw)  # the parameters are shared by every run of this test in one process
    user = people.reviewer if kw.pop("user", None) else people.officer
    with pytest.raises(error) as err:
        await set_status(session, alert, to, user=user, now=NOW, **kw)
    assert str(err.value) == message.format(id=alert.id)
    await session.rollback()
    assert await snapshot(sessions) == before


def test_every_status_but_closed_can_be_closed() -> None:
    assert all(A.CLOSED in ALERT_TRANSITIONS[s] for s in A if s is not A.CLOSED)
    assert ALERT_TRANSITIONS[A.CLOSED] == frozenset()


async def test_withdrawing_consent_cancels_pending_deliveries_to_the_public(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from sqlalchemy import select, update

    from alerts.core.clock import utcnow
    from alerts.delivery import controls
    from alerts.delivery.publish import publish
    from alerts.store.models import Delivery, DeliveryEvent
    from tests.factories import add_contacts, approved_alert, make_users

    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        authorities = await add_contacts(session, 2, kind="authority")
        public = await add_contacts(session, 4, kind="public", start=10)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, kinds=("authority", "public")
        )
        alert.is_public = True
        await record_consent(session, alert, user=reviewer, scope="public", now=utcnow())
        assert await publish(session, alert, now=utcnow()) == 6
        alert_id, reviewer_id = alert.id, reviewer.id
    async with sessions.begin() as session:
        by_contact = {
            c: d
            for c, d in (
                await session.execute(
                    select(Delivery.contact_id, Delivery.id).where(Delivery.alert_id == alert_id)
                )
            ).all()
        }
        # one public delivery is retrying, one has already gone out (a final state stays as it is)
        for contact, state in ((public[0], "deferred"), (public[1], "sent")):
            await session.execute(
                update(Delivery).where(Delivery.id == by_contact[contact]).values(state=state)
            )
    async with sessions.begin() as session:
        sending = await session.get(Alert, alert_id)
        withdrawn_by = await session.get(User, reviewer_id)
        assert sending is not None and withdrawn_by is not None
        await record_consent(
            session, sending, user=withdrawn_by, scope="restricted", note="family asked", now=utcnow()
        )
        # what the consent action does in the same transaction (alerts.actions.alerts.record_consent)
        assert await controls.withdraw_public(session, sending, now=utcnow()) == 3
    async with sessions() as session:
        states = {
            c: st
            for c, st in (
                await session.execute(
                    select(Delivery.contact_id, Delivery.state).where(Delivery.alert_id == alert_id)
                )
            ).all()
        }
        assert states == {
            authorities[0]: "queued",
            authorities[1]: "queued",
            public[0]: "cancelled",
            public[1]: "sent",
            public[2]: "cancelled",
            public[3]: "cancelled",
        }
        events = (
            await session.execute(
                select(
                    DeliveryEvent.delivery_id,
                    DeliveryEvent.type,
                    DeliveryEvent.from_state,
                    DeliveryEvent.to_state,
                    DeliveryEvent.detail,
                ).where(DeliveryEvent.type == "cancelled")
            )
        ).all()
        assert sorted(tuple(e) for e in events) == sorted(
            (by_contact[c], "cancelled", None, "cancelled", "consent withdrawn")
            for c in (public[0], public[2], public[3])
        )


async def test_the_consent_recorded_latest_counts_even_when_its_row_was_written_first(
    session: AsyncSession, people: People
) -> None:
    # Two officers at once: the one whose clock read later may still insert first.
    alert = await approved(session, people, Audience(kinds=("public",)))
    await record_consent(session, alert, user=people.officer, scope="restricted", now=LATER)
    await record_consent(session, alert, user=people.officer, scope="public", now=NOW)
    await session.commit()
    assert await consent_scope(session, alert) == "restricted"
    with pytest.raises(ConsentRequired):
        await ready_to_send(session, alert)


async def test_a_consent_note_is_at_most_max_note_characters_of_plain_text(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await new_alert(session, people.officer)
    longest = "n" * MAX_NOTE
    consent = await record_consent(session, alert, user=people.officer, scope="public", note=longest, now=NOW)
    assert consent.note == longest
    await session.commit()
    before = await snapshot(sessions)
    for note, message in [
        ("n" * (MAX_NOTE + 1), f"consent note: longer than {MAX_NOTE} characters"),
        ("by phone\x00", "consent note: control character U+0000 at position 9 is not allowed"),
    ]:
        with pytest.raises(ValidationError) as err:
            await record_consent(session, alert, user=people.officer, scope="public", note=note, now=NOW)
        assert err.value.message == message
    await session.rollback()
    assert await snapshot(sessions) == before
