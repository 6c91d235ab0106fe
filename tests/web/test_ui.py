"""The officers' pages over real HTTP on a real database: every page and action for every role,
the editor's validation and preview, the review workflow, live counts, contacts, follow-ups."""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from alerts.cli.capture import CaptureServer
from alerts.compose import drafts
from alerts.compose.render import Renderer
from alerts.core.clock import utcnow
from alerts.store.models import Alert, AuditEntry, Contact, Delivery
from alerts.web.ui.casetoml import dumps, loads
from tests.factories import add_contacts
from tests.web import ROLES, Client, P, make_staff, running, signed_in

RENDERER = Renderer()
EXAMPLE = (RENDERER.templates_dir / "urgent-appeal" / "example.toml").read_text(encoding="utf-8")


def text(page: str) -> str:
    return html.unescape(page)


async def count(app, model) -> int:  # type: ignore[no-untyped-def]
    async with app.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def draft_form(**extra: object) -> list[tuple[str, str]]:
    form = [
        ("family", "urgent-appeal"),
        ("case_toml", EXAMPLE),
        ("title", ""),
        ("lists", "urgent-appeals"),
        ("channels", "email"),
        ("languages", "en"),
    ]
    return form + [(k, str(v)) for k, v in extra.items()]


@pytest.fixture
async def web(db_url: str):  # type: ignore[no-untyped-def]
    async with CaptureServer() as capture, running(db_url, capture=capture) as (app, base):
        ids = await make_staff(app)
        async with app.sessions.begin() as session:
            await add_contacts(session, 3)
        clients = {name: await signed_in(base, name) for name in (*ROLES, "officer2")}
        yield app, base, clients, ids, capture
        for c in clients.values():
            await c.close()


async def create(client: Client, **extra: object) -> int:
    await client.get(f"{P}/alerts/new")
    r = await client.post(f"{P}/alerts/new", draft_form(**extra))
    assert r.status == 303, r.status
    return int(r.headers["Location"].split("/")[-1].split("?")[0])


async def test_every_page_for_every_role(web) -> None:  # type: ignore[no-untyped-def]
    _app, _base, clients, _ids, _ = web
    alert_id = await create(clients["officer"])
    pages = {
        "/": ROLES,
        f"{P}/alerts/{alert_id}": ROLES,
        f"{P}/alerts/{alert_id}/deliveries": ROLES,
        f"{P}/followups": ROLES,
        f"{P}/audit": ROLES,
        f"{P}/alerts/new": ("admin", "officer"),
        f"{P}/alerts/{alert_id}/edit": ("admin", "officer"),
        f"{P}/contacts": ("admin", "officer"),
        f"{P}/contacts/new": ("admin", "officer"),
        f"{P}/contacts/import": ("admin", "officer"),
    }
    for path, allowed in pages.items():
        for role in ROLES:
            status, page = await clients[role].get(path)
            if role in allowed:
                assert status == 200, (path, role)
            else:
                assert status == 403, (path, role)
                assert f"user {role!r} ({role}) may not" in text(page)
    # previews (JSON) are for every role
    for role in ROLES:
        status, body = await clients[role].get(
            f"{P}/alerts/{alert_id}/preview?audience=authority&channel=email&language=en", html=False
        )
        assert status == 200 and json.loads(body)["subject"]
    # the mailbox exists only in the demo
    status, page = await clients["viewer"].get(f"{P}/mailbox")
    assert status == 404 and "the mailbox exists only in `alerts demo`" in text(page)


async def test_the_preview_of_an_alert_that_does_not_exist_is_a_404_naming_it(web) -> None:  # type: ignore[no-untyped-def]
    """The live preview reads the JSON refusal: it names the alert, in its message and its details."""
    _app, _base, clients, _ids, _ = web
    alert_id = await create(clients["officer"])
    missing = alert_id + 1000
    status, body = await clients["viewer"].get(
        f"{P}/alerts/{missing}/preview?audience=authority&channel=email&language=en", html=False
    )
    assert (status, json.loads(body)) == (
        404,
        {
            "error": {
                "code": "not_found",
                "message": f"alert {missing} does not exist",
                "details": {"alert": missing},
            }
        },
    )


