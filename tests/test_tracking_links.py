"""Opt-in engagement tracking: off by default (no tracking URL in any byte sent); when on, a
per-recipient pixel and tracked links spliced into the shared body, recorded once, redirecting
only to the signed URL; forged tokens get 404 before the database is asked."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import random
import re
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import event, select

from alerts.app import App, open_app
from alerts.cli.capture import CaptureServer
from alerts.compose import approval, drafts
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.core.hrefs import is_trackable
from alerts.core.signing import TRACK, Signing
from alerts.delivery import tracking
from alerts.delivery.links import Tracked, TrackingLinks, TrackKind
from alerts.delivery.publish import publish
from alerts.service import make_dispatcher
from alerts.store.models import Delivery, DeliveryEvent
from alerts.web import make_web_app
from channels.mime import pixel_tag
from tests.factories import add_contacts, approved_alert, make_users

PUBLIC = "https://alerts.test"
SECRET = "tracking-test-secret-0123456789"
ACTION_URL = "https://alerts.example.org/a/2025-017"  # templates/urgent-appeal/example.toml
TRACKING_URL = re.compile(rb"/t/[oc]/")


@asynccontextmanager
async def sent(db_url: str, *, opens: bool = False, clicks: bool = False) -> AsyncIterator[Any]:
    """The real service parts: an alert to 2 contacts sent to a real SMTP capture server, and the web app."""
    async with CaptureServer() as capture:
        settings = (
            Settings()
            .replace("database", url=db_url)
            .replace("server", public_url=PUBLIC, secret_key=SECRET)
            .replace("email", host="127.0.0.1", port=capture.port, pool_size=2)
        )
        if opens or clicks:
            settings = settings.replace("tracking", opens=opens, clicks=clicks)
        async with open_app(settings) as app:
            async with app.sessions.begin() as session:  # public contacts get the form with the action link
                officer, reviewer = await make_users(session)
                await add_contacts(session, 2, kind="public")
                alert = await approved_alert(session, author=officer, reviewer=reviewer)
                await approval.record_consent(session, alert, user=officer, scope="public", now=utcnow())
                await publish(session, alert, now=utcnow())
                alert_id = alert.id
            await make_dispatcher(app).run_until_done(alert_id, timeout=10)
            srv = TestServer(make_web_app(app))
            await srv.start_server()
            try:
                async with aiohttp.ClientSession() as http:
                    yield app, alert_id, capture.messages(), str(srv.make_url("")).rstrip("/"), http
            finally:
                await srv.close()


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def html_of(raw: bytes) -> str:
    part = parsed(raw).get_body(("html",))
    assert part is not None
    return str(part.get_content())


def text_of(raw: bytes) -> str:
    part = parsed(raw).get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def shared_body(raw: bytes) -> bytes:
    return raw[raw.index(b"MIME-Version:") :]


async def events(app: App, kind: str) -> list[DeliveryEvent]:
    async with app.sessions() as session:
        return list((await session.scalars(select(DeliveryEvent).where(DeliveryEvent.type == kind))).all())


async def test_default_off_no_tracking_url_in_any_byte_sent(db_url: str) -> None:
    async with sent(db_url) as (app, alert_id, messages, _, _):
        assert len(messages) == 2
        for m in messages:
            assert TRACKING_URL.search(m.raw) is None
            assert f'href="{ACTION_URL}"' in html_of(m.raw)
            assert "<img" not in html_of(m.raw)
        # nothing per recipient below the headers: one shared body, byte for byte
        assert shared_body(messages[0].raw) == shared_body(messages[1].raw)
        async with app.sessions() as session:
            doc = await tracking.stats(session, await drafts.get_alert(session, alert_id))
        assert doc["engagement"] == {} and doc["channels"]["email"]["sent"] == 2


async def test_opens_on_pixel_per_recipient_recorded_once(db_url: str) -> None:
    async with sent(db_url, opens=True) as (app, alert_id, messages, base, http):
        pixels = []
        for m in messages:
            html = html_of(m.raw)
            found = re.findall(rf'<img src="({re.escape(PUBLIC)}/t/o/[^"]+\.gif)"', html)
            assert len(found) == 1
            assert pixel_tag(found[0]) + "</body>" in html  # just before </body>
            assert f'href="{ACTION_URL}"' in html  # clicks are off: links untouched
            assert "/t/" not in text_of(m.raw)
            pixels.append(found[0])
        assert pixels[0] != pixels[1]
        links = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
        opened = links.read(pixels[0].rsplit("/", 1)[1].removesuffix(".gif"), TrackKind.OPEN)
        assert opened is not None
        for _ in range(2):  # fetched twice (two mail clients): one event
            async with http.get(base + pixels[0].removeprefix(PUBLIC)) as r:
                assert r.status == 200 and r.content_type == "image/gif"
                assert (await r.read()).startswith(b"GIF89a")
                assert "no-store" in r.headers["Cache-Control"]
        recorded = await events(app, "opened")
        assert [e.delivery_id for e in recorded] == [opened.delivery_id]
        async with app.sessions() as session:
            delivery = await session.get(Delivery, opened.delivery_id)
            assert delivery is not None and delivery.state == "sent"  # engagement leaves the state alone
            doc = await tracking.stats(session, await drafts.get_alert(session, alert_id))
        assert doc["engagement"] == {"email": {"opened": 1, "clicked": 0}}
        assert doc["channels"]["email"]["sent"] == 2 and "engagement" not in doc["channels"]


async def test_click_redirects_only_to_the_bound_url(db_url: str) -> None:
    async with sent(db_url, clicks=True) as (app, alert_id, messages, base, http):
        html = html_of(messages[0].raw)
        tracked = re.findall(rf'href="({re.escape(PUBLIC)}/t/c/[^"]+)"', html)
        assert len(tracked) == 1 and ACTION_URL not in html and "<img" not in html
        assert ACTION_URL in text_of(messages[0].raw)  # the text part shows the real address
        path = tracked[0].removeprefix(PUBLIC)
        for query in ("", "?url=https://evil.example/", "?next=//evil.example"):
            async with http.get(base + path + query, allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == ACTION_URL
        assert len(await events(app, "clicked")) == 1
        # the same token with another URL in its payload: the signature no longer matches
        payload, mac = path.rsplit("/", 1)[1].split(".")
        kind, delivery, _url = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        evil_payload = json.dumps([kind, delivery, "https://evil.example/"], separators=(",", ":"))
        evil = base64.urlsafe_b64encode(evil_payload.encode()).rstrip(b"=").decode()
        async with http.get(f"{base}/t/c/{evil}.{mac}", allow_redirects=False) as r:
            assert r.status == 404 and "Location" not in r.headers
            assert "This link is not valid or has expired." in await r.text()
        async with app.sessions() as session:
            doc = await tracking.stats(session, await drafts.get_alert(session, alert_id))
        assert doc["engagement"] == {"email": {"opened": 0, "clicked": 1}}


async def test_forged_and_garbled_tokens_404_without_touching_the_database(db_url: str) -> None:
    async with sent(db_url, opens=True, clicks=True) as (app, _, _, base, http):
        statements: list[str] = []
        event.listen(app.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        other = TrackingLinks(Signing("another-secret"), public_url=PUBLIC)
        ours = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
        forged = [
            f"/t/o/{other.token(TrackKind.OPEN, 1)}.gif",
            f"/t/c/{other.token(TrackKind.CLICK, 1, 'https://evil.example/')}",
            f"/t/c/{ours.token(TrackKind.OPEN, 1)}",  # an open token is no click token
            f"/t/o/{ours.token(TrackKind.CLICK, 1, ACTION_URL)}.gif",
            "/t/o/garbled.gif",
            "/t/o/%00%ff.gif",
            "/t/c/not-a-token",
            "/t/c/....",
            "/t/c/" + "A" * 5000 + ".x",
        ]
        for path in forged:
            async with http.get(base + path, allow_redirects=False) as r:
                # a NUL in the path is refused at the edge (400, as for every path), the rest 404
                assert r.status == (400 if "%00" in path else 404), path
                assert "Location" not in r.headers
        assert statements == []
        assert await events(app, "opened") == [] and await events(app, "clicked") == []


def test_tokens_bind_kind_delivery_and_url() -> None:
    links = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
    token = links.token(TrackKind.CLICK, 42, "https://example.org/a?b=1&c=d:e")
    found = links.read(token, TrackKind.CLICK)
    assert found is not None and found.delivery_id == 42 and found.url == "https://example.org/a?b=1&c=d:e"
    assert links.read(token[:-1] + ("A" if token[-1] != "A" else "B"), TrackKind.CLICK) is None
    assert links.read(token, TrackKind.OPEN) is None
    for url in (
        "javascript:alert(1)",
        "//evil.example",
        "data:text/html,x",
        "https://a b",
        "https://é.example",
    ):
        assert not is_trackable(url)


def test_an_old_format_token_is_read_only_in_its_one_canonical_encoding() -> None:
    """Tokens signed before itsdangerous still work (payload ending in an "X" when encoded);
    the same payload with base64's unused low bits set is refused, valid MAC or not."""
    signing = Signing(SECRET)
    links = TrackingLinks(signing, public_url=PUBLIC)

    def old(payload: bytes, encoded: str | None = None) -> str:
        mac = signing.legacy_macs(b"alerts.track:", payload)[0]
        return f"{encoded or base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.{mac}"

    click = b"c:42:https://example.org/aW"
    assert old(click).split(".")[0].endswith("X")
    found = links.read(old(click), TrackKind.CLICK)
    assert found is not None and (found.delivery_id, found.url) == (42, "https://example.org/aW")
    pixel = b"o:7:"  # four bytes: the last character carries four unused bits
    canonical = base64.urlsafe_b64encode(pixel).rstrip(b"=").decode()
    assert links.read(old(pixel), TrackKind.OPEN) is not None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    loose = canonical[:-1] + alphabet[alphabet.index(canonical[-1]) + 1]
    assert base64.urlsafe_b64decode(loose + "==") == pixel
    assert links.read(old(pixel, loose), TrackKind.OPEN) is None


