"""Public pages: double opt-in with a real SMTP capture server, signed links, one-click unsubscribe,
preferences; the archive shows only public, consented alerts; Atom and CAP 1.2 are well formed."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.app import open_app
from alerts.cli.capture import CapturedMessage, CaptureServer, RecordingHandler
from alerts.compose import approval
from alerts.contacts.subscriptions import Signer
from alerts.core.clock import utcnow
from alerts.core.errors import ValidationError
from alerts.core.signing import Signing
from alerts.core.states import AlertStatus
from alerts.delivery.publish import publish
from alerts.store.models import Alert, Contact, DeliveryEvent, Suppression, User
from alerts.web import make_web_app
from tests.factories import add_contacts, approved_alert, make_users
from tests.web.conftest import SECRET, Site, site_settings

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"
INVALID = "This link is not valid or has expired."


@pytest.fixture
async def mail_site(db_url: str) -> AsyncIterator[tuple[Site, CaptureServer]]:
    """The web app with a real email channel delivering to a loopback capture server."""
    async with CaptureServer() as capture:
        settings = site_settings(db_url).replace("email", host="127.0.0.1", port=capture.port, pool_size=1)
        async with open_app(settings) as app:
            server = TestServer(make_web_app(app))
            await server.start_server()
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                yield Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http), capture
            await server.close()


async def _mails(capture: CaptureServer, n: int, *, timeout: float = 5.0) -> list[CapturedMessage]:
    """The captured messages once there are ``n`` (confirmations are mailed in the background)."""
    deadline = time.monotonic() + timeout
    while len(capture.messages()) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(capture.messages()) == n, capture.messages()
    return capture.messages()


def _link(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://alerts\.test(/subscribe/confirm/\S+)", body.get_content())
    assert found is not None
    return found.group(1)


async def _contact(site: Site, address: str) -> Contact:
    async with site.app.sessions() as session:
        found = await session.scalar(select(Contact).where(Contact.email_key == address))
        assert found is not None
        return found


async def _public_alert(
    site: Site,
    *,
    scope: str = "public",
    sent: bool = True,
    is_public: bool = True,
    parent_id: int | None = None,
    note: str = "",
) -> int:
    async with site.app.sessions.begin() as session:
        officer = await session.scalar(select(User).where(User.name == "olga"))
        reviewer = await session.scalar(select(User).where(User.name == "rafael"))
        if officer is None or reviewer is None:
            officer, reviewer = await make_users(session)
        alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            lists=(),
            kinds=("public",),
            languages=("en", "fr"),
            parent_id=parent_id,
            family="update" if parent_id else "urgent-appeal",
        )
        alert.is_public = is_public
        await approval.record_consent(session, alert, user=reviewer, scope="public", note=note, now=utcnow())
        if sent:
            await publish(session, alert, now=utcnow())
            # as if dispatched: every delivery went out (an update goes to whom the original reached)
            from sqlalchemy import update as set_rows

            from alerts.store.models import Delivery

            await session.execute(
                set_rows(Delivery).where(Delivery.alert_id == alert.id).values(state="sent")
            )
            await approval.set_status(session, alert, AlertStatus.SENT, user=None, now=utcnow())
        if scope != "public":  # consent withdrawn after sending: the archive must drop it
            await approval.record_consent(session, alert, user=reviewer, scope=scope, now=utcnow())
        return alert.id


async def test_subscribe_confirm_unsubscribe_with_a_real_smtp_server(
    mail_site: tuple[Site, CaptureServer],
) -> None:
    site, capture = mail_site
    status, page = await site.call("GET", "/subscribe")
    assert status == 200 and 'name="email"' in page
    form = {
        "email": "Reader@Example.org",
        "language": "fr",
        "kinds": "urgent-appeal",
        "countries": "Calvera, Tarsis",
    }
    status, page = await site.call("POST", "/subscribe", data=form)
    assert status == 202 and "Check your inbox" in page
    assert [m.rcpt_tos for m in await _mails(capture, 1)] == [("Reader@example.org",)]
    assert capture.messages()[0].subject == "Confirmez votre abonnement aux alertes urgentes"
    contact = await _contact(site, "reader@example.org")
    assert (contact.status, contact.kind, contact.language) == ("pending", "public", "fr")
    assert contact.topics == ["kind:urgent-appeal", "country:Calvera", "country:Tarsis"]
    # nothing else reaches a pending contact: a public alert goes out before confirmation
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 1, kind="public")  # someone the alert does reach
    first = await _public_alert(site)
    async with site.app.sessions() as session:
        from alerts.store.models import Delivery

        assert await session.scalar(select(Delivery.id).where(Delivery.contact_id == contact.id)) is None
    # asking again at once sends nothing more (no mail-bombing), and says the same thing
    status, again = await site.call("POST", "/subscribe", data=form)
    assert status == 202 and again == page and len(capture.messages()) == 1
    link = _link(capture.messages()[0].raw)
    status, page = await site.call("GET", link)
    assert status == 200 and "Confirm my subscription" in page
    assert (await _contact(site, "reader@example.org")).status == "pending"  # a GET changes nothing
    status, page = await site.call("POST", link)
    assert status == 200 and "Your subscription is confirmed." in page
    assert (await _contact(site, "reader@example.org")).status == "active"
    status, page = await site.call("POST", link)  # replayed: harmless
    assert status == 200 and "You are already subscribed." in page
    # a tampered confirmation token
    status, page = await site.call("POST", link[:-3] + ("xyz" if not link.endswith("xyz") else "abc"))
    assert status == 404 and INVALID in page
    # the contact now gets the next public alert; then unsubscribes in one click (RFC 8058)
    async with site.app.sessions.begin() as session:
        alert = await session.get(Alert, first)
        assert alert is not None
    second = await _public_alert(site)
    token = Signer(Signing(SECRET)).link_token(contact.token)
    status, page = await site.call("GET", f"/unsubscribe/{token}")
    assert status == 200 and 'method="post"' in page
    status, page = await site.call(
        "POST",
        f"/unsubscribe/{token}",
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and "You are unsubscribed" in page
    assert (await _contact(site, "reader@example.org")).status == "unsubscribed"
    async with site.app.sessions() as session:
        suppressed = await session.execute(
            select(Suppression.channel, Suppression.address_key, Suppression.reason, Suppression.detail)
        )
        assert suppressed.all() == [
            ("email", "reader@example.org", "unsubscribed", "unsubscribed via one-click")  # no cookie
        ]
        events = (
            await session.scalars(select(DeliveryEvent).where(DeliveryEvent.type == "unsubscribed"))
        ).all()
        assert [(e.alert_id, e.detail) for e in events] == [(second, "unsubscribed via one-click")]
    # again: nothing more is written; an old confirmation link cannot resubscribe
    status, _ = await site.call(
        "POST",
        f"/unsubscribe/{token}",
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    status, page = await site.call("POST", link)
    assert status == 404 and INVALID in page
    assert (await _contact(site, "reader@example.org")).status == "unsubscribed"
    # subscribing again takes a new confirmation; confirming lifts the suppression
    await site.call("POST", "/subscribe", data=form)
    await _mails(capture, 2)
    status, page = await site.call("POST", _link(capture.messages()[1].raw))
    assert "Your subscription is confirmed." in page
    async with site.app.sessions() as session:
        assert (await session.execute(select(Suppression))).all() == []
    # the token from before the new subscription no longer works
    status, page = await site.call("GET", f"/unsubscribe/{token}")
    assert status == 404 and INVALID in page


class _HeldHandler(RecordingHandler):
    """Accepts a message only once ``release`` is set: a slow mail server."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        self.arrived.set()
        await self.release.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_subscribe_answers_before_the_confirmation_is_mailed(db_url: str) -> None:
    """New and known addresses answer alike: the confirmation goes out after the answer, not within it."""
    handler = _HeldHandler()
    async with CaptureServer(handler=handler) as capture:
        settings = site_settings(db_url).replace("email", host="127.0.0.1", port=capture.port, pool_size=1)
        async with open_app(settings) as app:
            server = TestServer(make_web_app(app))
            await server.start_server()
            async with aiohttp.ClientSession() as http:
                site = Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http)
                form = {"email": "new@example.org", "language": "en"}
                status, page = await asyncio.wait_for(site.call("POST", "/subscribe", data=form), 3)
                assert status == 202 and "Check your inbox" in page
                await asyncio.wait_for(
                    handler.arrived.wait(), 5
                )  # the mail is on its way, held by the server
                assert capture.messages() == []
                handler.release.set()
                assert [m.rcpt_tos for m in await _mails(capture, 1)] == [("new@example.org",)]
                from alerts.web.public.pages import CONFIRMATIONS

                tasks = server.app[CONFIRMATIONS]
                assert all(await asyncio.wait_for(asyncio.gather(*tasks), 5))  # sent
                assert not tasks  # and let go
            await server.close()


