"""Regressions found by red-teaming the faces: each attack is tried through every face that
offers the action, and each must be refused the same way (no 500, no traceback, nothing sent).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text, update

from alerts.store.models import Alert, Delivery
from tests.parity.conftest import Faces
from tests.parity.test_workflow import UPDATE, _api, contacts, draft, sending
from tests.web import P

__all__ = ["contacts"]  # the fixture, imported for these tests

HUGE = "99999999999999999999"
CASE = (
    Path(__file__).parents[2] / "templates" / "update" / "example.toml"
)  # more than any id column holds (SQLite and PostgreSQL)


# -- a closed case gets no more updates ----------------------------------------------------------


async def test_no_update_of_a_closed_case_from_any_face(faces: Faces, contacts: list[int]) -> None:
    original = await reached(faces, await sending(faces))
    sent_update = await approved_update(faces, original)
    await _api(faces, "officer", "POST", f"/alerts/{sent_update}/send")
    await reached(faces, sent_update)
    await _api(faces, "officer", "POST", f"/alerts/{original}/close")
    before = len(faces.smtp.messages())

    # an update of the closed alert, or of its (sent, so still open) update: refused everywhere
    for parent in (original, sent_update):
        status, doc = await faces.api("officer", "POST", "/alerts", json=update_of(parent))
        assert status == 409, doc
        assert f"alert {original} is closed" in doc["error"]["message"]
        run = await faces.cli(
            "alert",
            "create",
            "--template",
            "update",
            "--data",
            str(CASE),
            "--parent",
            str(parent),
            "--list",
            "urgent-appeals",
        )
        assert run.code == 2 and run.out == "", (run.code, run.out, run.err)
        assert f"alert {original} is closed" in run.err
    assert len(faces.smtp.messages()) == before


async def test_an_update_whose_case_closed_meanwhile_is_not_sent(faces: Faces, contacts: list[int]) -> None:
    original = await reached(faces, await sending(faces))
    update_id = await approved_update(faces, original)
    async with faces.app.sessions.begin() as session:  # closed by another process in between
        await session.execute(update(Alert).where(Alert.id == original).values(status="closed"))
    status, doc = await faces.api("officer", "POST", f"/alerts/{update_id}/send")
    assert status == 409, doc
    assert f"alert {original} is closed" in doc["error"]["message"]
    status, doc = await faces.api(
        "officer", "POST", f"/alerts/{update_id}/send", json={"at": "2099-01-01T00:00:00Z"}
    )
    assert status == 409, doc
    _, stats = await faces.api("officer", "GET", f"/alerts/{update_id}/stats")
    assert stats["total"] == 0 and stats["state"] == "approved"


async def test_an_update_of_an_alert_that_does_not_exist_is_refused_as_bad_input_everywhere(
    faces: Faces,
) -> None:
    """A 422 naming ``parent_id`` (the body is wrong), not a 404 (the URL is right)."""
    status, doc = await faces.api("officer", "POST", "/alerts", json=update_of(424242))
    assert status == 422, doc
    assert doc["error"]["message"] == "parent_id: there is no alert 424242 to update."
    assert doc["error"]["details"] == {"field": "parent_id"}
    run = await faces.cli(
        "alert", "create", "--template", "update", "--data", str(CASE), "--parent", "424242",
        "--list", "urgent-appeals",
    )  # fmt: skip
    assert (run.code, run.out) == (2, ""), run
    assert "parent_id: there is no alert 424242 to update." in run.err
    async with faces.app.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM alerts"))).scalar_one() == 0


def update_of(parent: int) -> dict[str, object]:
    data = {k: v for k, v in UPDATE.items() if k != "family"}
    return {
        "family": "update",
        "data": data,
        "parent_id": parent,
        "lists": ["urgent-appeals"],
        "channels": ["email"],
    }


async def reached(faces: Faces, alert_id: int) -> int:
    """The alert's deliveries as if a dispatcher had sent them (updates go to those reached)."""
    async with faces.app.sessions.begin() as session:
        await session.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="sent"))
    return alert_id


