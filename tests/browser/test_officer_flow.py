"""Headless Chromium drives the whole officer flow on the real service (web + dispatcher +
scheduler, as ``alerts serve`` runs them) with a local SMTP capture server: sign in, draft from a
template, preview, submit, a reviewer approves, send, watch the live counts reach the end.

Screenshots of the main pages go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from pathlib import Path

import pytest

from alerts.accounts import users
from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.service import run_service
from tests.factories import add_contacts

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PASSWORD = "correct horse battery"
CONTACTS = 25

try:
    from playwright.async_api import Dialog, async_playwright, expect
    from playwright.async_api import Error as PlaywrightError
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


def served(db_url: str, port: int) -> Settings:
    """The service's settings for a browser test: this database, the web on ``port``."""
    return (
        Settings()
        .replace("database", url=db_url)
        .replace(
            "server",
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            secret_key="browser-test-secret-0123456789",
        )
    )


async def seed(settings: Settings) -> None:
    async with open_app(settings, channels={}) as app, app.sessions.begin() as session:
        for name, role in (("olga", "officer"), ("rafael", "reviewer")):
            await users.create_user(
                session, name=name, role=role, password=PASSWORD, email=f"{name}@localhost", now=utcnow()
            )
        await add_contacts(session, CONTACTS)
        await add_contacts(session, 1, kind="public", start=100)  # left out: no consent to publicity


async def test_officer_flow(db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    async with CaptureServer() as capture:
        settings = served(db_url, port).replace("email", host="127.0.0.1", port=capture.port, pool_size=2)
        await seed(settings)
        stop, ready = asyncio.Event(), asyncio.Event()
        service = asyncio.create_task(
            run_service(settings, ready=ready, stop=stop, extras={"capture": capture})
        )
        await asyncio.wait_for(ready.wait(), 30)
        base = f"http://127.0.0.1:{port}"
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                try:
                    await run_flow(browser, base, capture)
                finally:
                    await browser.close()
        finally:
            stop.set()
            await asyncio.wait_for(service, 30)


async def sign_in(page, base: str, name: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def run_flow(browser, base: str, capture: CaptureServer) -> None:  # type: ignore[no-untyped-def]
    expect.set_options(timeout=15_000)
    officer_ctx = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = await officer_ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/login")
    await page.screenshot(path=ARTIFACTS / "login.png")
    await sign_in(page, base, "olga")

    # draft from the template's example, preview it, save
    await page.get_by_role("link", name="New alert").first.click()
    await page.get_by_label("urgent-appeals").check()
    await page.get_by_role("checkbox", name="Email", exact=True).check()
    await page.locator("[data-p=channel]").select_option("email")
    await expect(page.locator("[data-preview][data-ready]")).to_be_visible()
    await expect(page.locator("[data-p-subject]")).not_to_be_empty()
    await page.locator("[data-p=language]").select_option("fr")
    await expect(page.locator("[data-p-text]")).to_contain_text("Lucía Marenco")
    await expect(page.frame_locator("[data-p-html]").get_by_text("Mesdames, Messieurs,")).to_be_visible()
    # the case is written in the form: a name, and one more fact in French
    await page.locator('[name="c.defender"]').fill("Ana Ruiz")
    await page.locator("#t-facts-fr").click()  # the facts' French tab
    await page.locator('[name="c.facts.fr"]').last.fill("12 mars : transférée à Kessel.")
    await expect(page.locator('[name="c.facts.fr"]')).to_have_count(5)  # a new empty row appeared
    await expect(page.locator("[data-p-text]")).to_contain_text("Ana Ruiz")
    await page.screenshot(path=ARTIFACTS / "editor-phone.png", full_page=True)
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#notice")).to_have_text("Draft saved.")
    alert_url = page.url.split("?")[0]

    # who will receive it, and who is left out and why
    await expect(page.locator("[data-reach=deliveries]")).to_have_text(str(CONTACTS))
    await expect(page.locator("[data-reason=no_consent]")).to_contain_text("without the defender's consent")
    await page.screenshot(path=ARTIFACTS / "alert-draft-phone.png", full_page=True)

    # submit: the reviewer is told by email at once
    await page.get_by_role("button", name="Submit for review").click()
    await expect(page.locator("#status")).to_have_text("in review")
    assert any("rafael@localhost" in m.rcpt_tos for m in capture.messages())
    # the author sees no approve button, and the dashboard lists the alert
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    # a second person, the reviewer, approves
    reviewer_ctx = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    review = await reviewer_ctx.new_page()
    await sign_in(review, base, "rafael")
    await expect(review.get_by_role("heading", name="Waiting for your review (1)")).to_be_visible()
    await review.screenshot(path=ARTIFACTS / "dashboard-phone.png", full_page=True)
    await review.goto(alert_url)
    await review.screenshot(path=ARTIFACTS / "review-phone.png", full_page=True)
    await review.get_by_role("checkbox", name="en").check()  # each language is ticked, none by default
    await review.get_by_role("button", name="Approve the ticked languages").click()
    await expect(review.locator("#notice")).to_have_text("Approved.")
    await reviewer_ctx.close()

    # the officer sends and watches the live counts reach the end
    await page.goto(alert_url)
    page.once("dialog", _accept)
    await page.get_by_role("button", name="Send now").click()
    await expect(page.locator("#live[data-done]")).to_be_attached(timeout=30_000)
    await expect(page.locator('[data-cell="email:sent"]')).to_have_text(str(CONTACTS))
    await expect(page.locator("[data-live-state]")).to_have_text("all final")
    await page.screenshot(path=ARTIFACTS / "alert-sent.png", full_page=True)
    assert sum(1 for m in capture.messages() if m.rcpt_tos[0].startswith("person")) == CONTACTS

    # the progress bar and the status badge moved without a reload
    assert await page.locator("[data-progress]").evaluate("b => [b.value, b.max]") == [CONTACTS, CONTACTS]
    await expect(page.locator("#status")).to_have_text(re.compile("^(sending|sent)$"))

    await page.get_by_role("link", name="All deliveries").click()
    await page.locator("select[name=state]").select_option("sent")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#deliveries tbody tr")).to_have_count(CONTACTS)
    await page.screenshot(path=ARTIFACTS / "deliveries.png")
    await page.get_by_label("Name or organisation").fill("Person 7")
    await page.get_by_role("button", name="Find").click()
    await expect(page.locator("#deliveries tbody tr")).to_have_count(1)
    await expect(page.locator("#deliveries tbody tr")).to_contain_text("person7@example.org")
    await page.goto(f"{base}/")
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    await page.goto(f"{base}/office/contacts")
    await page.screenshot(path=ARTIFACTS / "contacts.png")
    await page.goto(f"{base}/office/mailbox")
    await expect(page.get_by_role("heading", name="Mailbox of the local capture server")).to_be_visible()
    await officer_ctx.close()
    assert errors == []


async def _accept(dialog: Dialog) -> None:
    """Say yes to the page's confirmation. Once, in a CI run at load 6, the accept reached
    Chromium after the dialog had gone ("No dialog is showing") and the error surfaced in the
    next assertion; whether the send went is what the lines after the click check."""
    with contextlib.suppress(PlaywrightError):
        await dialog.accept()
