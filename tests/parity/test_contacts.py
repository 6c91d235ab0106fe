"""Contact and subscriber actions through every face that offers them (issue 10).

Officers add, change, import, export and erase contacts through the CLI, the JSON API and the
officers' pages; subscribers subscribe, confirm, unsubscribe and change their preferences on
the public pages; Telegram chats /start and /stop through the bot. Each action ends in the
same rows and the same audit entries whatever the face, and a contact made by any face
receives alerts on every channel it has an address for.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alerts.app import App
from alerts.compose import approval
from alerts.contacts import directory
from alerts.contacts.subscriptions import Signer
from alerts.core.clock import utcnow
from alerts.core.signing import Signing
from alerts.delivery.publish import publish
from alerts.service import make_dispatcher
from alerts.store.models import AuditEntry, Contact, Suppression, User
from tests.botapi import BotApiServer
from tests.factories import approved_alert
from tests.parity.conftest import SECRET, Faces
from tests.test_bot import Updates, _handled, _until, bot_running, polled_server

HEADER = "name,email,telegram,kind,language,organisation,country,lists\n"
FORM = {"language": "en", "organisation": "", "country": "", "title": "", "form_of_address": ""}


# --------------------------------------------------------------------------- helpers


@asynccontextmanager
async def bot(faces: Faces, db_url: str) -> AsyncIterator[Updates]:
    """The bot polling a Bot API that records into ``faces.bot_api`` (the bot's own App, same DB)."""
    async with polled_server(faces.bot_api) as (server, updates), bot_running(db_url, server):
        yield updates


async def contact_row(app: App, **where: Any) -> Contact:
    async with app.sessions() as session:
        found = await session.scalar(select(Contact).filter_by(**where))
        assert found is not None, where
        return found


async def suppressions(app: App) -> set[tuple[str, str, str]]:
    async with app.sessions() as session:
        rows = await session.execute(select(Suppression.channel, Suppression.address_key, Suppression.reason))
        return {(c, k, r) for c, k, r in rows}


async def audit_of(app: App, contact_id: int) -> list[tuple[str, int | None]]:
    """(action, user id) of the audit entries about one contact, oldest first."""
    async with app.sessions() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.user_id)
            .where(AuditEntry.object_type == "contact", AuditEntry.object_id == str(contact_id))
            .order_by(AuditEntry.id)
        )
        return [(a, u) for a, u in rows]


async def send_alert(faces: Faces, *, channels: Sequence[str] = ("email", "telegram")) -> int:
    """An approved alert to every active contact (public consent), sent until every delivery is final."""
    async with faces.app.sessions.begin() as session:
        officer = await session.get(User, faces.user_ids["officer"])
        reviewer = await session.get(User, faces.user_ids["reviewer"])
        assert officer is not None and reviewer is not None
        alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            lists=(),
            kinds=("partner", "public"),
            channels=channels,
        )
        await approval.record_consent(session, alert, user=reviewer, scope="public", now=utcnow())
        await publish(session, alert, now=utcnow())
        alert_id = alert.id
    await make_dispatcher(faces.app).run_until_done(alert_id, timeout=30)
    return alert_id


def mailed(faces: Faces) -> list[str]:
    """Recipients of the recorded mail, in order."""
    return [m.rcpt_tos[0].lower() for m in faces.smtp.messages()]


def telegrammed(server: BotApiServer, since: int) -> list[str]:
    """Chats sent a message after the first ``since`` sendMessage calls, sorted."""
    return sorted(c.chat_id for c in server.sent()[since:])


