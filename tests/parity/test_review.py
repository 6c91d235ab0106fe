"""The review screen (issue 11): the evidence before the decision — every language side by side,
each channel as its recipient sees it (Telegram without a subject, its HTML rendered), what
changed since the last approved version — and an approval that names each language."""

from __future__ import annotations

import html
import re

from tests.factories import add_contacts
from tests.parity.conftest import Faces
from tests.parity.test_workflow import EXAMPLE
from tests.web import P


async def test_the_reviewer_reads_every_language_and_channel_and_what_changed(faces: Faces) -> None:
    async with faces.app.sessions.begin() as session:
        await add_contacts(session, 2, telegram=True)
    body = {
        "family": "urgent-appeal",
        "data": EXAMPLE,
        "lists": ["urgent-appeals"],
        "channels": ["email", "telegram"],
        "languages": ["en", "fr"],
    }
    status, doc = await faces.api("officer", "POST", "/alerts", json=body)
    assert status == 201, doc
    alert_id = doc["id"]
    assert (await faces.api("officer", "POST", f"/alerts/{alert_id}/submit"))[0] == 200

    reviewer = await faces.page("reviewer")
    status, page = await reviewer.get(f"{P}/alerts/{alert_id}")
    assert status == 200
    review = page[page.index('id="review"') : page.index('id="approve-form"')]  # evidence before decision
    cells = dict(re.findall(r'data-shown="([^"]+)">(.*?)</div>', review, re.S))
    assert sorted(cells) == ["email:en", "email:fr", "telegram:en", "telegram:fr"]
    assert "<strong>Subject:</strong> Urgent appeal on behalf of Lucía Marenco" in cells["email:en"]
    assert "<strong>Subject:</strong>" in cells["email:fr"] and "Lucía Marenco" in cells["email:fr"]
    for language in ("en", "fr"):
        telegram = cells[f"telegram:{language}"]
        assert "Subject" not in telegram  # Telegram has none
        frame = re.search(r'<iframe class="shown" sandbox srcdoc="([^"]+)"', telegram)
        assert frame is not None
        shown = html.unescape(frame.group(1))
        assert "<b>" in shown and "border-radius" in shown  # its HTML, rendered in a chat bubble
    assert "What changed" not in page  # nothing approved before

    r = await reviewer.post(f"{P}/alerts/{alert_id}/approve", [])
    assert r.status == 422 and "tick each language you have read and approve" in html.unescape(await r.text())
    r = await reviewer.post(f"{P}/alerts/{alert_id}/approve", [("languages", "en"), ("languages", "fr")])
    assert r.status == 303 and "notice=approved" in r.headers["Location"]

    edited = {**EXAMPLE, "summary": "Lucía Marenco was moved to an unknown prison."}
    status, doc = await faces.api("officer", "PATCH", f"/alerts/{alert_id}", json={"data": edited})
    assert status == 200, doc
    assert (await faces.api("officer", "POST", f"/alerts/{alert_id}/submit"))[0] == 200
    status, page = await reviewer.get(f"{P}/alerts/{alert_id}")
    assert "What changed since approved version 1" in page
    added = re.findall(r'<span class="add">(.*?)</span>', page)
    removed = re.findall(r'<span class="del">(.*?)</span>', page)
    assert any("moved to an unknown prison" in line for line in added), added
    assert removed and all(line.startswith("-") for line in removed)
