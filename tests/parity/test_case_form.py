"""The case editor as a form (issue 11): generated from the family's variables, every language
beside English, lists with a row to add, authorities picked from the directory, errors shown
beside the field they name — and the TOML still there as the advanced view."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select

from alerts.store.models import AlertVersion, Contact
from alerts.web.ui import caseform
from tests.parity.conftest import Faces
from tests.web import P


def form_of(page: str) -> list[tuple[str, str]]:
    """What a browser would send for the editor as shown: inputs, textareas, checked boxes."""
    start = page.index('id="editor"')
    editor = page[start : page.index("</form>", start)]
    sent: list[tuple[str, str]] = []
    for tag in re.finditer(r"<input ([^>]*)>", editor):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))
        if "name" not in attrs or (
            attrs.get("type") in ("checkbox", "radio") and "checked" not in tag.group(1)
        ):
            continue
        sent.append((attrs["name"], html.unescape(attrs.get("value", ""))))
    for select_ in re.finditer(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', editor, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', select_.group(2))
        if chosen:
            sent.append((select_.group(1), html.unescape(chosen.group(1))))
    for area in re.finditer(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', editor, re.S):
        sent.append((area.group(1), html.unescape(area.group(2))))
    return sent


def changed(form: list[tuple[str, str]], name: str, value: str, *, nth: int = 0) -> list[tuple[str, str]]:
    out, seen = [], 0
    for key, old in form:
        if key == name:
            if seen == nth:
                old = value
            seen += 1
        out.append((key, old))
    assert seen > nth, f"no {name} #{nth} in the form"
    return out


async def saved_case(faces: Faces, alert_id: int) -> dict[str, Any]:
    async with faces.app.sessions() as session:
        version = (
            await session.scalars(
                select(AlertVersion)
                .where(AlertVersion.alert_id == alert_id)
                .order_by(AlertVersion.number.desc())
            )
        ).first()
        assert version is not None
        return version.case_data


async def test_an_officer_writes_a_case_in_the_form(faces: Faces) -> None:
    async with faces.app.sessions.begin() as session:
        session.add(
            Contact(
                name="Marta Quiroga",
                title="Minister of the Interior",
                kind="authority",
                email="mq@gov.test",
                email_key="mq@gov.test",
                token="t-mq",
            )
        )
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/alerts/new?family=urgent-appeal")
    assert status == 200
    variables = re.findall(r'data-var="([^"]+)" data-type="([^"]+)"', page)
    assert ("summary", "text") in variables and ("facts", "list") in variables
    assert ("authorities", "authorities") in variables and ("date", "date") in variables
    assert '<textarea id="c-summary-fr" name="c.summary.fr"' in page
    # English beside the language being written
    fr_block = page[page.index('id="c-summary-fr"') - 600 : page.index('id="c-summary-fr"')]
    assert 'class="en-ref" lang="en">Lucía Marenco was detained' in fr_block
    assert '<option value="Marta Quiroga">Minister of the Interior</option>' in page  # the directory
    assert 'type="date"' in page and 'value="2025-03-12"' in page

    form = form_of(page)
    form = changed(form, "c.defender", "Ana Ruiz")
    form = changed(form, "c.facts.en", "", nth=1)  # remove the second fact
    form = changed(form, "c.facts.fr", "12 mars : transférée à Kessel.", nth=3)  # the empty row: add one
    form = changed(form, "c.authorities.2.name", "Marta Quiroga")  # the empty authority row
    form = changed(form, "c.authorities.2.title.en", "Minister of the Interior")
    form = changed(form, "c.authorities.2.form_of_address.en", "Dear Minister")
    form += [("lists", "urgent-appeals"), ("channels", "email")]
    r = await officer.post(f"{P}/alerts/new", form)
    assert r.status == 303, re.findall(r"class=\"error\"[^>]*>([^<]+)<", html.unescape(await r.text()))
    alert_id = int(r.headers["Location"].split("/")[-1].split("?")[0])
    case = await saved_case(faces, alert_id)
    assert case["defender"] == "Ana Ruiz"
    assert len(case["facts"]["en"]) == 2 and len(case["facts"]["fr"]) == 4
    assert case["facts"]["fr"][3] == "12 mars : transférée à Kessel."
    assert case["authorities"][2] == {
        "name": "Marta Quiroga",
        "title": "Minister of the Interior",
        "form_of_address": "Dear Minister",
    }
    assert case["date"] == "2025-03-12" and case["summary"]["es"].startswith("Lucía Marenco fue detenida")

    # an error is shown beside the field it names, and nothing is written
    status, page = await officer.get(f"{P}/alerts/{alert_id}/edit")
    bad = changed(form_of(page), "c.summary.en", "")
    r = await officer.post(f"{P}/alerts/{alert_id}/edit", bad + [("lists", "urgent-appeals")])
    assert r.status == 422
    page = await r.text()
    block = page[page.index('data-var="summary"') : page.index('data-var="facts"')]
    assert 'role="alert"' in block and "summary" in html.unescape(block) and "English" in html.unescape(block)
    # the same refusal on a French page, in French
    r = await officer.post(f"{P}/alerts/{alert_id}/edit?hl=fr", bad + [("lists", "urgent-appeals")])
    page = html.unescape(await r.text())
    assert r.status == 422 and "dossier : 'summary' doit avoir une version anglaise ('en')" in page
    assert (await saved_case(faces, alert_id))["defender"] == "Ana Ruiz"

    # the advanced view: the TOML, which can be saved instead
    toml = page[page.index('name="case_toml"') :]
    assert 'defender = "Ana Ruiz"' in html.unescape(toml[: toml.index("</textarea>")])
    status, page = await officer.get(f"{P}/alerts/{alert_id}/edit")
    as_toml = [(k, v) for k, v in form_of(page) if k != "mode"] + [
        ("mode", "toml"),
        ("lists", "urgent-appeals"),
    ]
    as_toml = [(k, v.replace("Ana Ruiz", "Ana R.") if k == "case_toml" else v) for k, v in as_toml]
    r = await officer.post(f"{P}/alerts/{alert_id}/edit", as_toml)
    assert r.status == 303
    assert (await saved_case(faces, alert_id))["defender"] == "Ana R."


class _Tabs(HTMLParser):
    """The tablists, tabs and tabpanels of a page: {id: attributes}, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.roles: dict[str, list[dict[str, str | None]]] = {"tablist": [], "tab": [], "tabpanel": []}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        role = values.get("role") or ""
        if role in self.roles:
            self.roles[role].append(values)


