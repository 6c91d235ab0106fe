"""Headless Chromium drives a subscriber's self-service on the real service (web + dispatcher,
as ``alerts serve`` runs them) with a local SMTP capture server: subscribe, open the link of
the confirmation mail, confirm; receive an alert; follow its List-Unsubscribe link and
unsubscribe on the page. The database is checked at each step.

Screenshots of each page go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.app import open_app
from alerts.cli.capture import CapturedMessage, CaptureServer
from alerts.compose import approval
from alerts.contacts.suppressions import address_key, hashed_key
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.delivery.publish import publish
from alerts.service import run_service
from alerts.store.models import Contact, Suppression
from tests.factories import approved_alert, make_users

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ADDRESS = "ana.subscriber@example.org"

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - CI installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    async_playwright is None or not os.path.exists(CHROMIUM),
    reason=f"needs the playwright package and Debian's chromium at {CHROMIUM} (.ci/run installs both)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def mail_to(capture: CaptureServer, address: str, count: int) -> CapturedMessage:
    """The ``count``-th message to ``address`` (waiting up to 20 s for it)."""
    for _ in range(400):
        mine = [m for m in capture.messages() if address in m.rcpt_tos]
        if len(mine) >= count:
            return mine[count - 1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message {count} to {address}")


def text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def contact(settings: Settings) -> Contact:
    async with open_app(settings, channels={}) as app, app.sessions() as session:
        found = await session.scalar(select(Contact).where(Contact.email_key == ADDRESS))
        assert found is not None
        return found


async def test_subscribe_confirm_unsubscribe(db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with CaptureServer() as capture:
        settings = (
            Settings()
            .replace("database", url=db_url)
            .replace("server", port=port, public_url=base, secret_key="browser-test-secret-0123456789")
            .replace("email", host="127.0.0.1", port=capture.port, pool_size=2)
        )
        stop, ready = asyncio.Event(), asyncio.Event()
        service = asyncio.create_task(
            run_service(settings, ready=ready, stop=stop, extras={"capture": capture})
        )
        await asyncio.wait_for(ready.wait(), 30)
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                try:
                    await run_flow(browser, base, capture, settings)
                finally:
                    await browser.close()
        finally:
            stop.set()
            await asyncio.wait_for(service, 30)


async def run_flow(browser, base: str, capture: CaptureServer, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    expect.set_options(timeout=15_000)
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # subscribe: email + language
    await page.goto(f"{base}/subscribe")
    await expect(page.get_by_role("heading", name="Subscribe to urgent alerts")).to_be_visible()
    await page.get_by_label("Email address").fill(ADDRESS)
    await page.get_by_label("Language of the alerts").select_option("fr")
    await page.screenshot(path=ARTIFACTS / "subscriber-subscribe.png", full_page=True)
    await page.get_by_role("button", name="Subscribe").click()
    await expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "subscriber-check-inbox.png", full_page=True)
    pending = await contact(settings)
    assert (pending.status, pending.language) == ("pending", "fr")

    # the confirmation mail (in French), its link, the page's button
    confirmation = await mail_to(capture, ADDRESS, 1)
    assert confirmation.subject == "Confirmez votre abonnement aux alertes urgentes"
    found = re.search(rf"{re.escape(base)}/subscribe/confirm/\S+", text_of(confirmation.raw))
    assert found is not None
    await page.goto(found.group(0))
    await expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "subscriber-confirm.png", full_page=True)
    assert (await contact(settings)).status == "pending"  # opening the link alone changes nothing
    await page.get_by_role("button", name="Confirm my subscription").click()
    await expect(page.get_by_role("heading", name="Subscribed")).to_be_visible()
    await expect(page.get_by_text("Your subscription is confirmed.")).to_be_visible()
    await expect(page.get_by_role("link", name=f"{base}/preferences/")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "subscriber-confirmed.png", full_page=True)
    assert (await contact(settings)).status == "active"

    # an alert to the public reaches the new subscriber, with a List-Unsubscribe link
    async with open_app(settings, channels={}) as app, app.sessions.begin() as session:
        officer, reviewer = await make_users(session)
        alert = await approved_alert(
            session, author=officer, reviewer=reviewer, lists=(), kinds=("public",), languages=("fr",)
        )
        await approval.record_consent(session, alert, user=officer, scope="public", now=utcnow())
        await publish(session, alert, now=utcnow())
    sent = await mail_to(capture, ADDRESS, 2)
    header = re.search(r"^List-Unsubscribe: <([^>]+)>", sent.raw.decode("ascii"), re.MULTILINE)
    assert header is not None and header.group(1).startswith(f"{base}/unsubscribe/")

    # the unsubscribe page: a GET changes nothing, the button unsubscribes
    await page.goto(header.group(1))
    await expect(page.get_by_role("heading", name="Unsubscribe")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "subscriber-unsubscribe.png", full_page=True)
    assert (await contact(settings)).status == "active"
    await page.get_by_role("button", name="Unsubscribe").click()
    await expect(page.get_by_role("heading", name="Unsubscribed")).to_be_visible()
    await page.screenshot(path=ARTIFACTS / "subscriber-unsubscribed.png", full_page=True)
    gone = await contact(settings)
    assert gone.status == "unsubscribed"
    async with open_app(settings, channels={}) as app, app.sessions() as session:
        keys = (address_key("email", ADDRESS), hashed_key("email", ADDRESS))
        rows = (await session.scalars(select(Suppression).where(Suppression.address_key.in_(keys)))).all()
    assert [(r.channel, r.reason) for r in rows] == [("email", "unsubscribed")]
    await ctx.close()
    assert errors == []
