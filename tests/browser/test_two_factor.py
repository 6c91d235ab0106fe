"""Headless Chromium at phone size (390 px) enrols a reviewer in two-factor sign-in as a person
does — reads the key off the page, types the code an authenticator app would show — then signs
in again with a code. axe-core on the new pages: no serious or critical violation.
Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import time

import pyotp
import pytest

from tests.browser.test_axe import SERIOUS, Axe
from tests.browser.test_officer_flow import ARGS, ARTIFACTS, CHROMIUM, async_playwright, expect, pytestmark
from tests.web import PASSWORD, make_staff, running

__all__ = ["pytestmark"]
PHONE = {"width": 390, "height": 844}


def violations(result: object) -> list[str]:
    found = result.response["violations"]  # type: ignore[attr-defined]
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v.get("impact") in SERIOUS]


@pytest.mark.skipif(Axe is None, reason="needs axe-playwright-python (the test extra)")
async def test_enrol_and_sign_in_with_a_code_on_a_phone(db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    found: dict[str, list[str]] = {}
    async with running(db_url, require_2fa=True) as (_app, base):
        await make_staff(_app)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            axe = Axe()
            try:
                context = await browser.new_context(viewport=PHONE)
                page = await context.new_page()
                await page.goto(f"{base}/login")
                await page.get_by_label("User name").fill("reviewer")
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(f"{base}/office/account/2fa")  # require_2fa: enrol first
                await expect(page.locator("#twofa-qr svg")).to_be_visible()
                box = await page.locator("#twofa-qr svg").bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
                found["enrol"] = violations(await axe.run(page))
                await page.screenshot(path=ARTIFACTS / "two-factor-enrol-phone.png", full_page=True)

                secret = (await page.locator("#twofa-secret").inner_text()).replace(
                    " ", ""
                )  # shown in groups of 4
                await page.get_by_label("Then enter the 6-digit code the app shows").fill(
                    pyotp.TOTP(secret).now()
                )
                await page.get_by_role("button", name="Turn on two-factor sign-in").click()
                await expect(page.locator("#recovery-codes li")).to_have_count(10)
                found["codes"] = violations(await axe.run(page))
                await page.screenshot(path=ARTIFACTS / "two-factor-codes-phone.png", full_page=True)

                await page.get_by_role("button", name="Sign out").click()
                await page.wait_for_url(f"{base}/login")
                await page.get_by_label("User name").fill("reviewer")
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(f"{base}/login/2fa")
                found["code"] = violations(await axe.run(page))
                await page.screenshot(path=ARTIFACTS / "two-factor-sign-in-phone.png", full_page=True)
                # the next step's code: the one used to enrol is spent
                await page.get_by_label("The 6-digit code").fill(pyotp.TOTP(secret).at(time.time() + 30))
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(f"{base}/")
                await expect(page.locator(".who")).to_contain_text("reviewer")
                await context.close()
            finally:
                await browser.close()
    assert {where: v for where, v in found.items() if v} == {}