async def test_forged_tokens_get_the_same_404(site: Site) -> None:
    status, page = await site.call(
        "POST", "/subscribe", data={"email": "someone@example.org", "language": "en"}
    )
    assert status == 202
    contact = await _contact(site, "someone@example.org")
    forged_mac = f"{contact.token}.{'A' * 43}"
    other_key = Signer(Signing("another-secret")).link_token(contact.token)
    unknown = Signer(Signing(SECRET)).link_token("Z" * 32)
    pages = set()
    for token in (forged_mac, other_key, unknown, "nonsense", "a.b.c"):
        for method, path in (
            ("GET", "/unsubscribe/"),
            ("POST", "/unsubscribe/"),
            ("GET", "/preferences/"),
            ("POST", "/preferences/"),
            ("GET", "/subscribe/confirm/"),
            ("POST", "/subscribe/confirm/"),
        ):
            status, page = await site.call(method, path + token)
            assert status == 404, (method, path, token)
            pages.add(page)
    assert len(pages) == 1 and INVALID in pages.pop()
    assert (await _contact(site, "someone@example.org")).status == "pending"
    forged_confirm = Signer(Signing("another-secret")).confirm_token(contact)
    status, _ = await site.call("POST", f"/subscribe/confirm/{forged_confirm}")
    assert status == 404 and (await _contact(site, "someone@example.org")).status == "pending"