def confirm_link(faces: Faces) -> str:
    message = email.message_from_bytes(faces.smtp.messages()[-1].raw, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://alerts\.test(/subscribe/confirm/\S+)", body.get_content())
    assert found is not None
    return found.group(1)


async def mails(faces: Faces, n: int) -> None:
    async def arrived() -> bool:
        return len(faces.smtp.messages()) >= n

    await _until(arrived)


async def subscribe_and_confirm(faces: Faces, address: str, *, language: str = "en") -> None:
    before = len(faces.smtp.messages())
    r = await faces.public.post("/subscribe", {"email": address, "language": language}, csrf=False)
    assert r.status == 202, r.status
    await mails(faces, before + 1)
    r = await faces.public.post(confirm_link(faces), {}, csrf=False)
    assert r.status == 200, r.status


async def form_add(faces: Faces, user: str, fields: dict[str, str]) -> int:
    page = await faces.page(user)
    status, _ = await page.get("/office/contacts/new")
    assert status == 200
    r = await page.post("/office/contacts/new", {**FORM, **fields})
    assert r.status == 303, r.status
    found = re.search(r"/contacts/(\d+)", r.headers["Location"])
    assert found is not None
    return int(found.group(1))


async def api_add(faces: Faces, user: str, fields: dict[str, Any]) -> int:
    status, body = await faces.api(user, "POST", "/contacts", json=fields)
    assert status == 201, body
    return int(body["id"])


def csv_file(tmp_path: Path, name: str, rows: str) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- defects


async def test_a_contact_made_by_any_face_receives_alerts_on_every_channel(
    faces: Faces, db_url: str, tmp_path: Path
) -> None:
    """Issue 10: contacts added by the form or the API (no channel preference) received nothing."""
    await form_add(
        faces, "officer", {"name": "Form", "email": "form@example.org", "telegram": "1001", "kind": "partner"}
    )
    await api_add(
        faces, "officer", {"name": "Api", "email": "api@example.org", "telegram": "1002", "kind": "partner"}
    )
    run = await faces.cli(
        "contacts", "import", str(csv_file(tmp_path, "c.csv", "Csv,csv@example.org,1003,partner,en,,,\n"))
    )
    assert run.code == 0, run.err
    await subscribe_and_confirm(faces, "sub@example.org")
    async with bot(faces, db_url) as updates:
        updates.message(1005, "/start en")
        await _handled(updates)
    await contact_row(faces.app, telegram="1005", status="active")
    faces.smtp.handler.clear()
    since = len(faces.bot_api.sent())
    await send_alert(faces)
    assert sorted(mailed(faces)) == [
        "api@example.org",
        "csv@example.org",
        "form@example.org",
        "sub@example.org",
    ]
    assert telegrammed(faces.bot_api, since) == ["1001", "1002", "1003", "1005"]


async def test_stop_in_a_partners_group_stops_that_chat_only(faces: Faces, db_url: str) -> None:
    """Issue 10: /stop in a partner's group also suppressed the partner's email."""
    group, admin = -100777, 31
    partner = await api_add(
        faces,
        "officer",
        {"name": "Partner", "email": "desk@partner.org", "telegram": str(group), "kind": "partner"},
    )
    async with bot(faces, db_url) as updates:
        updates.statuses[(group, admin)] = "administrator"
        updates.message(group, "/stop", kind="supergroup", sender=admin)
        await _handled(updates)
    assert await suppressions(faces.app) == {("telegram", str(group), "unsubscribed")}
    row = await contact_row(faces.app, id=partner)
    assert row.status == "active"
    assert ("contact.unsubscribe", None) in await audit_of(faces.app, partner)
    faces.smtp.handler.clear()
    since = len(faces.bot_api.sent())
    await send_alert(faces)
    assert mailed(faces) == ["desk@partner.org"]
    assert telegrammed(faces.bot_api, since) == []  # the group gets nothing more


async def test_the_unsubscribe_link_in_an_email_stops_that_email_only(faces: Faces) -> None:
    """The link (page or RFC 8058 one-click) comes from a mail: it stops that address, not a Telegram chat."""
    partner = await api_add(
        faces,
        "officer",
        {"name": "Partner", "email": "desk@partner.org", "telegram": "-100888", "kind": "partner"},
    )
    token = Signer(Signing(SECRET)).link_token((await contact_row(faces.app, id=partner)).token)
    r = await faces.public.post(f"/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"}, csrf=False)
    assert r.status == 200
    assert await suppressions(faces.app) == {("email", "desk@partner.org", "unsubscribed")}
    assert (await contact_row(faces.app, id=partner)).status == "active"
    faces.smtp.handler.clear()
    since = len(faces.bot_api.sent())
    await send_alert(faces)
    assert mailed(faces) == []
    assert telegrammed(faces.bot_api, since) == ["-100888"]


# --------------------------------------------------------------------------- parity

#: What must agree between two contacts made alike by two faces (not ids, addresses or times).
SAME = (
    "kind",
    "language",
    "organisation",
    "country",
    "title",
    "form_of_address",
    "status",
    "channels",
    "topics",
)


