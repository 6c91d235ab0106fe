"""The alert workflow through every face (CLI, JSON API, officers' pages): the same end state.

Each test runs one action on a fresh alert per face, as the same officer, then compares what a
user would see: the alert's row, its deliveries and their events, its follow-ups, drafted
updates and responses, the audit entries, and what reached the recording SMTP server and Bot API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text, update

from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.store.models import Alert, AuditEntry, Delivery, DeliveryEvent, Followup
from tests.factories import add_contacts
from tests.parity.conftest import Faces
from tests.web import P

FACES = ("cli", "api", "page")
EXAMPLE = json.loads(json.dumps(Renderer().example("urgent-appeal"), default=str))  # TOML dates as text
UPDATE = {**json.loads(json.dumps(Renderer().example("update"), default=str)), "family": "update"}
#: Audit details that hold ids or times, which differ between the alerts of each face.
_VARYING = {"followups", "updates", "response", "withdrawn_with", "send_at", "due_at", "alert"}

Action = Callable[[Faces, int], Awaitable[Any]]


# -- setting up through the API ----------------------------------------------------------------


async def _api(faces: Faces, user: str, method: str, path: str, **kw: Any) -> Any:
    status, body = await faces.api(user, method, path, **kw)
    assert status < 300, (status, body)
    return body


async def draft(faces: Faces) -> int:
    """A draft to the three contacts of the list, by email."""
    body = {"family": "urgent-appeal", "data": EXAMPLE, "lists": ["urgent-appeals"], "channels": ["email"]}
    return int((await _api(faces, "officer", "POST", "/alerts", json=body))["id"])


async def approved(faces: Faces) -> int:
    alert_id = await draft(faces)
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/submit")
    await _api(faces, "reviewer", "POST", f"/alerts/{alert_id}/approve")
    return alert_id


async def sending(faces: Faces) -> int:
    alert_id = await approved(faces)
    await _api(faces, "officer", "POST", f"/alerts/{alert_id}/send")
    return alert_id


@pytest.fixture
async def contacts(faces: Faces) -> list[int]:
    async with faces.app.sessions.begin() as session:
        return await add_contacts(session, 3)


# -- running one action through each face -------------------------------------------------------


async def on_page(faces: Faces, alert_id: int, action: str, form: list[tuple[str, str]] | None = None) -> str:
    """POST an action's form from the alert's page; the redirect's Location."""
    page = await faces.page("officer")
    await page.get(f"{P}/alerts/{alert_id}")
    r = await page.post(f"{P}/alerts/{alert_id}/{action}", form or [])
    assert r.status == 303, (r.status, await r.text())
    return r.headers["Location"]


async def on_cli(faces: Faces, *args: str) -> str:
    run = await faces.cli(*args)
    assert run.code == 0, run.err
    return run.out + run.err


# -- the end state -------------------------------------------------------------------------------


def _norm(details: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key in _VARYING:
            value = len(value) if isinstance(value, list) else type(value).__name__
        out[key] = value
    return out


async def state(faces: Faces, alert_id: int) -> dict[str, Any]:
    """What a user would see of the alert and its case, without ids that differ per alert."""
    async with faces.app.sessions() as session:
        alert = await session.get(Alert, alert_id, populate_existing=True)
        assert alert is not None
        deliveries = sorted(
            (d.contact_id, d.channel, d.state)
            for d in await session.scalars(select(Delivery).where(Delivery.alert_id == alert_id))
        )
        events = sorted(
            (e.type, e.from_state or "", e.to_state or "", e.detail)
            for e in await session.scalars(select(DeliveryEvent).where(DeliveryEvent.alert_id == alert_id))
        )
        children = list(await session.scalars(select(Alert).where(Alert.parent_id == alert_id)))
        followups = sorted(
            (f.kind, f.cancelled_at is not None, f.fired_at is not None)
            for f in await session.scalars(
                select(Followup).where(Followup.alert_id.in_([alert_id, *(c.id for c in children)]))
            )
        )
        entries = await session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.object_type == "alert",
                AuditEntry.object_id.in_([str(alert_id), *(str(c.id) for c in children)]),
            )
            .order_by(AuditEntry.id)
        )
        audit = [(e.action, e.user_id, e.object_id == str(alert_id), _norm(e.details)) for e in entries]
        rows = await session.execute(
            text("SELECT * FROM responses WHERE alert_id = :a ORDER BY id"), {"a": alert_id}
        )
        responses = [(r["contact_id"], r.get("sender"), r["summary"]) for r in rows.mappings()]
    return {
        "status": alert.status,
        "paused": alert.paused,
        "send_at": alert.send_at,
        "closed": alert.closed_at is not None,
        "deliveries": deliveries,
        "events": events,
        "updates": sorted(c.status for c in children),
        "followups": followups,
        "audit": audit,
        "responses": responses,
    }