async def test_refused_actions_name_the_reason_and_write_nothing(web) -> None:  # type: ignore[no-untyped-def]
    app, _base, clients, _ids, _ = web
    alert_id = await create(clients["officer"])
    refusals = [
        ("reviewer", f"{P}/alerts/new", draft_form(), "alert.create"),
        ("viewer", f"{P}/alerts/new", draft_form(), "alert.create"),
        ("viewer", f"{P}/alerts/{alert_id}/submit", [], "alert.submit"),
        ("reviewer", f"{P}/alerts/{alert_id}/submit", [], "alert.submit"),
        ("viewer", f"{P}/alerts/{alert_id}/consent", [("scope", "public")], "alert.consent"),
        ("officer", f"{P}/alerts/{alert_id}/approve", [], "alert.approve"),
        ("reviewer", f"{P}/alerts/{alert_id}/send", [("mode", "now")], "alert.send"),
        ("viewer", f"{P}/alerts/{alert_id}/close", [], "alert.close"),
        ("reviewer", f"{P}/alerts/{alert_id}/pause", [], "alert.send"),
        ("viewer", f"{P}/alerts/{alert_id}/responses", [("summary", "x")], "alert.respond"),
        (
            "viewer",
            f"{P}/followups",
            [("alert", str(alert_id)), ("kind", "reminder"), ("due", "2030-01-01T09:00")],
            "followup.manage",
        ),
        (
            "reviewer",
            f"{P}/contacts/new",
            [("name", "X"), ("email", "x@example.org"), ("kind", "media")],
            "contacts.edit",
        ),
        ("officer", f"{P}/contacts/1/erase", [], "contacts.erase"),
    ]
    audit_before, alerts_before = await count(app, AuditEntry), await count(app, Alert)
    contacts_before = await count(app, Contact)
    for role, path, form, action in refusals:
        await clients[role].get("/")
        r = await clients[role].post(path, form, html=False)
        assert r.status == 403, (role, path)
        error = (await r.json())["error"]
        assert error["code"] == "forbidden"
        assert error["message"].startswith(f"user {role!r} ({role}) may not {action}; allowed roles: "), error
    assert await count(app, AuditEntry) == audit_before
    assert await count(app, Alert) == alerts_before
    assert await count(app, Contact) == contacts_before


async def test_editor_shows_validation_errors_beside_the_field(web) -> None:  # type: ignore[no-untyped-def]
    app, _base, clients, _ids, _ = web
    officer = clients["officer"]
    await officer.get(f"{P}/alerts/new")
    r = await officer.post(f"{P}/alerts/new", [("family", "urgent-appeal"), ("case_toml", "defender = ")])
    assert r.status == 422
    page = text(await r.text())
    assert 'id="case-error"' in page and "case data: not valid TOML: " in page
    assert "Nothing was saved" in page
    r = await officer.post(
        f"{P}/alerts/new", [("family", "urgent-appeal"), ("case_toml", EXAMPLE), ("languages", "en")]
    )
    page = text(await r.text())
    assert r.status == 422 and 'id="audience-error"' in page
    assert "audience: name at least one list or contact kind" in page
    assert await count(app, Alert) == 0