async def shape(app: App, contact_id: int) -> dict[str, Any]:
    """The contact's fields that two faces must leave alike, its lists, and its audit trail."""
    async with app.sessions() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        lists = await directory.contact_lists(session, contact_id)
        entries = await session.execute(
            select(AuditEntry.action, AuditEntry.details)
            .where(AuditEntry.object_type == "contact", AuditEntry.object_id == str(contact_id))
            .order_by(AuditEntry.id)
        )
        return {
            **{name: getattr(contact, name) for name in SAME},
            "lists": lists,
            "audit": [(action, details) for action, details in entries],
        }


async def test_add_and_update_alike_from_the_api_and_the_officers_pages(faces: Faces) -> None:
    fields = {"kind": "authority", "organisation": "Ministry", "country": "Calvera", "title": "Minister"}
    by_api = await api_add(
        faces, "officer", {"name": "A", "email": "a@gov.example", **fields, "lists": ["gov"]}
    )
    by_page = await form_add(
        faces, "officer", {"name": "B", "email": "b@gov.example", **fields, "new_lists": "gov"}
    )
    first = await shape(faces.app, by_api)
    assert first == await shape(faces.app, by_page)
    assert first["channels"] is None and first["lists"] == ["gov"]
    assert first["audit"] == [("contact.create", {"kind": "authority", "lists": ["gov"]})]
    assert await audit_of(faces.app, by_page) == [("contact.create", faces.user_ids["officer"])]

    status, body = await faces.api(
        "officer", "PATCH", f"/contacts/{by_api}", json={"organisation": "Justice", "telegram": "@gov_desk"}
    )
    assert status == 200, body
    page = await faces.page("officer")
    await page.get(f"/office/contacts/{by_page}")
    values = {**FORM, "name": "B", "email": "b@gov.example", **fields, "organisation": "Justice"}
    r = await page.post(f"/office/contacts/{by_page}", {**values, "telegram": "@gov_desk", "lists": "gov"})
    assert r.status == 303, r.status
    after = await shape(faces.app, by_api)
    assert after == await shape(faces.app, by_page)
    assert after["organisation"] == "Justice"
    assert after["audit"][1] == ("contact.update", {"fields": ["telegram", "organisation"]})
    # a viewer may do neither, through either face; nothing is written
    status, _ = await faces.api(
        "viewer", "POST", "/contacts", json={"name": "V", "email": "v@x.org", "kind": "media"}
    )
    assert status == 403
    viewer = await faces.page("viewer")
    assert (
        await viewer.post("/office/contacts/new", {**FORM, "name": "V", "email": "v@x.org", "kind": "media"})
    ).status == 403
    async with faces.app.sessions() as session:
        assert await session.scalar(select(Contact.id).where(Contact.email_key == "v@x.org")) is None


