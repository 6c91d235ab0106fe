"""The case form's translatable fields as tabs, on a phone (390 px): the officer switches to
French with the mouse and the arrow keys, writes French with the English text shown above it
(kept up to date with the English being written), saves, and the case holds both.

Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from alerts.app import open_app
from alerts.service import run_service
from alerts.store.models import AlertVersion
from tests.browser.test_officer_flow import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    free_port,
    pytestmark,
    seed,
    served,
    sign_in,
)

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - CI installs it
    pass

__all__ = ["pytestmark"]


async def test_an_officer_writes_french_in_its_tab_with_the_english_beside_on_a_phone(db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    settings = served(db_url, port)
    await seed(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    service = asyncio.create_task(run_service(settings, ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 30)
    base = f"http://127.0.0.1:{port}"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                alert_url = await write_in_tabs(browser, base)
            finally:
                await browser.close()
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
    alert_id = int(alert_url.rstrip("/").split("/")[-1])
    async with open_app(settings, channels={}) as app, app.sessions() as session:
        version = await session.scalar(
            select(AlertVersion).where(AlertVersion.alert_id == alert_id).order_by(AlertVersion.number.desc())
        )
    assert version is not None
    summary = version.case_data["summary"]
    assert summary["en"] == "Ana Ruiz was detained in Kessel."
    assert summary["fr"] == "Ana Ruiz a été arrêtée à Kessel."
    assert summary["es"].startswith("Lucía Marenco fue detenida")  # the example's, untouched


async def write_in_tabs(browser, base: str) -> str:  # type: ignore[no-untyped-def]
    expect.set_options(timeout=15_000)
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, base, "olga")
    await page.goto(f"{base}/office/alerts/new?family=urgent-appeal")
    summary = page.locator('[data-var="summary"]')
    tabs = summary.get_by_role("tab")
    await expect(tabs).to_have_text(["English", "Spanish", "French"])
    await expect(summary.get_by_role("tab", name="English")).to_have_attribute("aria-selected", "true")
    # only the selected language shows; the others are one tab away
    await expect(page.locator("#c-summary-en")).to_be_visible()
    await expect(page.locator("#c-summary-fr")).to_be_hidden()
    await page.locator("#c-summary-en").fill("Ana Ruiz was detained in Kessel.")

    # the arrow keys move between the tabs (and wrap around)
    await summary.get_by_role("tab", name="English").focus()
    await page.keyboard.press("ArrowLeft")
    await expect(summary.get_by_role("tab", name="French")).to_be_focused()
    await expect(summary.get_by_role("tab", name="French")).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#c-summary-en")).to_be_hidden()
    await page.keyboard.press("ArrowLeft")
    await expect(summary.get_by_role("tab", name="Spanish")).to_have_attribute("aria-selected", "true")
    await page.keyboard.press("ArrowRight")

    # French, with the English just written shown above it, read-only
    french = page.locator("#p-summary-fr")
    await expect(french.locator("[data-en-ref]")).to_have_text("Ana Ruiz was detained in Kessel.")
    await expect(french.locator("[data-en-ref]")).to_be_visible()
    ref_box = await french.locator("[data-en-ref]").bounding_box()
    field = page.locator("#c-summary-fr")
    await field.fill("Ana Ruiz a été arrêtée à Kessel.")
    field_box = await field.bounding_box()
    assert ref_box is not None and field_box is not None
    assert ref_box["y"] + ref_box["height"] <= field_box["y"]  # above it on a phone
    assert field_box["x"] + field_box["width"] <= 390  # nothing runs off the screen
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.locator("#case-form").get_by_role("tablist").first.scroll_into_view_if_needed()
    await page.locator('[data-var="summary"]').screenshot(path=ARTIFACTS / "case-tabs-phone.png")

    # a list's tabs: the English facts above the French ones
    await page.locator("#t-facts-fr").click()
    await expect(page.locator("#p-facts-fr ol.en-ref li").first).to_contain_text(
        "8 March: she filed a complaint"
    )
    await page.locator('[data-var="facts"]').screenshot(path=ARTIFACTS / "case-tabs-list-phone.png")

    # an authority's title and form of address: one set of tabs for the row
    await page.locator("#t-authorities-0-fr").click()
    row = page.locator('[data-var="authorities"] [data-row="0"]')
    await expect(row.locator("#c-authorities-0-title-fr")).to_be_visible()
    await expect(
        row.locator('#p-authorities-0-fr [data-en-ref="c.authorities.0.title.en"]')
    ).not_to_be_empty()
    await row.screenshot(path=ARTIFACTS / "case-tabs-authority-phone.png")

    # on a laptop the English stands beside the language being written
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.locator("#t-summary-fr").click()
    ref_box = await page.locator("#p-summary-fr [data-en-ref]").bounding_box()
    field_box = await page.locator("#c-summary-fr").bounding_box()
    assert ref_box is not None and field_box is not None
    assert ref_box["x"] + ref_box["width"] <= field_box["x"] and abs(ref_box["y"] - field_box["y"]) < 40
    await page.locator('[data-var="summary"]').screenshot(path=ARTIFACTS / "case-tabs-desktop.png")
    await page.set_viewport_size({"width": 390, "height": 844})

    await page.get_by_label("urgent-appeals").check()
    await page.get_by_role("checkbox", name="Email", exact=True).check()
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#notice")).to_have_text("Draft saved.")
    url: str = page.url.split("?")[0]
    await context.close()
    assert errors == []
    return url
