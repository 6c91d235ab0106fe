"""Red-team findings of the third round: attacks on the seams between faces and processes
(a contact changed or erased while its alert is on its way). Each test fails on the code it was
written against and states what should hold instead. They were kept as strict xfails (as the
second round's, ``test_red_team``) until each fix turned one into a failure; every one is fixed
now, and they stay as the tests of those fixes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.delivery.messages import message_id
from alerts.service import make_dispatcher
from alerts.store.models import Delivery
from tests.parity.conftest import Faces, faces
from tests.parity.test_workflow import _api, approved, contacts, draft
from tests.test_inbound import NOTHING, apply, bounce_for, outcome, sent_alert
from tests.web import P

__all__ = ["contacts", "faces"]  # the fixtures, imported for these tests


async def _rows(faces: Faces, sql: str, **params: Any) -> list[Any]:
    async with faces.app.sessions() as session:
        return list((await session.execute(text(sql), params)).all())


# -- a contact's address corrected while the alert waits -----------------------------------------


async def test_a_corrected_address_is_not_mailed_at_its_old_address(
    faces: Faces, contacts: list[int]
) -> None:
    """An officer corrects a contact's email (the old one was wrong: someone else's mailbox)
    while the alert's deliveries are queued (paused here; deferred or scheduled is the same).
    The claim re-checks the contact's status and suppressions, but still mails the address
    copied at fan-out: the alert reaches the old mailbox, and the corrected one gets nothing."""
    alert_id = await approved(faces)
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/pause")
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/send")
    status, doc = await faces.api(
        "officer", "PATCH", f"/contacts/{contacts[0]}", json={"email": "right@example.org"}
    )
    assert status == 200, doc
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/resume")
    await make_dispatcher(faces.app).run_until_done(alert_id, timeout=30)
    mailed = sorted(r for m in faces.smtp.messages() for r in m.rcpt_tos if r.startswith(("person", "right")))
    assert "person0@example.org" not in mailed, mailed  # the address the officer removed
    assert mailed == ["person1@example.org", "person2@example.org", "right@example.org"], mailed


async def test_a_contact_made_public_after_fan_out_gets_nothing_without_consent(
    faces: Faces, contacts: list[int]
) -> None:
    """The alert has no consent to publicity, so public contacts must never get it. An officer
    reclassifies a contact as ``public`` while the alert's deliveries are queued; the claim checks
    consent only for deliveries whose audience was ``public`` at fan-out, and the authorities'
    version goes to the (now) member of the public."""
    alert_id = await approved(faces)
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/pause")
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/send")
    status, doc = await faces.api("officer", "PATCH", f"/contacts/{contacts[1]}", json={"kind": "public"})
    assert status == 200, doc
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/resume")
    await make_dispatcher(faces.app).run_until_done(alert_id, timeout=30)
    mailed = sorted(r for m in faces.smtp.messages() for r in m.rcpt_tos if r.startswith("person"))
    assert mailed == ["person0@example.org", "person2@example.org"], mailed


# -- a contact erased while its message is in flight ---------------------------------------------


async def test_an_erasure_during_a_send_leaves_no_clear_address_behind(
    faces: Faces, contacts: list[int]
) -> None:
    """A contact is erased (``alerts contacts erase``, another process) while the dispatcher
    holds its delivery in flight; the relay then refuses the recipient (550 5.1.1). The
    recorder suppresses the address it claimed, in clear, after the erasure hashed it: the
    erased person's address is back in the database for good (``suppressions.address_key``)."""
    gate, waiting = asyncio.Event(), asyncio.Event()
    handler = faces.smtp.handler

    async def refuse_later(server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address != "person0@example.org":
            envelope.rcpt_tos.append(address)
            return "250 OK"
        waiting.set()
        await gate.wait()
        return "550 5.1.1 user unknown"

    handler.handle_RCPT = refuse_later  # type: ignore[attr-defined]
    alert_id = await approved(faces)
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/send")
    sending = asyncio.create_task(make_dispatcher(faces.app).run_until_done(alert_id, timeout=30))
    try:
        await asyncio.wait_for(waiting.wait(), 20)
        run = await faces.cli("contacts", "erase", str(contacts[0]))
        assert run.code == 0, run.err
    finally:
        gate.set()
        await sending
    assert await _rows(faces, "SELECT id FROM contacts WHERE id = :c", c=contacts[0]) == []
    clear = await _rows(
        faces,
        "SELECT channel, address_key, reason FROM suppressions WHERE lower(address_key) LIKE '%person0%'",
    )
    assert clear == [], clear
    kept = await _rows(faces, "SELECT id FROM deliveries WHERE address = 'person0@example.org'")
    assert kept == [], kept


# -- two people doing the same thing at the same moment (PostgreSQL) -----------------------------


async def test_two_reviewers_approving_at_once_get_no_server_error(faces: Faces, contacts: list[int]) -> None:
    """Two reviewers press Approve on the same alert at the same moment. On PostgreSQL both
    insert the same (version, language) approval; the loser's flush fails on
    ``uq_approvals_version_id`` inside ``drafts.move`` and the API answered 500 (the officers'
    page the same) instead of the 409 "changed by someone else meanwhile" that every other race
    gets."""
    for _ in range(5):
        alert_id = await draft(faces)
        await _api(faces, "officer", "POST", f"/alerts/{alert_id}/submit")
        answers = await asyncio.gather(
            faces.api("reviewer", "POST", f"/alerts/{alert_id}/approve"),
            faces.api("reviewer2", "POST", f"/alerts/{alert_id}/approve"),
        )
        assert sorted(status for status, _ in answers) in ([200, 409], [200, 200]), answers


async def test_two_admins_adding_the_same_list_at_once_get_no_server_error(
    faces: Faces,
) -> None:
    """Two admins add the list ``press`` at the same moment: one gets 201, the other should get
    the 409 "list 'press' already exists" it gets a second later; on PostgreSQL it was a 500 (the
    unique index on ``contact_lists.name``, not mapped to a Conflict)."""
    for n in range(5):
        answers = await asyncio.gather(
            faces.api("admin", "POST", "/lists", json={"name": f"press-{n}"}),
            faces.api("admin", "POST", "/lists", json={"name": f"press-{n}"}),
        )
        assert sorted(status for status, _ in answers) == [201, 409], answers


# -- a local time that does not exist --------------------------------------------------------------


async def test_a_send_time_in_the_spring_forward_gap_is_refused_not_moved(
    faces: Faces, contacts: list[int]
) -> None:
    """With ``[scheduler] timezone = "Europe/Paris"``, 02:30 on 28 March 2027 never happens
    (the clocks go from 02:00 to 03:00). The page's ``parse_local`` attaches the zone with
    ``replace(tzinfo=…)`` and the alert is scheduled for 03:30 local (01:30 UTC) without a word;
    it should be refused naming the field, as a malformed time is, and nothing scheduled."""
    faces.app.settings = faces.app.settings.replace("scheduler", timezone="Europe/Paris")
    alert_id = await approved(faces)
    page = await faces.page("officer")
    await page.get(f"{P}/alerts/{alert_id}")
    r = await page.post(f"{P}/alerts/{alert_id}/send", {"mode": "schedule", "at": "2027-03-28T02:30"})
    scheduled = await _rows(faces, "SELECT status, send_at FROM alerts WHERE id = :a", a=alert_id)
    assert r.status == 422, (r.status, scheduled)
    assert [s for s, _ in scheduled] == ["approved"]


# -- a forged bounce built from what anyone can guess --------------------------------------------


async def test_a_bounce_forged_from_guessable_message_ids_suppresses_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Message-IDs are ``<alert-{alert id}.c{contact id}@{the From domain}>``: the alert id is in
    the public archive, contact ids count up from 1, and the domain is in every alert's From.
    Someone who wants a ministry's or a rapporteur's published address to stop getting alerts
    mails the bounce address (a plain return path is accepted even with VERP on) one DSN per
    guessed contact id, each naming that address. ``inbound._by_message_id`` takes the guessed
    Message-ID plus the named address as proof; the address is suppressed for every later alert
    (a lost message each time). A report should need something the forger cannot know (the
    signed VERP return path, or a Message-ID that carries a MAC)."""
    _, mid = await sent_alert(sessions)
    async with sessions() as session:
        alert_id = await session.scalar(select(Delivery.alert_id).limit(1))
    assert alert_id is not None
    domain = mid.rstrip(">").split("@", 1)[1]  # as the From address of any alert shows it
    for guess in range(1, 6):
        forged = bounce_for(message_id(alert_id, guess, domain), "person1@example.org")
        await apply(sessions, forged)
    assert await outcome(sessions) == NOTHING


# -- a test message in a language nobody wrote ----------------------------------------------------


async def test_a_test_message_in_a_language_the_alert_cannot_have_is_refused(
    faces: Faces, contacts: list[int]
) -> None:
    """``alerts alert test ID --language zz`` (no language at all) or ``de`` (no template has
    German) says "test message: sent" and mails the English text: the officer believes they
    checked a version that does not exist. It should exit 2 naming --language, mailing nothing."""
    alert_id = await draft(faces)
    for language in ("zz", "de"):
        run = await faces.cli(
            "alert", "test", str(alert_id), "--to", "t@example.org", "--language", language, "--as", "officer"
        )
        assert run.code == 2 and "language" in run.err, (language, run.code, run.out, run.err)
    assert [m for m in faces.smtp.messages() if "t@example.org" in m.rcpt_tos] == []
