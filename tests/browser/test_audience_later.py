"""Who an approved alert will reach, when counting them takes longer than the page waits (a
network of a million): the page comes at once, says it is counting, and its script fills in the
count from the count's own page, on a phone (390 px), with the real service.

Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from alerts.app import open_app
from alerts.service import run_service
from alerts.store.models import User
from alerts.web.ui import alerts as pages
from tests.browser.test_officer_flow import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    CONTACTS,
    free_port,
    pytestmark,
    seed,
    served,
    sign_in,
)
from tests.factories import approved_alert

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - CI installs it
    pass

__all__ = ["pytestmark"]


async def test_the_page_comes_before_the_count_and_the_count_fills_it_in_on_a_phone(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    settings = served(db_url, port)
    await seed(settings)
    async with open_app(settings, channels={}) as app, app.sessions.begin() as session:
        olga = await session.scalar(select(User).where(User.name == "olga"))
        rafael = await session.scalar(select(User).where(User.name == "rafael"))
        assert olga is not None and rafael is not None
        alert = await approved_alert(session, author=olga, reviewer=rafael, channels=("email",))
        other = await approved_alert(session, author=olga, reviewer=rafael, channels=("email",))
        third = await approved_alert(session, author=olga, reviewer=rafael, channels=("email",))
    monkeypatch.setattr(pages, "REACH_WAIT", 0)  # every count takes longer than the page waits
    stop, ready = asyncio.Event(), asyncio.Event()
    service = asyncio.create_task(run_service(settings, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 30)
    base = f"http://127.0.0.1:{port}"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                expect.set_options(timeout=15_000)
                context = await browser.new_context(viewport={"width": 390, "height": 844})
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await sign_in(page, base, "olga")
                await page.goto(f"{base}/office/alerts/{alert.id}")
                # filled in by the script: the placeholder is replaced by the count itself
                await expect(page.locator("[data-reach=deliveries]")).to_have_text(str(CONTACTS))
                await expect(page.locator("[data-reason=no_consent]")).to_contain_text("consent")
                await expect(page.locator("[data-audience]")).to_have_count(0)
                await expect(page.locator("#audience")).to_have_count(1)
                await page.screenshot(path=ARTIFACTS / "alert-count-later-phone.png", full_page=True)
                assert errors == []
                # without the script: the page says it is counting and links to the count (another
                # alert: the first one's count is kept a few seconds, and the page would show it)
                plain = await browser.new_context(
                    viewport={"width": 390, "height": 844}, java_script_enabled=False
                )
                page = await plain.new_page()
                await sign_in(page, base, "olga")
                await page.goto(f"{base}/office/alerts/{other.id}")
                await expect(page.locator("[data-counting]")).to_contain_text("Counting who it will reach")
                await page.screenshot(path=ARTIFACTS / "alert-counting-phone.png")
                await page.get_by_role("link", name="Open the count").click()
                await expect(page.locator("[data-reach=deliveries]")).to_have_text(str(CONTACTS))
                await page.screenshot(path=ARTIFACTS / "alert-count-page-phone.png", full_page=True)
                # the count's page failing (a restart, say): the page says so and keeps the link
                page = await context.new_page()
                await page.route("**/audience", lambda route: route.fulfill(status=500, body="oops"))
                await page.goto(f"{base}/office/alerts/{third.id}")
                counting = page.locator("[data-audience]")
                await expect(counting.locator("[data-counting]")).to_contain_text("Counting failed")
                await expect(counting).not_to_have_attribute("aria-busy", "true")
                await expect(counting.get_by_role("link", name="Open the count")).to_be_visible()
            finally:
                await browser.close()
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
