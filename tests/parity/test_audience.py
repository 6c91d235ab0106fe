"""Who an alert will reach, through every face (issue 11): ``alerts alert audience``,
``GET /api/v1/alerts/{id}/audience`` and the panel on the alert's page say the same thing, and
what they say before the send is what reaches the recording SMTP server after it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import update

from alerts.service import make_dispatcher
from alerts.store.models import Contact, Suppression
from tests.factories import add_contacts
from tests.parity.conftest import Faces
from tests.parity.test_workflow import EXAMPLE
from tests.web import P

#: What the directory below leaves out, and why (a key of empty_audience.REASONS each).
LEFT_OUT = {"inactive": 1, "no_consent": 1, "no_address": 1, "suppressed": 1}


async def directory(faces: Faces) -> dict[str, list[int]]:
    """One list holding contacts that are reached in different ways, or left out for a reason."""
    async with faces.app.sessions.begin() as session:
        made = {
            "authority": await add_contacts(session, 2, start=0),
            "media_fr": await add_contacts(session, 1, kind="media", language="fr", start=10),
            "partner_de": await add_contacts(session, 1, kind="partner", language="de", start=20),
            "public": await add_contacts(session, 1, kind="public", start=30),
            "telegram_only": await add_contacts(session, 1, email=False, telegram=True, start=40),
            "suppressed": await add_contacts(session, 1, start=50),
            "unsubscribed": await add_contacts(session, 1, start=60),
        }
        session.add(Suppression(channel="email", address_key="person50@example.org", reason="bounce"))
        await session.execute(
            update(Contact).where(Contact.id == made["unsubscribed"][0]).values(status="unsubscribed")
        )
    return made


async def draft(faces: Faces) -> int:
    body = {
        "family": "urgent-appeal",
        "data": EXAMPLE,
        "lists": ["urgent-appeals"],
        "channels": ["email"],
        "languages": ["en", "fr"],
    }
    status, doc = await faces.api("officer", "POST", "/alerts", json=body)
    assert status == 201, doc
    return int(doc["id"])


def on_page(html: str) -> dict[str, Any]:
    """The audience panel of the alert's page, read from its data attributes."""
    groups = {g: int(n) for g, n in re.findall(r'data-group="([^"]+)"><strong>(\d+)</strong>', html)}
    reasons = {r: int(n) for r, n in re.findall(r'data-reason="([^"]+)"><strong>(\d+)</strong>', html)}
    contacts = sorted(int(c) for c in re.findall(r'data-contact="(\d+)"', html))
    deliveries = re.search(r'data-reach="deliveries">(\d+)<', html)
    assert deliveries is not None, "no audience panel on the page"
    return {
        "deliveries": int(deliveries.group(1)),
        "groups": groups,
        "reasons": reasons,
        "contacts": contacts,
        "fallback": 'data-fallback="de"' in html,
    }


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON report in the shape ``on_page`` reads."""
    return {
        "deliveries": doc["deliveries"],
        "groups": {f"{g['kind']}:{g['channel']}:{g['language']}": g["count"] for g in doc["reached"]},
        "reasons": doc["left_out_counts"],
        "contacts": sorted(c["contact"] for c in doc["left_out"]),
        "fallback": any(f["wanted"] == "de" for f in doc["language_fallbacks"]),
    }


async def test_every_face_says_who_will_receive_it_and_the_send_reaches_exactly_them(
    faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerts.web.ui import alerts as pages

    monkeypatch.setattr(pages, "REACH_WAIT", 60)  # the count in the page, however loaded the machine
    made = await directory(faces)
    alert_id = await draft(faces)

    status, doc = await faces.api("viewer", "GET", f"/alerts/{alert_id}/audience")
    assert status == 200, doc
    expected = {
        "deliveries": 4,
        "groups": {"authority:email:en": 2, "media:email:fr": 1, "partner:email:en": 1},
        "reasons": LEFT_OUT,
        "contacts": sorted(made[k][0] for k in ("public", "telegram_only", "suppressed", "unsubscribed")),
        "fallback": True,
    }
    assert summary(doc) == expected
    why = {c["contact"]: c["why"] for c in doc["left_out"]}
    assert why[made["public"][0]] == "public, without the defender's consent to publicity"
    assert why[made["telegram_only"][0]] == "with no address for email"
    assert doc["language_fallbacks"] == [{"wanted": "de", "shown": "en", "count": 1}]

    run = await faces.cli("alert", "audience", str(alert_id), "--json", "--as", "viewer")
    assert run.code == 0, run.err
    assert json.loads(run.out) == doc
    text = await faces.cli("alert", "audience", str(alert_id))
    assert text.code == 0, text.err
    assert f"alert {alert_id}: 4 deliveries on email in en, fr" in text.out
    assert "1 reading de get en (no de text)" in text.out
    assert "with no address for email" in text.out

    page = await faces.page("officer")
    status, html = await page.get(f"{P}/alerts/{alert_id}")
    assert status == 200
    assert on_page(html) == expected
    status, html = await page.get(f"{P}/alerts/{alert_id}/audience")  # the count's own page
    assert status == 200
    assert on_page(html) == expected

    # the send writes what the report said, and that is what reaches the SMTP server
    for user, path in (("officer", "submit"), ("reviewer", "approve"), ("officer", "send")):
        status, body = await faces.api(user, "POST", f"/alerts/{alert_id}/{path}")
        assert status < 300, body
    await make_dispatcher(faces.app).run_until_done(alert_id, timeout=30)
    reached = sorted(m.rcpt_tos[0] for m in faces.smtp.messages() if m.rcpt_tos[0].startswith("person"))
    assert reached == sorted(f"person{i}@example.org" for i in (0, 1, 10, 20)), (
        "the send reached other people than the report said"
    )
    status, after = await faces.api("viewer", "GET", f"/alerts/{alert_id}/audience")
    assert summary(after) == expected  # once sent, it counts what was written: the same


async def test_a_page_that_came_before_the_count_points_to_it_and_it_says_the_same(
    faces: Faces, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large network's count takes seconds: the alert's page shows without it and points to
    the count's own page (the page's script fills it in), which takes up the same count."""
    from alerts.web.ui import alerts as pages

    await directory(faces)
    alert_id = await draft(faces)
    monkeypatch.setattr(pages, "REACH_WAIT", 0)  # every count takes longer than the page waits
    page = await faces.page("viewer")
    status, html = await page.get(f"{P}/alerts/{alert_id}")
    assert status == 200
    assert "data-reach" not in html
    assert f'data-audience="{P}/alerts/{alert_id}/audience"' in html
    assert f'href="{P}/alerts/{alert_id}/audience"' in html  # for a reader without the script
    status, html = await page.get(f"{P}/alerts/{alert_id}/audience")
    assert status == 200
    assert on_page(html)["deliveries"] == 4
    assert faces.app.reports.started == 1  # the count the page started, not another
    status, doc = await faces.api("viewer", "GET", f"/alerts/{alert_id}/audience")
    assert summary(doc) == on_page(html)


async def test_a_channel_not_configured_is_refused_when_written_not_when_sent(faces: Faces) -> None:
    body = {"family": "urgent-appeal", "data": EXAMPLE, "lists": ["x"], "channels": ["webhook"]}
    status, doc = await faces.api("officer", "POST", "/alerts", json=body)
    assert status == 422, doc
    assert doc["error"]["details"]["field"] == "channels"
    assert (
        "webhook is not configured on this service (see [webhook] in the config)" in doc["error"]["message"]
    )
    example = faces.cwd / "case.toml"
    example.write_text('name = "x"\n', encoding="utf-8")
    run = await faces.cli(
        "alert",
        "create",
        "--template",
        "urgent-appeal",
        "--data",
        "case.toml",
        "--channel",
        "webhook",
        "--list",
        "x",
    )
    assert run.code == 2 and "webhook is not configured" in run.err, run


async def test_the_audience_of_an_unknown_alert_is_a_404_and_an_exit_2(faces: Faces) -> None:
    status, doc = await faces.api("viewer", "GET", "/alerts/999999/audience")
    assert status == 404, doc
    run = await faces.cli("alert", "audience", "999999")
    assert run.code == 2 and "999999" in run.err, run