async def test_subscribe_refuses_bad_input_and_never_says_whether_an_address_is_known(site: Site) -> None:
    status, page = await site.call("POST", "/subscribe", data={"email": "not-an-address", "language": "en"})
    assert status == 422 and "email" in page
    status, page = await site.call("POST", "/subscribe", data={"email": "x@example.org", "language": "xx"})
    assert status == 422 and "language &#39;xx&#39; is not a two-letter ISO 639-1 code" in page
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 1)  # person0@example.org, an active authority
    _, known = await site.call("POST", "/subscribe", data={"email": "person0@example.org", "language": "en"})
    _, new = await site.call("POST", "/subscribe", data={"email": "new@example.org", "language": "en"})
    assert known == new
    async with site.app.sessions() as session:
        person = await session.scalar(select(Contact).where(Contact.email_key == "person0@example.org"))
        assert person is not None and (person.kind, person.status) == ("authority", "active")


async def test_subscribe_without_an_address_asks_for_one_in_the_visitors_language(site: Site) -> None:
    """An empty (or blank) address: the form again, 422, saying what is missing in the page's
    language, and nothing recorded; the refusal names the ``email`` field."""
    from alerts.actions import subscriptions
    from alerts.contacts.subscribe_limits import Limits
    from tests.web.conftest import row_counts

    before = await row_counts(site.app)
    for address, accept, said in (
        ("", "en", "Please give an email address."),
        ("   ", "en", "Please give an email address."),
        ("", "fr", "Veuillez indiquer une adresse électronique."),
    ):
        status, page = await site.call(
            "POST",
            "/subscribe",
            data={"email": address, "language": "en"},
            headers={"Accept-Language": accept},
        )
        assert status == 422 and said in page, (accept, page)
    assert await row_counts(site.app) == before
    with pytest.raises(ValidationError) as refused:
        await subscriptions.subscribe(
            site.app, email=" ", language="en", network="192.0.2.0/24", limits=Limits()
        )
    assert (refused.value.message, refused.value.details) == (
        "Please give an email address.",
        {"field": "email"},
    )


