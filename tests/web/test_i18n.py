"""The pages in English, French and Spanish: the catalogues are complete and in step with the
sources, no template shows untranslated text, every public page rendered in fr and es shows no
English chrome, and the language comes from the switch, its cookie or Accept-Language."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.contacts.subscriptions import Signer
from alerts.core.signing import Signing
from alerts.store.models import Contact
from alerts.web import i18n
from tests.web.chrome import WEB, catalogue, english_left, source_msgids, untranslated
from tests.web.conftest import SECRET, Site
from tests.web.test_public import _public_alert

PUBLIC_TEMPLATES = sorted((WEB / "public" / "templates").glob("*.html"))


@pytest.mark.parametrize("language", ["fr", "es"])
def test_the_catalogues_translate_every_msgid_of_the_sources_and_no_other(language: str) -> None:
    shipped = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalogue(language) if m.id}
    sources = source_msgids()
    assert sorted(sources - shipped.keys()) == [], "new strings: run pybabel extract + update, translate"
    assert sorted(shipped.keys() - sources) == [], "strings no source uses any more"
    empty = [mid for mid, text in shipped.items() if not text or (isinstance(text, tuple) and not all(text))]
    assert empty == []
    fuzzy = [m.id for m in catalogue(language) if m.id and m.fuzzy]
    assert fuzzy == []


@pytest.mark.parametrize("template", PUBLIC_TEMPLATES, ids=lambda p: p.name)
def test_templates_show_no_text_outside_the_catalogue(template: Path) -> None:
    assert untranslated(template) == []


def test_the_template_check_finds_english_left_in_a_template(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text('<h1>{{ _("Subscribe") }}</h1><p title="Plain">{{ x }} · Not wrapped</p>')
    assert untranslated(page) == ["Plain", "· Not wrapped"]


def test_the_page_check_finds_english_left_in_a_page() -> None:
    html = '<p>Alertes</p><p>Subscribe</p><a aria-label="Share this alert">x</a><article lang="en">Share</article>'
    assert english_left(html, "fr") == ["Share this alert", "Subscribe"]


async def _pages(site: Site) -> dict[str, tuple[str, str, dict[str, str]]]:
    """(method, path, form) of every public page, with the state each one needs."""
    _, _ = await site.call("POST", "/subscribe", data={"email": "p@example.org", "language": "en"})
    async with site.app.sessions() as session:
        contact = await session.scalar(select(Contact).where(Contact.email_key == "p@example.org"))
        assert contact is not None
    signer = Signer(Signing(SECRET))
    link, confirm = signer.link_token(contact.token), signer.confirm_token(contact)
    await site.call("POST", f"/subscribe/confirm/{confirm}")  # a public subscriber to publish to
    alert_id = await _public_alert(site)
    return {
        "subscribe": ("GET", "/subscribe", {}),
        "subscribe refused": ("POST", "/subscribe", {"email": "not-an-address", "language": "en"}),
        "check your inbox": ("POST", "/subscribe", {"email": "q@example.org", "language": "en"}),
        "confirm": ("GET", f"/subscribe/confirm/{confirm}", {}),
        "link not valid": ("GET", "/preferences/nonsense", {}),
        "archive": ("GET", "/alerts", {}),
        "alert": ("GET", f"/alerts/{alert_id}", {}),
        "no such alert": ("GET", "/alerts/999999", {}),
        "confirmed": ("POST", f"/subscribe/confirm/{confirm}", {}),
        "preferences": ("GET", f"/preferences/{link}", {}),
        "preferences saved": ("POST", f"/preferences/{link}", {"channels": "email", "language": "fr"}),
        "unsubscribe": ("GET", f"/unsubscribe/{link}", {}),
        "unsubscribed": ("POST", f"/unsubscribe/{link}", {}),
        "unsubscribe again": ("GET", f"/unsubscribe/{link}", {}),
        "preferences when unsubscribed": ("GET", f"/preferences/{link}", {}),
    }


@pytest.mark.parametrize("language", ["fr", "es"])
async def test_every_public_page_in_french_and_spanish_has_no_english_chrome(
    site: Site, language: str
) -> None:
    pages = await _pages(site)
    for name, (method, path, form) in pages.items():
        async with site.http.request(
            method, site.base + path, data=form or None, headers={"Accept-Language": language}
        ) as r:
            html = await r.text()
        assert f'<html lang="{language}">' in html, name
        assert english_left(html, language) == [], name
        # the same page in English does show the English chrome (the check can fail)
    async with site.http.get(site.base + "/subscribe", headers={"Accept-Language": "en"}) as r:
        assert english_left(await r.text(), language) != []


async def test_accept_language_chooses_the_language(site: Site) -> None:
    cases = {"es-ES,es;q=0.9,en;q=0.5": "es", "de-DE, fr;q=0.8, es;q=0.7": "fr", "de, it": "en", "": "en"}
    cases["fr;q=0.1, es;q=0.9"] = "es"
    cases["fr;q=0, es-MX"] = "es"
    for header, expected in cases.items():
        async with site.http.get(site.base + "/subscribe", headers={"Accept-Language": header}) as r:
            assert f'<html lang="{expected}">' in await r.text(), header


async def test_the_switch_chooses_the_language_and_remembers_it(site: Site) -> None:
    async with site.http.get(site.base + "/alerts?page=1", headers={"Accept-Language": "es"}) as r:
        html = await r.text()
        assert '<html lang="es">' in html and "hl" not in r.cookies
    # every page links to itself in each language, its query kept
    assert '<a href="?page=1&amp;hl=fr" hreflang="fr" lang="fr">Français</a>' in html
    async with site.http.get(site.base + "/alerts?page=1&hl=fr", headers={"Accept-Language": "es"}) as r:
        assert '<html lang="fr">' in await r.text()
        assert r.cookies["hl"].value == "fr" and r.cookies["hl"]["samesite"] == "Lax"
    # the cookie beats Accept-Language; a language the pages do not have is ignored
    for cookie, expected in (("hl=fr", "fr"), ("hl=de", "es")):
        async with site.http.get(
            site.base + "/subscribe", headers={"Accept-Language": "es", "Cookie": cookie}
        ) as r:
            assert f'<html lang="{expected}">' in await r.text(), cookie


async def test_kinds_have_readable_names_and_countries_come_from_a_localised_list(site: Site) -> None:
    async with site.http.get(site.base + "/subscribe?hl=es") as r:
        html = await r.text()
    assert 'value="urgent-appeal"> Llamamiento urgente</label>' in html
    assert '<option value="Peru">Perú</option>' in html
    assert '<option value="Germany">Alemania</option>' in html
    status, _ = await site.call(
        "POST",
        "/subscribe",
        data=[("email", "c@example.org"), ("language", "es"), ("country", "Peru"), ("country", "France")]
        + [("countries", "Calvera, peru")],
    )
    assert status == 202
    async with site.app.sessions() as session:
        contact = await session.scalar(select(Contact).where(Contact.email_key == "c@example.org"))
        assert contact is not None
    assert contact.topics == ["country:Peru", "country:France", "country:Calvera"]
    # what is stored shows again: list countries selected, the others as text, names localised
    link = Signer(Signing(SECRET)).link_token(contact.token)
    async with site.http.get(site.base + f"/preferences/{link}?hl=fr") as r:
        html = await r.text()
    assert '<option value="Peru" selected>Pérou</option>' in html
    assert '<option value="France" selected>France</option>' in html
    assert 'name="countries" maxlength="1000" value="Calvera"' in html


def test_country_and_language_helpers() -> None:
    with i18n.use("fr"):
        assert i18n.country_name("de") == "Allemagne" and i18n.kind_name("urgent-appeal") == "Appel urgent"
        assert i18n.kind_name("press-release") == "Press release"  # a family the service does not ship
        names = [name for _, name in i18n.countries()]
        assert names.index("Égypte") < names.index("Espagne") < names.index("Zimbabwe")
    assert i18n.split_countries(["spain", "Calvera", "Peru"]) == (["Spain", "Peru"], "Calvera")