async def test_case_data_with_script_is_shown_escaped(web) -> None:  # type: ignore[no-untyped-def]
    _app, _base, clients, _ids, _ = web
    evil = "<script>alert(1)</script>"
    case = loads(EXAMPLE) | {"defender": evil}
    alert_id = await create(clients["officer"], title=f"Case {evil}")
    await clients["officer"].get(f"{P}/alerts/{alert_id}/edit")
    r = await clients["officer"].post(
        f"{P}/alerts/{alert_id}/edit",
        [
            ("family", "urgent-appeal"),
            ("case_toml", dumps(case)),
            ("title", f"Case {evil}"),
            ("lists", "urgent-appeals"),
            ("languages", "en"),
        ],
    )
    assert r.status == 303
    for path in ("/", f"{P}/alerts/{alert_id}", f"{P}/alerts/{alert_id}/edit", f"{P}/audit"):
        status, page = await clients["officer"].get(path)
        assert status == 200 and evil not in page, path
        if path != f"{P}/audit":  # there, details are JSON with "<" written as \u003c
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
    status, body = await clients["viewer"].get(
        f"{P}/alerts/{alert_id}/preview?audience=authority&channel=email&language=en", html=False
    )
    assert evil not in json.loads(body)["html"]


async def test_draft_review_approve_send_flow(web) -> None:  # type: ignore[no-untyped-def]
    app, base, clients, _ids, capture = web
    officer, reviewer = clients["officer"], clients["reviewer"]
    alert_id = await create(officer)
    # unsaved preview from the editor (POST with the CSRF header, nothing written)
    await officer.get(f"{P}/alerts/new")
    r = await officer.http.post(
        base + f"{P}/preview",
        data={
            "family": "urgent-appeal",
            "case_toml": EXAMPLE,
            "audience": "media",
            "channel": "telegram",
            "language": "fr",
        },
        headers={"X-CSRF-Token": officer.token},
    )
    doc = await r.json()
    assert (
        r.status == 200 and doc["language"] == "fr" and doc["html"] is None and "Lucía Marenco" in doc["text"]
    )
    r = await officer.http.post(
        base + f"{P}/preview",
        data={"family": "urgent-appeal", "case_toml": "x = ", "audience": "media", "channel": "email"},
        headers={"X-CSRF-Token": officer.token},
    )
    assert r.status == 422 and (await r.json())["error"]["message"].startswith("case data: not valid TOML")
    # its refusals in the page's language, as beside a field of the form
    r = await officer.http.post(
        base + f"{P}/preview",
        data={
            "family": "urgent-appeal",
            "case_toml": 'defender = ""',
            "audience": "media",
            "channel": "email",
        },
        headers={"X-CSRF-Token": officer.token, "Accept-Language": "fr"},
    )
    assert r.status == 422 and (await r.json())["error"]["message"] == "dossier : 'defender' est requis"
    # submit: the reviewer and the admin are told at once by email, without the case
    await officer.get(f"{P}/alerts/{alert_id}")
    r = await officer.post(f"{P}/alerts/{alert_id}/submit", [])
    assert r.status == 303 and r.headers["Location"] == f"{P}/alerts/{alert_id}?notice=submitted&n=2"
    received = {m.rcpt_tos[0]: m for m in capture.messages()}
    assert set(received) == {"reviewer@localhost", "admin@localhost"}
    body = received["reviewer@localhost"].raw.decode()
    assert f"Alert {alert_id} is waiting for your review" in body and "Marenco" not in body
    assert f"/office/alerts/{alert_id}" in body
    # the author cannot approve (an admin who is the author neither): the refusal is shown
    admin_alert = await create(clients["admin"])
    await clients["admin"].get(f"{P}/alerts/{admin_alert}")
    await clients["admin"].post(f"{P}/alerts/{admin_alert}/submit", [])
    await clients["admin"].get(f"{P}/alerts/{admin_alert}")
    r = await clients["admin"].post(f"{P}/alerts/{admin_alert}/approve", [("languages", "en")])
    assert r.status == 403
    assert (
        f"alert {admin_alert}: the author cannot approve their own alert; a second person must approve it"
        in text(await r.text())
    )
    # the reviewer approves; the officer sends; the deliveries are queued
    await reviewer.get(f"{P}/alerts/{alert_id}")
    r = await reviewer.post(f"{P}/alerts/{alert_id}/approve", [("languages", "en")])
    assert r.status == 303 and "notice=approved" in r.headers["Location"]
    await officer.get(f"{P}/alerts/{alert_id}")
    r = await officer.post(f"{P}/alerts/{alert_id}/send", [("mode", "now")])
    assert r.status == 303 and r.headers["Location"].endswith("notice=sending&n=3")
    status, page = await officer.get(r.headers["Location"])
    assert "Sending: deliveries are queued" in page and 'data-cell="email:queued">3<' in page
    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?state=queued&channel=email")
    assert status == 200 and page.count('class="badge d-queued"') == 3
    assert "person0@example.org" in page  # officers may see contacts' addresses (viewers may not)
    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?state=bogus")
    assert status == 422 and "state: 'bogus' is not a delivery state." in text(page)
    # live counts: a first event at once; "done" once every delivery is final
    async with officer.http.get(base + f"{P}/alerts/{alert_id}/live") as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        first = b""
        while b"event: counts" not in first:
            first += await r.content.readline()
        data = json.loads((await r.content.readline()).decode()[len("data: ") :])
        assert data["channels"]["email"]["queued"] == 3 and data["open"] == 3
    async with app.sessions.begin() as session:
        for d in (await session.scalars(select(Delivery).where(Delivery.alert_id == alert_id))).all():
            d.state = "sent"
    async with officer.http.get(base + f"{P}/alerts/{alert_id}/live") as r:
        stream = (await asyncio.wait_for(r.content.read(), 10)).decode()
    assert "event: done" in stream and '"sent": 3' in stream
    # the board (GET /) shows it with its author and its deliveries by state; a filter narrows
    async with app.sessions() as session:
        state = await session.scalar(select(Alert.status).where(Alert.id == alert_id))
    status, page = await officer.get(f"/?status={state}")
    row = re.search(rf"<tr><td>{alert_id}</td>.*?</tr>", page, re.S)
    assert status == 200 and row, page
    assert "<td>officer</td>" in row.group(0) and "sent 3" in row.group(0)
    status, page = await officer.get("/?status=closed")
    assert f"<tr><td>{alert_id}</td>" not in page
    # pause, resume, resend failed, close
    for action, notice in (
        ("pause", "paused"),
        ("resume", "resumed"),
        ("resend-failed", "resent"),
        ("close", "closed"),
    ):
        await officer.get(f"{P}/alerts/{alert_id}")
        r = await officer.post(f"{P}/alerts/{alert_id}/{action}", [])
        assert r.status == 303 and f"notice={notice}" in r.headers["Location"], action
    r = await officer.post(f"{P}/alerts/{alert_id}/close", [])  # closing twice says so, and succeeds
    assert r.status == 303 and "notice=already-closed" in r.headers["Location"]
    status, page = await officer.get(r.headers["Location"])
    assert "The case was already closed; nothing changed." in page