async def test_preferences(site: Site) -> None:
    await site.call("POST", "/subscribe", data={"email": "p@example.org", "language": "en"})
    contact = await _contact(site, "p@example.org")
    token = Signer(Signing(SECRET)).link_token(contact.token)
    status, page = await site.call("GET", f"/preferences/{token}")
    assert status == 200 and "Your preferences" in page
    status, page = await site.call(
        "POST",
        f"/preferences/{token}",
        data={"channels": "email", "language": "es", "kinds": "update", "countries": "Calvera"},
    )
    # the page answers in the language just chosen (no Accept-Language: the contact's own)
    assert status == 200 and "Sus preferencias se han guardado." in page and '<html lang="es">' in page
    contact = await _contact(site, "p@example.org")
    assert (contact.channels, contact.language, contact.topics) == (
        ["email"],
        "es",
        ["kind:update", "country:Calvera"],
    )
    status, page = await site.call(
        "POST", f"/preferences/{token}", data={"channels": "fax", "language": "es"}
    )
    assert status == 422 and "fax" in page
    assert (await _contact(site, "p@example.org")).channels == ["email"]


def _children(el: ET.Element) -> list[str]:
    return [c.tag.removeprefix(CAP) for c in el]


async def test_archive_feed_and_cap_show_only_public_consented_alerts(site: Site) -> None:
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 2, kind="public")
    shown = await _public_alert(site, note="INTERNAL: family lives at 12 Harbour Road")
    restricted = await _public_alert(site, scope="restricted")
    private = await _public_alert(site, is_public=False)
    draft = await _public_alert(site, sent=False)
    update = await _public_alert(site, parent_id=shown)
    status, page = await site.call("GET", "/alerts")
    assert status == 200
    linked = set(re.findall(r'href="/alerts/(\d+)"', page))
    assert linked == {str(shown), str(update)}
    for alert_id in (restricted, private, draft):
        assert (await site.call("GET", f"/alerts/{alert_id}"))[0] == 404
    for alert_id in (private, draft):  # never public: nothing to cancel, nothing said
        assert (await site.call("GET", f"/alerts/{alert_id}.cap.xml"))[0] == 404
    async with site.http.get(site.base + f"/alerts/{restricted}.cap.xml") as r:  # consent withdrawn
        assert r.status == 200 and r.content_type == "application/cap+xml"
        cancel = ET.fromstring(await r.read())
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    assert cancel.findtext(f"{CAP}identifier") == f"alerts.test-alert-{restricted}-cancel"
    assert (cancel.findtext(f"{CAP}references") or "").startswith(
        f"alerts.test,alerts.test-alert-{restricted},"
    )
    assert cancel.find(f"{CAP}info") is None
    status, page = await site.call("GET", f"/alerts/{shown}?lang=fr")
    assert status == 200 and 'lang="fr"' in page and "Lucía Marenco" in page
    assert "person0@example.org" not in page and "person1@example.org" not in page  # recipients
    assert "Harbour Road" not in page and "queued" not in page  # consent notes, counts
    assert f'href="/alerts/{shown}?lang=en"' in page
    async with site.http.get(site.base + "/feed.atom") as r:
        assert r.content_type == "application/atom+xml"
        feed = ET.fromstring(await r.read())
    entries = feed.findall(f"{ATOM}entry")
    assert {e.findtext(f"{ATOM}id") for e in entries} == {
        f"http://alerts.test/alerts/{i}" for i in (shown, update)
    }
    assert feed.findtext(f"{ATOM}title") == "Urgent Alerts" and feed.find(f"{ATOM}updated") is not None
    assert all(e.find(f"{ATOM}updated") is not None and e.findtext(f"{ATOM}title") for e in entries)
    async with site.http.get(site.base + "/alerts/cap.atom") as r:
        index = ET.fromstring(await r.read())
    hrefs = {
        link.get("href") for link in index.iter(f"{ATOM}link") if link.get("type") == "application/cap+xml"
    }
    # the withdrawn one is there as the Cancel its document now is; the others never were public
    assert hrefs == {f"http://alerts.test/alerts/{i}.cap.xml" for i in (shown, update, restricted)}
    async with site.http.get(site.base + f"/alerts/{update}.cap.xml") as r:
        assert r.content_type == "application/cap+xml"
        cap = ET.fromstring(await r.read())
    assert cap.tag == f"{CAP}alert"
    assert _children(cap) == [
        "identifier",
        "sender",
        "sent",
        "status",
        "msgType",
        "scope",
        "references",
        "info",
        "info",
    ]
    assert cap.findtext(f"{CAP}status") == "Actual" and cap.findtext(f"{CAP}msgType") == "Update"
    assert cap.findtext(f"{CAP}scope") == "Public"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00", cap.findtext(f"{CAP}sent") or "")
    sender, identifier, sent = (cap.findtext(f"{CAP}references") or "").split(",")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00", sent)
    assert (sender, identifier) == ("alerts.test", f"alerts.test-alert-{shown}")
    infos = cap.findall(f"{CAP}info")
    assert [i.findtext(f"{CAP}language") for i in infos] == ["en", "fr"]
    for info in infos:
        assert _children(info) == [
            "language",
            "category",
            "event",
            "urgency",
            "severity",
            "certainty",
            "senderName",
            "headline",
            "description",
            "web",
        ]
        assert "person0@example.org" not in (info.findtext(f"{CAP}description") or "")
    async with site.http.get(site.base + f"/alerts/{shown}.cap.xml") as r:
        original = ET.fromstring(await r.read())
    assert original.findtext(f"{CAP}msgType") == "Alert" and original.find(f"{CAP}references") is None


