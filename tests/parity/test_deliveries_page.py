"""During and after a send, on the officers' pages (issue 11): the deliveries say who (name,
organisation, kind), are found by name, export as CSV, show addresses only to the roles that
may see contact details; the alert page's progress bar counts what is final; the demo mailbox
opens a message with its headers and its HTML in a sandboxed frame."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest
from sqlalchemy import update

from alerts.service import make_dispatcher
from alerts.store.models import Contact
from tests.factories import add_contacts
from tests.parity.conftest import Faces
from tests.parity.test_workflow import approved
from tests.web import P


async def sent_alert(faces: Faces) -> tuple[int, list[int]]:
    """An alert sent to three contacts of the list, one of them named like a formula."""
    async with faces.app.sessions.begin() as session:
        ids = await add_contacts(session, 3)
        await session.execute(
            update(Contact).where(Contact.id == ids[0]).values(name="Ana Ruiz", organisation="Daily Post")
        )
        await session.execute(update(Contact).where(Contact.id == ids[1]).values(name="=HYPERLINK(1)"))
    alert_id = await approved(faces)
    status, body = await faces.api("officer", "POST", f"/alerts/{alert_id}/send")
    assert status == 202, body
    await make_dispatcher(faces.app).run_until_done(alert_id, timeout=30)
    return alert_id, ids


async def test_deliveries_say_who_are_found_by_name_and_export_as_csv(faces: Faces) -> None:
    alert_id, ids = await sent_alert(faces)
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?q=ruiz")
    assert status == 200
    rows = re.findall(r'<tr data-delivery="\d+">(.*?)</tr>', page, re.S)
    assert len(rows) == 1, rows
    assert "Ana Ruiz" in rows[0] and "Daily Post" in rows[0] and "person0@example.org" in rows[0]
    assert 'data-label="Kind">Authority<' in rows[0] and "badge d-sent" in rows[0]
    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?q=post&state=failed")
    assert status == 200 and "No deliveries match." in page

    viewer = await faces.page("viewer")
    status, page = await viewer.get(f"{P}/alerts/{alert_id}/deliveries")
    assert status == 200 and "Ana Ruiz" in page
    assert "@example.org" not in page  # a viewer sees who, never the address

    status, body = await officer.get(f"{P}/alerts/{alert_id}/deliveries.csv", html=False)
    assert status == 200
    table = list(csv.reader(io.StringIO(body)))
    assert table[0][-1] == "address" and len(table) == 4
    by_contact = {row[1]: row for row in table[1:]}
    assert by_contact[str(ids[1])][2] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    assert by_contact[str(ids[0])][3] == "Daily Post" and by_contact[str(ids[0])][7] == "sent"
    status, body = await viewer.get(f"{P}/alerts/{alert_id}/deliveries.csv?q=ana", html=False)
    table = list(csv.reader(io.StringIO(body)))
    assert "address" not in table[0] and [row[2] for row in table[1:]] == ["Ana Ruiz"]

    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?page=%C2%B2")
    assert status in (400, 422) and "is not a whole number from 1 to 100000" in html.unescape(page)

    status, page = await officer.get(f"{P}/alerts/{alert_id}")
    bar = re.search(r'<progress data-progress max="(\d+)" value="(\d+)"', page)
    assert bar is not None and bar.groups() == ("3", "3")


async def test_reading_every_delivery_goes_past_the_last_id_on_the_page_and_the_api(
    faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CSV export writes its rows in batches, each starting past the last id written, and
    the API pages the same way with ``after``: every delivery once, in id order (an offset
    reads every skipped row first: seconds a page near the end of a million)."""
    from alerts.web.ui import deliveries as pages

    alert_id, _ = await sent_alert(faces)
    monkeypatch.setattr(pages, "CSV_BATCH", 2)  # three deliveries: a full batch, then the last
    officer = await faces.page("officer")
    status, body = await officer.get(f"{P}/alerts/{alert_id}/deliveries.csv", html=False)
    assert status == 200
    exported = [int(row[0]) for row in list(csv.reader(io.StringIO(body)))[1:]]
    assert len(exported) == 3 and exported == sorted(exported)

    read, after = [], 0
    while True:
        status, doc = await faces.api("viewer", "GET", f"/alerts/{alert_id}/deliveries?limit=2&after={after}")
        assert status == 200, doc
        page = [d["id"] for d in doc["deliveries"]]
        if not page:
            break
        read += page
        after = page[-1]
    assert read == exported
    status, doc = await faces.api("viewer", "GET", f"/alerts/{alert_id}/deliveries?after=-1")
    assert status == 422 and "after" in doc["error"]["message"], doc