async def test_a_press_release_carries_the_alerts_files_and_is_never_tracked(
    sessions: Any, tmp_path: Any
) -> None:
    """Tracking on: the email form gets its pixel and tracked links, the press release (sent by
    email too, to journalists) gets neither, and only it carries the alert's files."""
    from alerts.compose.attachments import attach
    from alerts.delivery.messages import Claimed, MessageBuilder
    from alerts.delivery.publish import load_alert_info
    from tests.factories import RENDERER

    pdf = tmp_path / "statement.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    async with sessions.begin() as session:
        officer, reviewer = await make_users(session)
        alert = await approved_alert(session, author=officer, reviewer=reviewer)
        await attach(session, alert, [pdf], now=utcnow())
    async with sessions() as session:
        info = await load_alert_info(session, alert.id)
    assert [a.filename for a in info.attachments] == ["statement.pdf"]
    links = TrackingLinks(Signing(SECRET), public_url=PUBLIC, opens=True, clicks=True)
    builder = MessageBuilder(RENDERER, public_url=PUBLIC, domain="alerts.test", tracking=links)

    def claimed(channel: str, audience: str) -> Claimed:
        return Claimed(
            id=5,
            alert_id=alert.id,
            contact_id=3,
            channel=channel,
            audience=audience,
            language="en",
            address="desk@paper.test",
            attempts=1,
            unknown_outcomes=0,
            from_state="queued",
        )

    press = builder.build(claimed("press", "press"), info)
    assert press.attachments == info.attachments and press.extra == {}
    email = builder.build(claimed("email", "public"), info)
    assert email.attachments == () and "pixel_url" in email.extra and email.extra["link_urls"]


