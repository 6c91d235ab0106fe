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
from alerts.contacts.subscriptions import Signer
from alerts.core.clock import utcnow
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
    token = Signer(SECRET).link_token((await contact_row(faces.app, id=partner)).token)
    r = await faces.public.post(f"/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"}, csrf=False)
    assert r.status == 200
    assert await suppressions(faces.app) == {("email", "desk@partner.org", "unsubscribed")}
    assert (await contact_row(faces.app, id=partner)).status == "active"
    faces.smtp.handler.clear()
    since = len(faces.bot_api.sent())
    await send_alert(faces)
    assert mailed(faces) == []
    assert telegrammed(faces.bot_api, since) == ["-100888"]