async def test_each_translatable_field_is_one_tab_per_language_with_the_english_beside(faces: Faces) -> None:
    officer = await faces.page("officer")
    status, page = await officer.get(f"{P}/alerts/new?family=urgent-appeal&hl=fr")
    assert status == 200
    block = page[page.index('data-var="summary"') : page.index('data-var="facts"')]
    found = _Tabs()
    found.feed(block)
    tablist, tabs, panels = found.roles["tablist"], found.roles["tab"], found.roles["tabpanel"]
    # one tablist, hidden until the script makes the tabs: without it every panel shows, stacked
    assert len(tablist) == 1 and "hidden" in tablist[0] and tablist[0]["aria-label"] == "Résumé : langues"
    assert [t["data-lang"] for t in tabs] == ["en", "es", "fr"]  # English first
    assert [t["aria-selected"] for t in tabs] == ["true", "false", "false"]
    assert [t["tabindex"] for t in tabs] == ["0", "-1", "-1"]
    assert all(t["type"] == "button" for t in tabs)  # a tab never submits the form
    assert [p["id"] for p in panels] == [t["aria-controls"] for t in tabs]
    assert [p["aria-labelledby"] for p in panels] == [t["id"] for t in tabs]
    assert not any("hidden" in p for p in panels)
    assert ">Anglais</button>" in block and ">Français</button>" in block and ">Espagnol</button>" in block
    # each language but English shows the English text, read-only, above the one being written
    panel = {lang: block[block.index(f'id="p-summary-{lang}"') :] for lang in ("en", "es", "fr")}
    assert "data-en-ref" not in panel["en"][: panel["en"].index("</textarea>")]
    fr = panel["fr"][: panel["fr"].index("</textarea>")]
    assert fr.index('data-en-ref="c.summary.en"') < fr.index('name="c.summary.fr"')
    assert 'class="en-ref" lang="en">Lucía Marenco was detained' in fr
    assert "<textarea" not in fr[: fr.index('name="c.summary.fr"') - 60]  # the reference is not an input
    # lists and the authorities' titles are tabs too
    assert 'id="t-facts-fr" aria-controls="p-facts-fr"' in page and 'id="p-demands-es"' in page
    assert 'id="p-authorities-0-fr"' in page and 'data-en-ref="c.authorities.0.title.en"' in page
    # a field's refusal opens the tab of the language it names
    assert caseform.error_language("facts.fr[2]") == "fr"
    assert caseform.error_language("authorities[0].title.es") == "es"
    assert caseform.error_language("defender") == "" and caseform.error_language(None) == ""
