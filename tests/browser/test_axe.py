"""axe-core (the axe-playwright-python package carries it) in headless Chromium on every page,
officers' and public, at a desktop and a phone size: no serious or critical violation.

The service runs as ``alerts serve`` does, on the demo's data (``alerts.cli.demo.seed``: users,
contacts and a public alert, sent) plus a draft and an alert in review. Screenshots of each
page at both sizes go to tests/artifacts/axe/ (git-ignored)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alerts.accounts import users
from alerts.actions import alerts as alert_actions
from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.cli.demo import LOGINS, seed
from alerts.compose import drafts
from alerts.core.config import Settings
from alerts.service import make_dispatcher, run_service
from tests.browser.test_officer_flow import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    async_playwright,
    free_port,
    pytestmark,
    served,
)

try:
    from axe_playwright_python.async_playwright import Axe
except ImportError:  # pragma: no cover - the test extra installs it
    Axe = None

__all__ = ["pytestmark"]
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
SERIOUS = ("serious", "critical")


async def alerts_in_each_state(settings: Settings, sent: int) -> dict[str, int]:
    """A draft and an alert in review beside the demo's sent alert."""
    async with open_app(settings, channels={}) as app:
        async with app.sessions() as session:
            officer = await users.get_user(session, LOGINS["officer"][0])
        case = app.renderer.example("urgent-appeal")
        audience = drafts.Audience(lists=("urgent-appeals",), channels=("email",), languages=("en", "fr"))
        draft = await alert_actions.create(
            app, officer, family="urgent-appeal", case_data=case, audience=audience
        )
        review = await alert_actions.create(
            app, officer, family="urgent-appeal", case_data=case, audience=audience
        )
        await alert_actions.submit(app, officer, review.alert_id)
    return {"sent": sent, "draft": draft.alert_id, "review": review.alert_id}


def pages(ids: dict[str, int]) -> list[str]:
    office = "/office"
    return [
        "/",
        f"{office}/alerts/new",
        f"{office}/alerts/{ids['draft']}",
        f"{office}/alerts/{ids['draft']}/edit",
        f"{office}/alerts/{ids['review']}",
        f"{office}/alerts/{ids['sent']}",
        f"{office}/alerts/{ids['sent']}/deliveries",
        f"{office}/contacts",
        f"{office}/contacts/new",
        f"{office}/contacts/1",
        f"{office}/contacts/import",
        f"{office}/followups",
        f"{office}/audit",
        f"{office}/users",
        f"{office}/password",  # my account: language, password, sessions
        f"{office}/account/2fa",
        f"{office}/mailbox",
        f"{office}/mailbox/1",
    ]


PUBLIC = ["/login", "/subscribe", "/alerts", "/alerts/{sent}", "/alerts/{sent}?lang=fr"]


def serious(result: Any) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result.response["violations"]
        if v.get("impact") in SERIOUS
    ]


@pytest.mark.skipif(Axe is None, reason="needs axe-playwright-python (the test extra)")
async def test_no_serious_accessibility_violation_on_any_page_at_either_size(db_url: str) -> None:
    out = ARTIFACTS / "axe"
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    async with CaptureServer() as capture:
        settings = served(db_url, port).replace("email", host="127.0.0.1", port=capture.port, security="none")
        sent = await seed(settings)
        assert sent is not None
        ids = await alerts_in_each_state(settings, sent)
        stop, ready = asyncio.Event(), asyncio.Event()
        service = asyncio.create_task(
            run_service(settings, ready=ready, stop=stop, extras={"capture": capture})
        )
        await asyncio.wait_for(ready.wait(), 30)
        async with open_app(settings) as app:
            await make_dispatcher(app).run_until_done(sent, timeout=60)
        base = f"http://127.0.0.1:{port}"
        found: dict[str, list[str]] = {}
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                axe = Axe()
                try:
                    for size, (width, height) in SIZES.items():
                        context = await browser.new_context(viewport={"width": width, "height": height})
                        page = await context.new_page()
                        for path in [p.format(**ids) for p in PUBLIC]:
                            await page.goto(base + path)
                            found[f"{size} {path}"] = serious(await axe.run(page))
                        name, password = LOGINS["admin"]
                        await page.goto(f"{base}/login")
                        await page.get_by_label("User name").fill(name)
                        await page.get_by_label("Password").fill(password)
                        await page.get_by_role("button", name="Sign in").click()
                        await page.wait_for_url(f"{base}/")
                        for path in pages(ids):
                            response = await page.goto(base + path)
                            assert response is not None and response.status == 200, (path, size)
                            found[f"{size} {path}"] = serious(await axe.run(page))
                            shot = path.strip("/").replace("/", "_").replace("?", "_") or "dashboard"
                            await page.screenshot(path=out / f"{size}-{shot}.png", full_page=True)
                        await context.close()
                finally:
                    await browser.close()
        finally:
            stop.set()
            await asyncio.wait_for(service, 30)
    problems = {where: v for where, v in found.items() if v}
    assert len(found) == 2 * (len(PUBLIC) + len(pages(ids)))
    assert problems == {}, "\n".join(f"{where}: {v}" for where, vs in problems.items() for v in vs)