async def test_the_demo_mailbox_opens_a_message(faces: Faces) -> None:
    faces.app.extras["capture"] = faces.smtp  # as `alerts demo` does with its capture server
    await sent_alert(faces)
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/mailbox")
    assert status == 200
    links = re.findall(rf'href="{P}/mailbox/(\d+)">([^<]+)<', page)
    appeals = [(n, subject) for n, subject in links if subject.startswith("Urgent appeal")]
    assert len(links) == 6 and len(appeals) == 3, links  # three review notices, three appeals
    number, subject = appeals[0]
    status, page = await officer.get(f"{P}/mailbox/{number}")
    assert status == 200
    assert f"<h1>{subject}</h1>" in page
    assert re.search(r"<dt>List-Unsubscribe</dt><dd[^>]*>&lt;http://alerts\.test/", page)
    frame = re.search(r'<iframe class="mail" title="[^"]+" sandbox srcdoc="([^"]*)"', page)
    assert frame is not None and "&lt;html" in frame.group(1).lower()  # the HTML, escaped, sandboxed
    status, page = await officer.get(f"{P}/mailbox/999999")
    assert status == 404 and "not in the mailbox" in page


async def test_a_case_at_a_glance_chart_and_timeline(faces: Faces) -> None:
    from datetime import timedelta

    from alerts.core.clock import utcnow

    alert_id, _ = await sent_alert(faces)
    due = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    for path, body in (
        (
            f"/alerts/{alert_id}/responses",
            {"from": "minister@example.org", "summary": "We are looking into it."},
        ),
        (f"/alerts/{alert_id}/followups", {"kind": "reminder", "at": due.isoformat(), "note": "call again"}),
        (f"/alerts/{alert_id}/consent", {"scope": "restricted"}),
    ):
        status, doc = await faces.api("officer", "POST", path, json=body)
        assert status < 300, (path, doc)
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/alerts/{alert_id}")
    assert status == 200
    chart = re.search(r'<svg [^>]*data-chart="email">(.*?)</svg>', page, re.S)
    assert chart is not None
    assert chart.group(1).count('class="c-sent"') >= 1
    assert "Email: 3 sent, 0 failed, 0 bounced" in page
    heights = [
        float(h)
        for h in re.findall(
            r'class="c-sent" x="[\d.]+" y="[\d.]+" width="8" height="([\d.]+)"', chart.group(1)
        )
    ]
    assert max(heights) == 58  # the tallest bar is the scale
    kinds = re.findall(r'<li class="t-(\w+)" data-kind="\w+">', page)
    assert kinds[0] == "due"  # what is still to come is on top
    assert kinds.index("consent") < kinds.index("response") < kinds.index("action")  # then newest first
    timeline = page[page.index('class="timeline"') :]
    assert "Reminder due: call again" in timeline
    assert "response from minister@example.org: We are looking into it." in timeline
    assert "consent restricted, recorded by officer" in timeline and "sent by officer" in timeline


async def test_the_deliveries_search_takes_a_percent_sign_in_an_organisation_literally(faces: Faces) -> None:
    async with faces.app.sessions.begin() as session:
        fund, club = await add_contacts(session, 2)
        await session.execute(update(Contact).where(Contact.id == fund).values(organisation="50% Fund"))
        await session.execute(update(Contact).where(Contact.id == club).values(organisation="500 Club"))
    alert_id = await approved(faces)
    status, body = await faces.api("officer", "POST", f"/alerts/{alert_id}/send")
    assert status == 202, body
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/alerts/{alert_id}/deliveries?q=50%25")
    assert status == 200
    rows = re.findall(r'<tr data-delivery="\d+">(.*?)</tr>', page, re.S)
    assert len(rows) == 1 and "50% Fund" in rows[0], rows
