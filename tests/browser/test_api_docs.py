"""Headless Chromium reads the API reference at /api/docs: Swagger UI (served from the
swagger-ui-bundle package on this host) renders every operation of the OpenAPI document, with
no script error, no refusal by the page's Content-Security-Policy, and no request off the host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from alerts.app import open_app
from alerts.web import make_web_app
from alerts.web.api.table import all_routes
from tests.browser.test_subscriber_flow import ARGS, CHROMIUM, async_playwright, expect
from tests.web.conftest import site_settings

pytestmark = pytest.mark.skipif(
    async_playwright is None,
    reason=f"needs the playwright package and Debian's chromium at {CHROMIUM} (.ci/run installs both)",
)


async def test_the_api_reference_renders_every_operation_from_this_host_only(db_url: str) -> None:
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    async with open_app(site_settings(db_url), channels={}) as app:
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        requests: list[str] = []
        problems: list[str] = []
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                try:
                    context = await browser.new_context()
                    context.on("request", lambda r: requests.append(r.url))

                    async def off_host(route):  # type: ignore[no-untyped-def]
                        await route.abort()  # recorded above; never let it leave

                    await context.route(lambda url: not url.startswith(base), off_host)
                    page = await context.new_page()
                    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
                    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                    response = await page.goto(f"{base}/api/docs")
                    assert response is not None and response.status == 200
                    operations = page.locator(".opblock")
                    await expect(operations).to_have_count(len(all_routes()), timeout=30_000)
                    await expect(page.locator(".info .title")).to_contain_text("Urgent Alerts API")
                    create = page.locator("#operations-alerts-post_alerts")
                    await expect(create).to_contain_text("Create a draft alert")
                    await create.locator(".opblock-summary").click()  # opens: schema, links
                    await expect(create.locator(".responses-wrapper")).to_contain_text("201")
                    await expect(create).to_contain_text("post_alerts_id_submit")  # a link to follow
                finally:
                    await browser.close()
        finally:
            await server.close()
    off = sorted({url for url in requests if urlsplit(url).netloc != urlsplit(base).netloc})
    assert off == [], "requests off the host"
    assert problems == []
    assert f"{base}/api/v1/openapi.json" in requests