async def same_state(faces: Faces, ids: dict[str, int]) -> dict[str, Any]:
    """The end state, asserted equal for every face; returned for further checks."""
    states = {face: await state(faces, alert_id) for face, alert_id in ids.items()}
    for face in FACES[1:]:
        assert states[face] == states[FACES[0]], face
    return states[FACES[0]]


# -- the actions -----------------------------------------------------------------------------------


async def test_submit_notifies_the_reviewers_from_every_face(
    faces: Faces, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = {face: await draft(faces) for face in FACES}
    said = await on_cli(faces, "alert", "submit", str(ids["cli"]), "--as", "officer")
    doc = await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/submit")
    location = await on_page(faces, ids["page"], "submit")

    end = await same_state(faces, ids)
    assert end["status"] == "in_review"
    assert [a[0] for a in end["audit"]] == ["alert.create", "alert.submit"]
    officer = faces.user_ids["officer"]
    assert end["audit"][1][1] == officer
    for face, alert_id in ids.items():
        subject = f"Alert {alert_id} is waiting for your review"
        mail = {m.rcpt_tos[0] for m in faces.smtp.messages() if m.subject == subject}
        assert mail == {"admin@localhost", "reviewer@localhost", "reviewer2@localhost"}, face
        chats = {call.chat_id for call in faces.bot_api.sent() if subject in (call.text or "")}
        assert chats == {"9001", "9002"}, face
    # and each face says how many were reached
    assert f"alert {ids['cli']} is in review; 3 of 3 reviewer(s) notified" in said
    assert doc["notified"] == doc["reviewers"] == ["admin", "reviewer", "reviewer2"]
    assert location.endswith("notice=submitted&n=3")
    for m in faces.smtp.messages():
        assert b"Marenco" not in m.raw  # the case stays behind the sign-in
    # our own logs (not the recording SMTP server's) name reviewers by id, never by address
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("alerts", "channels")]
    assert any("3 of 3 reviewers notified" in r.getMessage() for r in ours)
    assert [
        r.getMessage() for r in ours if r.levelno >= logging.INFO and "@localhost" in r.getMessage()
    ] == []


async def test_approve_and_consent_from_every_face(faces: Faces) -> None:
    ids = {face: await draft(faces) for face in FACES}
    for alert_id in ids.values():
        await _api(faces, "officer", "POST", f"/alerts/{alert_id}/submit")
    reviewer = await faces.page("reviewer")
    await on_cli(faces, "alert", "approve", str(ids["cli"]), "--as", "reviewer")
    await _api(faces, "reviewer", "POST", f"/alerts/{ids['api']}/approve")
    await reviewer.get(f"{P}/alerts/{ids['page']}")
    r = await reviewer.post(f"{P}/alerts/{ids['page']}/approve", [])
    assert r.status == 422  # the page approves only languages ticked one by one
    r = await reviewer.post(f"{P}/alerts/{ids['page']}/approve", [("languages", "en")])
    assert r.status == 303 and "notice=approved" in r.headers["Location"]
    await on_cli(
        faces, "alert", "consent", str(ids["cli"]), "--recorded-by", "reviewer", "--scope", "restricted"
    )
    await _api(faces, "reviewer", "POST", f"/alerts/{ids['api']}/consent", json={"scope": "restricted"})
    r = await reviewer.post(f"{P}/alerts/{ids['page']}/consent", [("scope", "restricted"), ("note", "")])
    assert r.status == 303 and "notice=consent" in r.headers["Location"]
    end = await same_state(faces, ids)
    assert end["status"] == "approved"
    assert [a[0] for a in end["audit"]] == ["alert.create", "alert.submit", "alert.approve", "alert.consent"]