def test_a_click_token_is_only_made_for_an_http_link() -> None:
    links = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
    for url in ("", "mailto:a@example.org", "javascript:alert(1)"):
        try:
            links.token(TrackKind.CLICK, 1, url)
        except ValueError as refused:
            assert str(refused) == "a tracked link needs an http(s) URL"
        else:
            raise AssertionError(f"a click token for {url!r}")
    assert links.read(links.token(TrackKind.OPEN, 1), TrackKind.OPEN) == Tracked(
        kind=TrackKind.OPEN, delivery_id=1
    )


def test_a_signed_token_names_one_delivery_of_its_kind_or_nothing() -> None:
    """What a token may name, signed with our own key: only [kind, id, url] of its kind, an id
    from 1 to 10**18 - 1 that is a number (not a flag or text), a URL that is text (an http(s)
    one for a click)."""
    links = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
    signed = Signing(SECRET).serializer(TRACK).dumps
    read = [
        (["o", 1, ""], TrackKind.OPEN, Tracked(kind=TrackKind.OPEN, delivery_id=1)),
        (["o", 10**18 - 1, ""], TrackKind.OPEN, Tracked(kind=TrackKind.OPEN, delivery_id=10**18 - 1)),
        (["c", 5, ACTION_URL], TrackKind.CLICK, Tracked(kind=TrackKind.CLICK, delivery_id=5, url=ACTION_URL)),
    ]
    for value, kind, expected in read:
        assert links.read(signed(value), kind) == expected, value
    refused: list[tuple[object, TrackKind]] = [
        (["o", 0, ""], TrackKind.OPEN),
        (["o", -3, ""], TrackKind.OPEN),
        (["o", 10**18, ""], TrackKind.OPEN),
        (["o", True, ""], TrackKind.OPEN),
        (["o", "7", ""], TrackKind.OPEN),
        (["o", 7.0, ""], TrackKind.OPEN),
        (["o", 7, None], TrackKind.OPEN),
        (["o", 7], TrackKind.OPEN),
        (["o", 7, "", ""], TrackKind.OPEN),
        ({"o": 7}, TrackKind.OPEN),
        ("o:7:", TrackKind.OPEN),
        (["c", 7, ACTION_URL], TrackKind.OPEN),
        (["o", 7, ""], TrackKind.CLICK),
        (["c", 7, "javascript:alert(1)"], TrackKind.CLICK),
        (["c", 7, ""], TrackKind.CLICK),
    ]
    for value, kind in refused:
        assert links.read(signed(value), kind) is None, value


