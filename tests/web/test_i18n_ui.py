"""The officers' pages in French and Spanish: every page (and a notice from the Python side)
shows no English chrome; the switch is on every page and its choice is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web import ROLES, Client, P
from tests.web.chrome import WEB, english_left, untranslated
from tests.web.test_ui import create, web  # noqa: F401  (the fixture)

#: The test users are named after their roles: their names are data, not chrome.
NAMES = frozenset((*ROLES, "officer2"))
UI_TEMPLATES = sorted((WEB / "ui" / "templates").glob("*.html"))


@pytest.mark.parametrize("template", UI_TEMPLATES, ids=lambda p: p.name)
def test_templates_show_no_text_outside_the_catalogue(template: Path) -> None:
    assert untranslated(template) == []


@pytest.mark.parametrize("language", ["fr", "es"])
async def test_every_officers_page_in_french_and_spanish_has_no_english_chrome(web, language: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    _app, base, clients, _ids, _ = web
    officer, reviewer, admin = clients["officer"], clients["reviewer"], clients["admin"]
    alert_id = await create(officer)
    draft_id = await create(officer)
    await officer.post(f"{P}/alerts/{alert_id}/submit", [])
    pages: list[tuple[Client, str]] = [
        (admin, "/"),
        (reviewer, "/"),  # with the alerts waiting for review
        (officer, f"{P}/alerts/new"),
        (officer, f"{P}/alerts/{draft_id}?notice=created"),
        (reviewer, f"{P}/alerts/{alert_id}"),  # the review screen and the audience panel
        (officer, f"{P}/alerts/{alert_id}/edit"),
        (officer, f"{P}/alerts/{alert_id}/deliveries"),
        (officer, f"{P}/contacts"),
        (officer, f"{P}/contacts/new"),
        (officer, f"{P}/contacts/1"),
        (officer, f"{P}/contacts/import"),
        (officer, f"{P}/followups"),
        (officer, f"{P}/audit"),
        (admin, f"{P}/users?notice=enabled&name=olga"),
        (officer, f"{P}/password"),
        (officer, f"{P}/alerts/999999"),  # the refusal page
        (officer, f"{P}/users"),  # refused: not allowed
    ]
    signed_out = Client(base)
    try:
        pages.append((signed_out, "/login"))
        for client, path in pages:
            sep = "&" if "?" in path else "?"
            status, html = await client.get(f"{path}{sep}hl={language}")
            assert status in (200, 403, 404), path
            assert f'<html lang="{language}">' in html, path
            assert english_left(html, language, NAMES) == [], path
        # the notices from the Python side are translated too
        _, html = await admin.get(f"{P}/users?notice=enabled&name=olga")
        assert {"fr": "Utilisateur·rice olga activé·e.", "es": "Usuario/a olga activado/a."}[language] in html
        # the choice is kept (the hl cookie): the next page is in the same language
        _, html = await officer.get("/")
        assert f'<html lang="{language}">' in html
        _, html = await officer.get("/?hl=en")
        assert '<html lang="en">' in html and english_left(html, language, NAMES) != []
    finally:
        await signed_out.close()