@pytest.fixture
async def proxied_site(db_url: str) -> AsyncIterator[Site]:
    """The web app behind a trusted reverse proxy on loopback (clients named by X-Forwarded-For)."""
    async with open_app(site_settings(db_url, trusted_proxies="127.0.0.1"), channels={}) as app:
        server = TestServer(make_web_app(app))
        await server.start_server()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            yield Site(app=app, base=str(server.make_url("")).rstrip("/"), http=http)
        await server.close()


async def _subscribers(site: Site) -> int:
    async with site.app.sessions() as session:
        return len((await session.scalars(select(Contact.id))).all())


async def test_subscribe_is_limited_per_client_address(proxied_site: Site) -> None:
    from alerts.web.public.pages import SUBSCRIBE_LIMIT, SUBSCRIBE_WINDOW

    site = proxied_site
    one, other = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7"}
    for i in range(SUBSCRIBE_LIMIT):
        status, _ = await site.call(
            "POST", "/subscribe", data={"email": f"s{i}@example.org", "language": "en"}, headers=one
        )
        assert status == 202
    before = await _subscribers(site)
    async with site.http.post(
        site.base + "/subscribe", data={"email": "late@example.org", "language": "en"}, headers=one
    ) as r:
        assert r.status == 429
        assert 0 < int(r.headers["Retry-After"]) <= SUBSCRIBE_WINDOW + 1
        assert "Too many requests" in await r.text()
        assert r.headers["Cache-Control"] == "no-store"
    assert await _subscribers(site) == before  # nothing recorded
    # another client behind the same proxy is not held up
    status, page = await site.call(
        "POST", "/subscribe", data={"email": "other@example.org", "language": "en"}, headers=other
    )
    assert status == 202 and "Check your inbox" in page


@pytest.fixture
def two_mails_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.web.public import pages as public

    monkeypatch.setattr(public, "CONFIRM_MAILS_PER_HOUR", 2, raising=False)