async def test_import_alike_from_the_cli_the_api_and_the_officers_pages(faces: Faces, tmp_path: Path) -> None:
    def rows(tag: str) -> str:
        return f"{tag} One,one@{tag}.org,,media,fr,Daily,Calvera,press;{tag}\n{tag} Bad,not-an-email,,media,fr,,,\n"

    run = await faces.cli(
        "contacts",
        "import",
        str(csv_file(tmp_path, "cli.csv", rows("cli"))),
        "--as",
        "officer",
        "--no-progress",
    )
    assert run.code == 2 and "row 3: email" in run.err, run  # one refused row: exit 2, the rest is in
    status, doc = await faces.api(
        "officer",
        "POST",
        "/contacts/import",
        data=(HEADER + rows("api")).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert status == 200 and doc["lines"][0].startswith("row 3: email"), doc
    page = await faces.page("officer")
    await page.get("/office/contacts/import")
    r = await page.post(
        "/office/contacts/import",
        [("file", ("page.csv", (HEADER + rows("page")).encode(), "text/csv")), ("list", "")],
    )
    assert r.status == 200
    shapes = []
    for tag in ("cli", "api", "page"):
        contact = await contact_row(faces.app, email_key=f"one@{tag}.org")
        found = await shape(faces.app, contact.id)
        assert found.pop("lists") == sorted(["press", tag])
        shapes.append(found)
    assert shapes[0] == shapes[1] == shapes[2]
    assert shapes[0]["channels"] is None and shapes[0]["language"] == "fr"
    async with faces.app.sessions() as session:
        imports = await session.execute(
            select(AuditEntry.user_id, AuditEntry.details).where(AuditEntry.action == "contact.import")
        )
        found_imports = [(user, details["created"], details["refused"]) for user, details in imports]
    assert found_imports == [(faces.user_ids["officer"], 1, 1)] * 3


async def test_export_and_erase_alike_from_the_cli_and_the_officers_pages(faces: Faces) -> None:
    one = await api_add(
        faces, "officer", {"name": "One", "email": "one@x.org", "telegram": "5001", "kind": "public"}
    )
    two = await api_add(
        faces, "officer", {"name": "Two", "email": "two@x.org", "telegram": "5002", "kind": "public"}
    )
    run = await faces.cli("contacts", "export", "one@x.org", "--as", "officer")
    assert run.code == 0, run.err
    assert '"email": "one@x.org"' in run.out
    assert ("contact.export", faces.user_ids["officer"]) in await audit_of(faces.app, one)
    # erasure is for admins, on every face
    refused = await faces.cli("contacts", "erase", str(one), "--as", "officer")
    assert refused.code != 0 and "may not contacts.erase" in refused.err
    officer = await faces.page("officer")
    await officer.get(f"/office/contacts/{two}")
    assert (await officer.post(f"/office/contacts/{two}/erase", {})).status == 403
    run = await faces.cli("contacts", "erase", str(one), "--as", "admin")
    assert run.code == 0 and run.out.strip() == f"erased contact {one}", run
    admin = await faces.page("admin")
    await admin.get(f"/office/contacts/{two}")
    assert (await admin.post(f"/office/contacts/{two}/erase", {})).status == 303
    async with faces.app.sessions() as session:
        assert (await session.execute(select(Contact.id).where(Contact.id.in_([one, two])))).all() == []
        kept = await session.execute(
            select(Suppression.channel, Suppression.reason).order_by(Suppression.channel)
        )
        assert (
            sorted(tuple(r) for r in kept if r[0] != "press")
            == [("email", "erased")] * 2 + [("telegram", "erased")] * 2
        )
    erased = [await audit_of(faces.app, cid) for cid in (one, two)]
    assert [e[-1] for e in erased] == [("contact.erase", faces.user_ids["admin"])] * 2


async def test_a_subscriber_on_the_public_pages(faces: Faces) -> None:
    await subscribe_and_confirm(faces, "reader@example.org", language="fr")
    contact = await contact_row(faces.app, email_key="reader@example.org")
    assert (contact.status, contact.kind, contact.language, contact.channels) == (
        "active",
        "public",
        "fr",
        ["email"],
    )
    token = Signer(Signing(SECRET)).link_token(contact.token)
    r = await faces.public.post(
        f"/preferences/{token}", {"channels": "email", "language": "es", "kinds": "urgent-appeal"}, csrf=False
    )
    assert r.status == 200
    r = await faces.public.post(f"/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"}, csrf=False)
    assert r.status == 200
    found = await shape(faces.app, contact.id)
    assert (found["status"], found["language"], found["topics"]) == (
        "unsubscribed",
        "es",
        ["kind:urgent-appeal"],
    )
    assert [a for a, _ in found["audit"]] == [
        "contact.subscribe",
        "contact.confirm",
        "contact.preferences",
        "contact.unsubscribe",
    ]
    assert await suppressions(faces.app) == {("email", "reader@example.org", "unsubscribed")}


async def test_start_and_stop_through_the_bot(faces: Faces, db_url: str) -> None:
    async with bot(faces, db_url) as updates:
        updates.message(6001, "/start es")
        await _handled(updates)
        contact = await contact_row(faces.app, telegram="6001")
        assert (contact.status, contact.language, contact.channels) == ("active", "es", ["telegram"])
        updates.message(6001, "/stop")
        await _handled(updates)
        assert (await contact_row(faces.app, telegram="6001")).status == "unsubscribed"
        assert await suppressions(faces.app) == {("telegram", "6001", "unsubscribed")}
        updates.message(6001, "/start en")
        await _handled(updates)
    found = await shape(faces.app, contact.id)
    assert (found["status"], found["language"]) == ("active", "en")
    assert [a for a, _ in found["audit"]] == ["contact.subscribe", "contact.unsubscribe", "contact.subscribe"]
    assert await suppressions(faces.app) == set()