async def test_send_and_schedule_from_every_face(faces: Faces, contacts: list[int]) -> None:
    ids = {face: await approved(faces) for face in FACES}
    assert "3 deliveries queued" in await on_cli(faces, "alert", "send", str(ids["cli"]), "--as", "officer")
    assert (await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/send"))["queued"] == 3
    assert (await on_page(faces, ids["page"], "send", [("mode", "now")])).endswith("n=3")
    end = await same_state(faces, ids)
    assert end["status"] == "sending"
    assert end["deliveries"] == [(c, "email", "queued") for c in sorted(contacts)]

    at = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    ids = {face: await approved(faces) for face in FACES}
    await on_cli(faces, "alert", "send", str(ids["cli"]), "--at", at.isoformat(), "--as", "officer")
    await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/send", json={"at": at.isoformat()})
    local = at.astimezone(ZoneInfo(faces.app.settings.scheduler.timezone)).strftime("%Y-%m-%dT%H:%M")
    await on_page(faces, ids["page"], "send", [("mode", "schedule"), ("at", local)])
    end = await same_state(faces, ids)
    assert (end["status"], end["send_at"], end["deliveries"]) == ("scheduled", at, [])


async def test_pause_resume_and_resend_failed_from_every_face(faces: Faces, contacts: list[int]) -> None:
    ids = {face: await sending(faces) for face in FACES}
    for action in ("pause", "resume"):
        await on_cli(faces, "alert", action, str(ids["cli"]), "--as", "officer")
        await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/{action}")
        await on_page(faces, ids["page"], action)
        if action == "pause":
            assert (await same_state(faces, ids))["paused"] is True
    async with faces.app.sessions.begin() as session:  # the relay refused them all, say
        await session.execute(
            update(Delivery).where(Delivery.alert_id.in_(ids.values())).values(state="failed")
        )
    said = await on_cli(faces, "alert", "resend-failed", str(ids["cli"]), "--as", "officer")
    assert "3 failed deliveries queued again" in said
    assert (await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/resend-failed"))["requeued"] == 3
    assert (await on_page(faces, ids["page"], "resend-failed")).endswith("n=3")
    end = await same_state(faces, ids)
    assert end["paused"] is False and end["status"] == "sending"
    assert end["deliveries"] == [(c, "email", "queued") for c in sorted(contacts)]
    assert ("queued", "failed", "queued", "resend-failed") in end["events"]


async def test_close_cancels_follow_ups_and_drafted_updates_from_every_face(
    faces: Faces, contacts: list[int]
) -> None:
    ids = {face: await sending(faces) for face in FACES}
    drafted = {}
    for face, alert_id in ids.items():
        await _api(
            faces, "officer", "POST", f"/alerts/{alert_id}/followups", json={"kind": "reminder", "in": "7d"}
        )
        doc = await _api(
            faces,
            "officer",
            "POST",
            f"/alerts/{alert_id}/followups",
            json={"kind": "update", "in": "3d", "data": UPDATE},
        )
        drafted[face] = doc["update_alert_id"]

    said = await on_cli(faces, "alert", "close", str(ids["cli"]), "--as", "officer")
    doc = await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/close")
    location = await on_page(faces, ids["page"], "close")

    end = await same_state(faces, ids)
    assert end["status"] == "closed" and end["closed"]
    assert end["deliveries"] == [(c, "email", "cancelled") for c in sorted(contacts)]
    assert end["followups"] == [("reminder", True, False), ("update", True, False)]
    assert end["updates"] == ["closed"]
    assert [a[0] for a in end["audit"] if a[0] == "alert.close"] == ["alert.close", "alert.close"]
    assert end["audit"][-1][3] == {
        "from": "sending",
        "to": "closed",
        "withdrawn": 3,
        "followups": 2,
        "updates": 1,
    }
    # and each face says what it cancelled
    assert (
        f"alert {ids['cli']} closed; 3 unsent deliveries withdrawn; 2 pending follow-up(s) cancelled" in said
    )
    assert f"1 drafted update(s) withdrawn (alert {drafted['cli']})" in said
    assert doc["already_closed"] is False and doc["withdrawn"] == 3
    assert len(doc["cancelled_followups"]) == 2 and doc["withdrawn_updates"] == [drafted["api"]]
    assert "notice=closed" in location
    assert "n=3+unsent+deliveries%2C+2+follow-ups%2C+1+drafted+updates" in location

    # closing again: it says so and succeeds, on every face; nothing changes
    said = await on_cli(faces, "alert", "close", str(ids["cli"]), "--as", "officer")
    assert f"alert {ids['cli']} is already closed" in said
    status, doc = await faces.api("officer", "POST", f"/alerts/{ids['api']}/close")
    assert status == 200 and doc["already_closed"] is True and doc["withdrawn"] == 0
    assert "notice=already-closed" in await on_page(faces, ids["page"], "close")
    assert await same_state(faces, ids) == end


async def test_respond_from_a_sender_who_is_not_a_contact_from_every_face(
    faces: Faces, contacts: list[int]
) -> None:
    ids = {face: await sending(faces) for face in FACES}
    summary = "Acknowledged receipt"
    await on_cli(
        faces,
        "alert",
        "respond",
        str(ids["cli"]),
        "--from",
        "minister@example.org",
        "--summary",
        summary,
        "--as",
        "officer",
    )
    await _api(
        faces,
        "officer",
        "POST",
        f"/alerts/{ids['api']}/responses",
        json={"from": "minister@example.org", "summary": summary},
    )
    await on_page(
        faces, ids["page"], "responses", [("contact", "minister@example.org"), ("summary", summary)]
    )
    end = await same_state(faces, ids)
    assert end["responses"] == [(None, "minister@example.org", summary)]
    assert end["audit"][-1][0] == "alert.respond"

    # a contact's email in any case links that contact (and marks their delivery responded)
    first = min(contacts)
    await on_cli(
        faces,
        "alert",
        "respond",
        str(ids["cli"]),
        "--from",
        "PERSON0@Example.org",
        "--summary",
        "Seen",
        "--as",
        "officer",
    )
    await _api(
        faces,
        "officer",
        "POST",
        f"/alerts/{ids['api']}/responses",
        json={"from": "PERSON0@Example.org", "summary": "Seen"},
    )
    await on_page(faces, ids["page"], "responses", [("contact", "PERSON0@Example.org"), ("summary", "Seen")])
    end = await same_state(faces, ids)
    assert end["responses"][-1] == (first, None, "Seen")
    assert ("responded", "queued", "queued", "response recorded") in end["events"]


async def followup_rows(faces: Faces, alert_id: int) -> list[tuple[Any, ...]]:
    async with faces.app.sessions() as session:
        rows = await session.scalars(
            select(Followup).where(Followup.alert_id == alert_id).order_by(Followup.id)
        )
        return [(f.kind, f.due_at, f.note, f.cancelled_at is not None, f.created_by) for f in rows]


async def test_followup_add_and_cancel_from_every_face(faces: Faces) -> None:
    ids = {face: await draft(faces) for face in FACES}
    due = (utcnow() + timedelta(days=7)).replace(second=0, microsecond=0)
    local = due.astimezone(ZoneInfo(faces.app.settings.scheduler.timezone)).strftime("%Y-%m-%dT%H:%M")
    out = await on_cli(
        faces, "followup", "add", str(ids["cli"]), "--at", due.isoformat(), "--kind", "reminder",
        "--note", "call the ministry", "--as", "officer",
    )  # fmt: skip
    fids = {"cli": int(out.split()[0])}
    body = {"kind": "reminder", "at": due.isoformat(), "note": "call the ministry"}
    fids["api"] = (await _api(faces, "officer", "POST", f"/alerts/{ids['api']}/followups", json=body))["id"]
    page = await faces.page("officer")
    await page.get(f"{P}/followups")
    form = [("alert", str(ids["page"])), ("kind", "reminder"), ("due", local), ("note", "call the ministry")]
    assert (await page.post(f"{P}/followups", form)).status == 303
    async with faces.app.sessions() as session:
        fids["page"] = await session.scalar(select(Followup.id).where(Followup.alert_id == ids["page"]))
    added = [await followup_rows(faces, alert_id) for alert_id in ids.values()]
    assert (
        added[0]
        == added[1]
        == added[2]
        == [("reminder", due, "call the ministry", False, faces.user_ids["officer"])]
    )

    await on_cli(faces, "followup", "cancel", str(fids["cli"]), "--as", "officer")
    assert (await _api(faces, "officer", "DELETE", f"/followups/{fids['api']}"))["status"] == "cancelled"
    await page.get(f"{P}/followups")
    assert (await page.post(f"{P}/followups/{fids['page']}/cancel", [])).status == 303
    cancelled = [await followup_rows(faces, alert_id) for alert_id in ids.values()]
    assert cancelled[0] == cancelled[1] == cancelled[2]
    assert cancelled[0][0][3] is True
    async with faces.app.sessions() as session:
        actions = [
            list(
                await session.scalars(
                    select(AuditEntry.action)
                    .where(AuditEntry.object_type == "followup", AuditEntry.object_id == str(fid))
                    .order_by(AuditEntry.id)
                )
            )
            for fid in fids.values()
        ]
    assert actions == [["followup.add", "followup.cancel"]] * 3


async def test_edit_from_every_face_makes_a_new_version_back_in_draft(faces: Faces, tmp_path: Any) -> None:
    """Editing an alert in review: a new version with the new case data and title, back to draft."""
    from alerts.store.models import AlertVersion
    from alerts.web.ui.casetoml import dumps

    ids = {face: await draft(faces) for face in FACES}
    for alert_id in ids.values():
        await _api(faces, "officer", "POST", f"/alerts/{alert_id}/submit")
    changed = {**EXAMPLE, "city": "Puerto Nuevo"}
    case_file = tmp_path / "case.toml"
    case_file.write_text(dumps(changed), encoding="utf-8")

    said = await on_cli(
        faces,
        "alert",
        "edit",
        str(ids["cli"]),
        "--data",
        str(case_file),
        "--title",
        "Renamed",
        "--as",
        "officer",
    )
    doc = await _api(
        faces, "officer", "PATCH", f"/alerts/{ids['api']}", json={"data": changed, "title": "Renamed"}
    )
    page = await faces.page("officer")
    await page.get(f"{P}/alerts/{ids['page']}/edit")
    r = await page.post(
        f"{P}/alerts/{ids['page']}/edit",
        [
            ("case_toml", dumps(changed)),
            ("title", "Renamed"),
            ("lists", "urgent-appeals"),
            ("channels", "email"),
            ("languages", "en"),
        ],
    )
    assert r.status == 303, (r.status, await r.text())

    end = await same_state(faces, ids)
    assert end["status"] == "draft"
    assert [a[0] for a in end["audit"]][-1] == "alert.edit"
    assert f"alert {ids['cli']}: version 2, draft" in said
    assert (doc["version"], doc["status"]) == (2, "draft")
    async with faces.app.sessions() as session:
        for alert_id in ids.values():
            alert = await session.get(Alert, alert_id)
            assert alert is not None and (alert.title, alert.current_version) == ("Renamed", 2)
            version = (
                await session.execute(
                    select(AlertVersion).where(AlertVersion.alert_id == alert_id, AlertVersion.number == 2)
                )
            ).scalar_one()
            assert version.case_data["city"] == "Puerto Nuevo"