async def test_confirmation_mails_stop_at_the_hourly_cap(
    two_mails_an_hour: None, mail_site: tuple[Site, CaptureServer], caplog: pytest.LogCaptureFixture
) -> None:
    site, capture = mail_site
    for address in ("a@example.org", "b@example.org"):
        status, page = await site.call("POST", "/subscribe", data={"email": address, "language": "en"})
        assert status == 202 and "Check your inbox" in page
    # past the cap the subscriber is told honestly that nothing was sent, and when to retry
    async with site.http.post(
        site.base + "/subscribe", data={"email": "c@example.org", "language": "en"}
    ) as r:
        assert r.status == 429 and 0 < int(r.headers["Retry-After"]) <= 3601
        assert "could not send a confirmation" in await r.text()
    assert sorted(m.rcpt_tos for m in await _mails(capture, 2)) == [("a@example.org",), ("b@example.org",)]
    await asyncio.sleep(0.2)
    assert len(capture.messages()) == 2
    assert any("held back" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert "c@example.org" not in caplog.text
    async with site.app.sessions() as session:  # nothing recorded for the held-back address
        assert await session.scalar(select(Contact.id).where(Contact.email == "c@example.org")) is None


async def test_update_of_an_alert_whose_consent_was_withdrawn_does_not_name_it(site: Site) -> None:
    """An update stays public on its own consent, but no longer names its original (archive, Atom, CAP)."""
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 1, kind="public")
    root = await _public_alert(site)
    update = await _public_alert(site, parent_id=root)
    async with site.app.sessions() as session:
        title = await session.scalar(select(Alert.title).where(Alert.id == root))
    assert title
    status, page = await site.call("GET", f"/alerts/{update}")
    assert status == 200 and title in page and "This is an update to our alert" in page  # while public
    async with site.app.sessions.begin() as session:
        alert = await session.get(Alert, root)
        reviewer = await session.scalar(select(User).where(User.name == "rafael"))
        assert alert is not None and reviewer is not None
        await approval.record_consent(session, alert, user=reviewer, scope="restricted", now=utcnow())
    for lang in ("en", "fr"):
        status, page = await site.call("GET", f"/alerts/{update}?lang={lang}")
        assert status == 200 and title not in page and f"{root})" not in page
    assert "This is an update to our alert" not in page
    status, page = await site.call("GET", "/alerts")
    assert status == 200 and title not in page
    async with site.http.get(site.base + "/feed.atom") as r:
        feed = (await r.read()).decode()
    assert f"/alerts/{update}" in feed and title not in feed and f"/alerts/{root}<" not in feed
    async with site.http.get(site.base + f"/alerts/{update}.cap.xml") as r:
        assert r.status == 200
        cap = ET.fromstring(await r.read())
    text = ET.tostring(cap, encoding="unicode")
    assert title not in text and cap.find(f"{CAP}references") is None
    headlines = [i.findtext(f"{CAP}headline") for i in cap.findall(f"{CAP}info")]
    assert all(headlines) and not any(h and title in h for h in headlines), headlines


async def test_the_public_alert_page_reads_as_a_web_page(site: Site) -> None:
    """Issue 11: headline, date, the facts and demands as lists, clickable links, share links
    that load nothing from elsewhere, and its CAP and Atom links."""
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 1, kind="public")
    shown = await _public_alert(site)
    status, page = await site.call("GET", f"/alerts/{shown}")
    assert status == 200
    assert re.search(r"<h1>Urgent action: Lucía Marenco at risk in Calvera</h1>", page)
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\d">', page)
    assert "<h2>TAKE ACTION</h2>" in page
    lists = re.findall(r"<ul>(.*?)</ul>", page, re.S)
    items = [re.findall(r"<li>(.*?)</li>", ul, re.S) for ul in lists]
    assert ["8 March: she filed a complaint on behalf of 40 fishing families."] == items[0][:1]
    assert any("Release her unless she is promptly charged" in li for li in items[1])  # the demands
    assert '<a href="https://alerts.example.org/a/2025-017" rel="nofollow noopener">' in page
    assert '<a href="mailto:press@example.org">press@example.org</a>' in page
    assert '<footer class="sig">' in page
    share = re.search(r'<nav aria-label="Share this alert".*?</nav>', page, re.S)
    assert share is not None
    assert f"https://t.me/share/url?url=http%3A%2F%2Falerts.test%2Falerts%2F{shown}" in share.group(0)
    assert "<script" not in page and "<iframe" not in page and "<img" not in page  # nothing loaded
    assert f'<a href="/alerts/{shown}.cap.xml" type="application/cap+xml">CAP 1.2</a>' in page
    assert '<a href="/feed.atom" type="application/atom+xml">' in page