async def approved_update(faces: Faces, parent: int) -> int:
    update_id = int((await _api(faces, "officer", "POST", "/alerts", json=update_of(parent)))["id"])
    await _api(faces, "officer", "POST", f"/alerts/{update_id}/submit")
    await _api(faces, "reviewer", "POST", f"/alerts/{update_id}/approve")
    return update_id


# -- ids no row can have ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{P}/alerts/{HUGE}",
        f"{P}/alerts/{HUGE}/edit",
        f"{P}/alerts/{HUGE}/deliveries",
        f"{P}/alerts/{HUGE}/live",
        f"{P}/contacts/{HUGE}",
        f"{P}/alerts/\u0661",  # an Arabic-Indic digit one: not an id
    ],
)
async def test_pages_answer_404_for_an_id_no_row_can_have(faces: Faces, path: str) -> None:
    assert await draft(faces) == 1  # so that only the digits' script could tell it from alert 1
    page = await faces.page("admin")
    status, body = await page.get(path)
    assert status == 404, body


async def test_forms_and_cli_refuse_an_id_no_row_can_have(faces: Faces) -> None:
    page = await faces.page("admin")
    await page.get(f"{P}/password")
    for action in ("submit", "close", "send", "pause"):
        r = await page.post(f"{P}/alerts/{HUGE}/{action}", [])
        assert r.status == 404, action
    r = await page.post(f"{P}/followups/{HUGE}/cancel", [])
    assert r.status == 404
    for args in (
        ("alert", "status", HUGE),
        ("alert", "close", HUGE),
        ("followup", "cancel", HUGE),
        ("contacts", "erase", HUGE),
        ("contacts", "export", "id:" + HUGE),
    ):
        run = await faces.cli(*args)
        assert run.code == 2, (args, run.err)
        assert "Traceback" not in run.err and "Error" not in run.err, run.err


@pytest.mark.parametrize("sender", [HUGE, "\u00b2"])  # too big; a digit int() refuses
async def test_a_response_from_a_number_that_is_no_contact_is_kept_as_written(
    faces: Faces, contacts: list[int], sender: str
) -> None:
    alert_id = await sending(faces)
    status, doc = await faces.api(
        "officer", "POST", f"/alerts/{alert_id}/responses", json={"summary": "called", "from": sender}
    )
    assert status == 201, doc
    assert (doc["contact_id"], doc["sender"]) == (None, sender)
    page = await faces.page("officer")
    await page.get(f"{P}/alerts/{alert_id}")
    r = await page.post(f"{P}/alerts/{alert_id}/responses", {"contact": sender, "summary": "again"})
    assert r.status == 303
    run = await faces.cli("alert", "respond", str(alert_id), "--from", sender, "--summary", "by phone")
    assert run.code == 0, run.err
    async with faces.app.sessions() as session:
        rows = (
            await session.execute(text("SELECT sender FROM responses WHERE alert_id = :a"), {"a": alert_id})
        ).all()
    assert [r[0] for r in rows] == [sender] * 3


# -- a live stream ends with its session ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/users/viewer", {"active": False}),
        ("POST", "/users/viewer/password", {"password": "a new password 123"}),
    ],
)
async def test_the_live_stream_ends_when_its_user_is_disabled_or_their_password_set(
    faces: Faces, method: str, path: str, body: dict[str, object]
) -> None:
    alert_id = await draft(faces)  # a draft: its stream never says "done" by itself
    viewer = await faces.page("viewer")
    async with viewer.http.get(viewer.base + f"{P}/alerts/{alert_id}/live") as r:
        assert r.status == 200
        seen = b""
        while b"event: counts" not in seen:
            seen += await r.content.readline()
        await _api(faces, "admin", method, path, json=body)
        rest = (await asyncio.wait_for(r.content.read(), 10)).decode()
    assert "event: signed-out" in rest
    status, _ = await viewer.get(f"{P}/alerts/{alert_id}")
    assert status == 303  # to the sign-in page