async def test_schedule_in_the_scheduler_timezone_and_consent(web) -> None:  # type: ignore[no-untyped-def]
    app, _base, clients, _ids, _ = web
    officer, reviewer = clients["officer"], clients["reviewer"]
    alert_id = await create(officer, kinds="public")
    await officer.get(f"{P}/alerts/{alert_id}")
    await officer.post(f"{P}/alerts/{alert_id}/submit", [])
    await reviewer.get(f"{P}/alerts/{alert_id}")
    await reviewer.post(f"{P}/alerts/{alert_id}/approve", [("languages", "en")])
    at = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    await officer.get(f"{P}/alerts/{alert_id}")
    r = await officer.post(f"{P}/alerts/{alert_id}/send", [("mode", "schedule"), ("at", at)], html=False)
    assert r.status == 409 and (await r.json())["error"]["code"] == "consent_required"
    r = await reviewer.post(f"{P}/alerts/{alert_id}/consent", [("scope", "public"), ("note", "by phone")])
    assert r.status == 303
    r = await officer.post(f"{P}/alerts/{alert_id}/send", [("mode", "schedule"), ("at", at)])
    assert r.status == 303 and "notice=scheduled" in r.headers["Location"]
    async with app.sessions() as session:
        alert = await drafts.get_alert(session, alert_id)
        assert alert.status == "scheduled" and alert.send_at.strftime("%Y-%m-%dT%H:%M") == at  # UTC here
    _status, page = await officer.get(f"{P}/alerts/{alert_id}")
    assert f"scheduled for <strong>{at.replace('T', ' ')} UTC</strong>" in page
    r = await officer.post(f"{P}/alerts/{alert_id}/unschedule", [])
    assert r.status == 303 and "notice=unscheduled" in r.headers["Location"]