def test_article_text_is_escaped_before_links_are_made() -> None:
    from alerts.web.public.article import blocks, linkify

    hostile = 'See https://x.test/a?b=1&c="><script>alert(1)</script> and javascript:alert(1), mail a@b.org.'
    html = str(linkify(hostile))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://x.test/a?b=1&amp;c=" rel="nofollow noopener">' in html
    assert 'href="javascript' not in html
    assert '<a href="mailto:a@b.org">a@b.org</a>.' in html
    parsed = blocks("INTRO\nfirst line\n\n  - one\n  - two\nafter\n\n--\nSig line")
    assert [(b.kind, b.lines) for b in parsed] == [
        ("h2", ("INTRO",)),
        ("p", ("first line",)),
        ("ul", ("one", "two")),
        ("p", ("after",)),
        ("sig", ("Sig line",)),
    ]


async def test_the_archive_pages_by_publication_time_and_lists_withdrawals_latest_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Pages follow published_at (not the id), an offset skips; the CAP index's Cancel entries come
    newest withdrawal first."""
    from datetime import timedelta

    from sqlalchemy import update as set_rows

    from alerts.delivery import archive
    from alerts.delivery.messages import MessageBuilder
    from tests.delivery_cases import mark_sent, public_case, public_update, set_consent
    from tests.factories import RENDERER

    now = utcnow()
    first = (await public_case(sessions)).alert_id
    await mark_sent(sessions, first)
    later_id = await public_update(sessions, first)
    await mark_sent(sessions, later_id)
    async with sessions.begin() as session:
        await session.execute(
            set_rows(Alert).where(Alert.id == later_id).values(published_at=now - timedelta(hours=1))
        )
        await session.execute(set_rows(Alert).where(Alert.id == first).values(published_at=now))
        assert await archive.public_ids(session) == [first, later_id]
        assert await archive.public_ids(session, limit=1, offset=1) == [later_id]
        builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
        assert [a.id for a in await archive.public_alerts(session, builder, limit=1, offset=1)] == [later_id]
    await set_consent(sessions, later_id, "restricted", now=now + timedelta(minutes=1))
    await set_consent(sessions, first, "restricted", now=now + timedelta(minutes=2))
    async with sessions() as session:
        assert [w.id for w in await archive.withdrawn_alerts(session)] == [first, later_id]


async def test_the_archive_shows_at_most_a_page_of_the_newest_public_alerts(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """``limit`` bounds what a page (and the feeds) show: the newest alerts, the older left out."""
    from datetime import timedelta

    from sqlalchemy import update as set_rows

    from alerts.delivery import archive
    from alerts.delivery.messages import MessageBuilder
    from tests.delivery_cases import mark_sent, public_case, public_update
    from tests.factories import RENDERER

    now = utcnow()
    older = (await public_case(sessions)).alert_id
    await mark_sent(sessions, older)
    newer = await public_update(sessions, older)
    await mark_sent(sessions, newer)
    async with sessions.begin() as session:
        await session.execute(
            set_rows(Alert).where(Alert.id == older).values(published_at=now - timedelta(hours=1))
        )
        await session.execute(set_rows(Alert).where(Alert.id == newer).values(published_at=now))
        builder = MessageBuilder(RENDERER, public_url="http://alerts.test", domain="alerts.test")
        assert [a.id for a in await archive.public_alerts(session, builder)] == [newer, older]
        assert [a.id for a in await archive.public_alerts(session, builder, limit=1)] == [newer]
