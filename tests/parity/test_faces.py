"""The parity fixture itself: every face answers, on one database."""

from __future__ import annotations

from tests.parity.conftest import Faces


async def test_every_face_reaches_the_same_service(faces: Faces) -> None:
    status, body = await faces.api("officer", "GET", "/templates")
    assert status == 200, body
    status, body = await faces.api(None, "GET", "/templates")
    assert status == 401, body
    page = await faces.page("officer")
    status, html = await page.get("/")
    assert status == 200 and "officer" in html
    status, _ = await faces.public.get("/subscribe")
    assert status == 200
    run = await faces.cli("users", "list")
    assert run.code == 0, run.err
    assert "reviewer2" in run.out
    assert "telegram" in faces.app.channels