async def test_contacts_search_edit_and_import_report(web) -> None:  # type: ignore[no-untyped-def]
    _app, _base, clients, _ids, _ = web
    officer = clients["officer"]
    status, page = await officer.get(f"{P}/contacts?q=person1")
    assert status == 200 and "person1@example.org" in page and "person2@example.org" not in page
    await officer.get(f"{P}/contacts/new")
    r = await officer.post(
        f"{P}/contacts/new",
        [
            ("name", "Nadia"),
            ("email", "nadia@example.org"),
            ("kind", "media"),
            ("language", "fr"),
            ("new_lists", "press"),
        ],
    )
    assert r.status == 303
    contact_path = r.headers["Location"].split("?")[0]
    status, page = await officer.get(contact_path)
    assert 'value="nadia@example.org"' in page and 'value="press" checked' in page
    r = await officer.post(
        contact_path, [("name", "Nadia K."), ("email", "person0@example.org"), ("kind", "media")]
    )
    assert r.status == 409 and "email is already used by contact" in text(await r.text())
    csv = (
        "name,email,telegram,kind,language,organisation,country,lists\n"
        "Ana,ana@example.org,,media,es,Diario,PE,press\n"
        "Bad,not-an-email,,media,en,,,\n"
    )
    await officer.get(f"{P}/contacts/import")
    r = await officer.post(
        f"{P}/contacts/import", [("file", ("c.csv", csv.encode(), "text/csv")), ("list", "")]
    )
    page = text(await r.text())
    assert r.status == 200 and "2 rows: 1 created" in page and "row 3: " in page


async def test_followups_add_cancel_and_responses(web) -> None:  # type: ignore[no-untyped-def]
    _app, _base, clients, _ids, _ = web
    officer = clients["officer"]
    alert_id = await create(officer)
    await officer.get(f"{P}/followups")
    r = await officer.post(
        f"{P}/followups",
        [
            ("alert", str(alert_id)),
            ("kind", "reminder"),
            ("due", "2099-01-01T09:30"),
            ("note", "call the ministry"),
        ],
    )
    assert r.status == 303
    _status, page = await officer.get(f"{P}/followups")
    assert "2099-01-01 09:30" in page and "call the ministry" in page
    r = await officer.post(
        f"{P}/followups", [("alert", "abc"), ("kind", "reminder"), ("due", "2099-01-01T09:30")]
    )
    assert r.status == 422 and "alert: 'abc' is not a whole number from 1 to" in text(await r.text())
    fid = page.split(f"{P}/followups/")[1].split("/")[0]
    r = await officer.post(f"{P}/followups/{fid}/cancel", [])
    assert r.status == 303
    r = await officer.post(f"{P}/followups/{fid}/cancel", [], html=False)
    assert r.status == 409 and (await r.json())["error"]["message"].startswith(
        f"follow-up {fid} was already cancelled"
    )
    await officer.get(f"{P}/alerts/{alert_id}")
    r = await officer.post(
        f"{P}/alerts/{alert_id}/responses",
        [("contact", "person1@example.org"), ("summary", "The ministry replied")],
    )
    assert r.status == 303
    _status, page = await officer.get(f"{P}/alerts/{alert_id}")
    assert "The ministry replied" in page
    _status, page = await officer.get(f"{P}/audit?type=alert&id={alert_id}")
    assert "alert.create" in page


def test_case_toml_round_trips() -> None:
    data = RENDERER.validate_case("urgent-appeal", loads(EXAMPLE))
    assert loads(dumps(data)) == data