def test_a_token_longer_than_8192_characters_is_refused_unread() -> None:
    links = TrackingLinks(Signing(SECRET), public_url=PUBLIC)
    signed = Signing(SECRET).serializer(TRACK).dumps
    rng = random.Random(8192)  # letters and digits zlib cannot shrink much: the length grows by one or two
    filler = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(9000))
    by_length = {len(signed(["o", 3, filler[:n]])): filler[:n] for n in range(7950, 8200)}
    longest = by_length[8192]
    assert links.read(signed(["o", 3, longest]), TrackKind.OPEN) == Tracked(
        kind=TrackKind.OPEN, delivery_id=3, url=longest
    )
    assert links.read(signed(["o", 3, by_length[8193]]), TrackKind.OPEN) is None


def test_an_old_format_token_names_a_delivery_number_of_at_most_18_digits() -> None:
    signing = Signing("a-new-secret-0123456789", old_keys=[SECRET])  # signed under a key since rotated
    links = TrackingLinks(signing, public_url=PUBLIC)

    def old(payload: bytes, mac: str | None = None) -> str:
        encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        return f"{encoded}.{mac or signing.legacy_macs(b'alerts.track:', payload)[0]}"

    assert links.read(old(b"o:7:"), TrackKind.OPEN) == Tracked(kind=TrackKind.OPEN, delivery_id=7)
    assert links.read(old(b"o:999999999999999999:"), TrackKind.OPEN) == Tracked(
        kind=TrackKind.OPEN, delivery_id=10**18 - 1
    )
    for payload in (b"o:0999999999999999999:", b"o:0:", b"o::", b"o:-7:", b"o:7x:", b"o"):
        assert links.read(old(payload), TrackKind.OPEN) is None, payload
    assert links.read("A." + "A" * 43, TrackKind.OPEN) is None  # one base64 character: no bytes at all
    unsigned = base64.urlsafe_b64encode(b"o:7:").rstrip(b"=").decode()
    for token in (
        unsigned,
        unsigned + ".",
        old(b"o:7:", "A" * 43),
        old(b"o:7:") + "=",
        old(b"o:8:", None)[:-1] + ".",
    ):
        assert links.read(token, TrackKind.OPEN) is None, token


def test_a_deliverys_pixel_and_links_are_tracked_only_as_switched_on() -> None:
    html = (
        f'<p><a href="{ACTION_URL}">act</a> <a href="https://example.org/b?x=1&amp;y=2">b</a>'
        f' <a href="{ACTION_URL}">again</a> <a href="mailto:a@example.org">write</a></p>'
        + "".join(f'<a href="https://example.org/{n}">{n}</a>' for n in (5, 3, 4, 1, 2))
    )
    signing = Signing(SECRET)
    assert TrackingLinks(signing, public_url=PUBLIC + "/", opens=True, clicks=True).extra(9, None) == {}
    assert TrackingLinks(signing, public_url=PUBLIC).extra(9, html) == {}
    reader = TrackingLinks(signing, public_url=PUBLIC)
    opens = TrackingLinks(signing, public_url=PUBLIC + "/", opens=True).extra(9, html)
    assert list(opens) == ["pixel_url"]
    pixel = str(opens["pixel_url"])
    assert pixel.startswith(PUBLIC + "/t/o/") and pixel.endswith(".gif")
    assert reader.read(pixel.removeprefix(PUBLIC + "/t/o/").removesuffix(".gif"), TrackKind.OPEN) == Tracked(
        kind=TrackKind.OPEN, delivery_id=9
    )
    clicks = TrackingLinks(signing, public_url=PUBLIC + "/", clicks=True).extra(9, html)
    assert list(clicks) == ["link_urls"]
    tracked = clicks["link_urls"]
    assert isinstance(tracked, dict)
    assert list(tracked) == [  # in order, each once
        ACTION_URL,
        *(f"https://example.org/{n}" for n in (1, 2, 3, 4, 5)),
        "https://example.org/b?x=1&y=2",
    ]
    for url, click in tracked.items():
        assert click.startswith(PUBLIC + "/t/c/")
        assert reader.read(click.removeprefix(PUBLIC + "/t/c/"), TrackKind.CLICK) == Tracked(
            kind=TrackKind.CLICK, delivery_id=9, url=url
        )
    assert TrackingLinks(signing, public_url=PUBLIC, clicks=True).extra(9, "<p>no link</p>") == {}
    both = TrackingLinks(signing, public_url=PUBLIC, opens=True, clicks=True).extra(9, html)
    assert sorted(both) == ["link_urls", "pixel_url"]
