"""Texts made in Python and shown on the pages, in French and Spanish: refusals from the action
layer, the audience's reasons for leaving contacts out, the case's timeline, the words the
pages' script writes; the CLI and the API keep them English. And whose language a page is in:
the switch or its cookie, then the officer's setting, then Accept-Language."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from alerts.actions import accounts
from alerts.core.errors import Conflict, NotFound
from alerts.core.msgids import N_, Joined, Text
from alerts.store.models import AuditEntry, Contact, User
from alerts.web import i18n
from alerts.web.ui import alerts as alert_pages
from tests.factories import add_contacts
from tests.web import ROLES, Client, P
from tests.web.chrome import english_left
from tests.web.test_ui import create, web  # noqa: F401  (the fixture)

NAMES = frozenset((*ROLES, "officer2"))
#: What each page must say, in each language (the values filled in).
EXPECTED = {
    "fr": {
        "refusal": "l’alerte {id} est à l’état « en relecture » : seul un brouillon peut être soumis à relecture",
        "missing": "l’alerte 999999 n’existe pas",
        "role": "l’utilisateur·rice 'viewer' (lecteur·rice) ne peut pas faire « alert.create »",
        "audience": "audience : indiquez au moins une liste ou un type de contact",
        "sign-in": "nom d’utilisateur·rice ou mot de passe incorrect",
        "no consent": "public, sans le consentement de la personne défenseure à la publicité",
        "no address": "sans adresse pour Courriel",
        "written": "rédigée par officer",
        "submitted": "soumise à relecture par officer",
        "due": "Rappel : prévu — call the ministry",
        "2fa": "le code ne correspond pas à la clé affichée ; vérifiez l’heure de votre appareil",
    },
    "es": {
        "refusal": "la alerta {id} está en estado «en revisión»: solo un borrador puede enviarse a revisión",
        "missing": "la alerta 999999 no existe",
        "role": "el usuario/a 'viewer' (lector/a) no puede hacer «alert.create»",
        "audience": "audiencia: indique al menos una lista o un tipo de contacto",
        "sign-in": "nombre de usuario/a o contraseña incorrectos",
        "no consent": "público, sin el consentimiento de la persona defensora a la difusión",
        "no address": "sin dirección para Correo electrónico",
        "written": "redactada por officer",
        "submitted": "enviada a revisión por officer",
        "due": "Recordatorio: previsto — call the ministry",
        "2fa": "el código no corresponde a la clave mostrada; compruebe la hora de su dispositivo",
    },
}


def _unescaped(page: str) -> str:
    import html

    return html.unescape(page)


@pytest.mark.parametrize("language", ["fr", "es"])
async def test_refusals_reasons_and_the_timeline_are_in_the_page_language(web, language: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app, base, clients, _ids, _ = web
    async with app.sessions.begin() as session:
        await add_contacts(session, 2, kind="public", start=50)  # left out: no consent to publicity
        await add_contacts(session, 1, email=False, start=60)  # left out: no address for email
    officer, viewer = clients["officer"], clients["viewer"]
    for client in (officer, viewer):
        await client.get(f"/?hl={language}")  # the switch: this browser's choice is kept
    expected = {k: v.format(id="{id}") for k, v in EXPECTED[language].items()}
    alert_id = await create(officer)
    await officer.get(f"{P}/alerts/{alert_id}")
    await officer.post(f"{P}/alerts/{alert_id}/submit", [])
    await officer.post(
        f"{P}/followups",
        [
            ("alert", str(alert_id)),
            ("kind", "reminder"),
            ("due", "2099-01-01T09:00"),
            ("note", "call the ministry"),
        ],
    )
    shown: dict[str, tuple[int, str]] = {}
    # a refusal from the action layer: submitting twice
    await officer.get(f"{P}/alerts/{alert_id}")
    r = await officer.post(f"{P}/alerts/{alert_id}/submit", [])
    shown["refusal"] = (r.status, await r.text())
    shown["missing"] = await officer.get(f"{P}/alerts/999999")
    shown["role"] = await viewer.get(f"{P}/alerts/new")
    # a refusal shown beside the field it is about, in the editor
    await officer.get(f"{P}/alerts/new")
    r = await officer.post(
        f"{P}/alerts/new",
        [("family", "urgent-appeal"), ("mode", "toml"), ("case_toml", "x = 1"), ("languages", "en")],
    )
    shown["audience"] = (r.status, await r.text())
    # the audience panel with its left-out contacts, and the timeline, on the alert's page
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(alert_pages, "REACH_WAIT", 60)  # the count in the page, however loaded the machine
        shown["alert"] = await officer.get(f"{P}/alerts/{alert_id}")
    # a refusal of the two-factor pages: a code that does not match the secret being enrolled
    await officer.get(f"{P}/account/2fa")
    r = await officer.post(f"{P}/account/2fa", [("code", "000000")])
    shown["2fa"] = (r.status, await r.text())
    signed_out = Client(base)
    try:
        await signed_out.get(f"/login?hl={language}")
        r = await signed_out.post("/login", {"name": "officer", "password": "not the password"})
        shown["sign-in"] = (r.status, await r.text())
    finally:
        await signed_out.close()

    for name, (_status, page) in shown.items():
        assert f'<html lang="{language}">' in page, name
        assert english_left(page, language, NAMES) == [], name
    text = {name: _unescaped(page) for name, (_, page) in shown.items()}
    assert shown["refusal"][0] == 409 and expected["refusal"].format(id=alert_id) in text["refusal"]
    assert shown["missing"][0] == 404 and expected["missing"] in text["missing"]
    assert shown["role"][0] == 403 and expected["role"] in text["role"]
    assert shown["audience"][0] == 422 and expected["audience"] in text["audience"]
    assert shown["sign-in"][0] == 401 and expected["sign-in"] in text["sign-in"]
    assert shown["2fa"][0] == 401 and expected["2fa"] in text["2fa"]
    page = text["alert"]
    panel = page[page.index('id="audience"') : page.index("</section>", page.index('id="audience"'))]
    assert re.search(
        r'data-reason="no_consent"><strong>2</strong> ' + re.escape(expected["no consent"]), panel
    )
    assert re.search(
        r'data-reason="no_address"><strong>1</strong> ' + re.escape(expected["no address"]), panel
    )
    timeline = page[page.index('class="timeline"') :]
    for key in ("written", "submitted", "due"):
        assert expected[key] in timeline, key
    # the words of the pages' script, handed to it translated
    block = re.search(r'<script type="application/json" id="ui-text">(.*?)</script>', page, re.S)
    assert block is not None
    words = json.loads(block.group(1))
    assert words["states"]["in_review"] == i18n.translate(language, "in review") != "in review"
    assert words["all_final"] == i18n.translate(language, "all final") != "all final"
    assert words["progress"] == i18n.translate(language, "%(done)s of %(total)s")

    # the same refusal in English, as before; the check finds English left in a French page
    _, english = await officer.get(f"{P}/alerts/999999?hl=en")
    assert "alert 999999 does not exist" in english
    assert "alert %(alert)s does not exist" in english_left(english, language, NAMES)


def test_an_error_keeps_its_english_and_its_msgid() -> None:
    error = NotFound.said(N_("alert %(alert)s does not exist"), alert=7)
    assert error.message == "alert 7 does not exist"  # the CLI and the API say it so
    assert error.to_dict() == {
        "error": {"code": "not_found", "message": "alert 7 does not exist", "details": {}}
    }
    assert i18n.said(error, "fr") == "l’alerte 7 n’existe pas"
    assert i18n.said(NotFound("no msgid, so English"), "fr") == "no msgid, so English"
    # texts inside texts, joined, and readable names of the values named state/channels
    reasons = Joined(
        [
            Text(N_("%(n)s %(why)s"), {"n": 2, "why": Text(N_("chose other channels"))}),
            Text(
                N_("%(n)s %(why)s"),
                {
                    "n": 1,
                    "why": Text(N_("with no address for %(channels)s"), {"channels": "email, telegram"}),
                },
            ),
        ]
    )
    refusal = Conflict.said(
        N_(
            "alert %(alert)s has no recipients: %(n)s contacts match %(matching)s and every one is left out: %(reasons)s."
        ),
        alert=3,
        n=3,
        matching=Text(N_("its lists (%(lists)s)"), {"lists": "press"}),
        reasons=reasons,
    )
    assert refusal.message == (
        "alert 3 has no recipients: 3 contacts match its lists (press) and every one is left out: "
        "2 chose other channels; 1 with no address for email, telegram."
    )
    assert i18n.said(refusal, "es") == (
        "la alerta 3 no tiene destinatarios: 3 contactos coinciden con sus listas (press) y todos quedan "
        "excluidos: 2 eligieron otros canales; 1 sin dirección para Correo electrónico, Telegram."
    )
    state = Conflict.said(
        N_("alert %(alert)s is %(state)s: it must be approved before sending"), alert=1, state="draft"
    )
    assert (
        i18n.said(state, "fr")
        == "l’alerte 1 est à l’état « brouillon » : elle doit être approuvée avant l’envoi"
    )
    assert i18n.said(state, "en") == "alert 1 is draft: it must be approved before sending"


async def test_the_api_keeps_english_with_the_code(web) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app, base, _clients, _ids, _ = web
    async with app.sessions.begin() as session:
        user = await session.scalar(select(User).where(User.name == "officer"))
        assert user is not None
    token = (await accounts.issue_token(app, None, "officer")).token
    client = Client(base, headers={"Authorization": f"Bearer {token}", "Accept-Language": "fr"})
    try:
        async with client.http.get(base + "/api/v1/alerts/999999") as r:
            body = await r.json()
    finally:
        await client.close()
    assert r.status == 404
    assert body["error"] == {"code": "not_found", "message": "alert 999999 does not exist", "details": {}}


# --------------------------------------------------------------------------- whose language


async def test_an_officers_setting_comes_after_the_switch_and_before_accept_language(web) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app, base, _clients, _ids, _ = web
    officer = Client(base, headers={"Accept-Language": "es"})
    try:
        await officer.sign_in("officer")
        _, page = await officer.get("/")
        assert '<html lang="es">' in page  # no setting: the browser's language
        # the officer's own page: the setting, saved through the action (audited)
        _, page = await officer.get(f"{P}/password")
        assert 'action="/office/account/language"' in page and '<option value="" selected>' in page
        r = await officer.post(f"{P}/account/language", {"language": "fr"})
        assert r.status == 303 and r.headers["Location"] == f"{P}/password?notice=language"
        _, page = await officer.get(r.headers["Location"])
        assert '<html lang="fr">' in page and "Langue enregistrée" in _unescaped(page)
        assert '<option value="fr" lang="fr" selected>Français</option>' in page
        # the switch beats the setting in this browser (its cookie), and saving the setting drops it
        _, page = await officer.get("/?hl=es")
        assert '<html lang="es">' in page
        _, page = await officer.get("/")
        assert '<html lang="es">' in page
        r = await officer.post(f"{P}/account/language", {"language": "fr"})
        assert "hl" in r.cookies and r.cookies["hl"].value == ""  # the cookie is deleted
        _, page = await officer.get("/")
        assert '<html lang="fr">' in page
        # a language the pages do not have is refused, in the page's language, beside the form
        r = await officer.post(f"{P}/account/language", {"language": "de"})
        page = await r.text()
        assert r.status == 422 and "langue : 'de' n’est pas une langue des pages" in _unescaped(page)
        # back to the browser's
        r = await officer.post(f"{P}/account/language", {"language": ""})
        _, page = await officer.get("/")
        assert '<html lang="es">' in page
    finally:
        await officer.close()
    async with app.sessions() as session:
        user = await session.scalar(select(User).where(User.name == "officer"))
        audited = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "user.language"))
        ).all()
    assert user is not None and user.language is None
    assert [a.details for a in audited] == [{"from": None, "to": "fr"}, {"from": "fr", "to": None}]


async def test_setting_another_users_language_needs_an_admin(web) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app, _base, _clients, _ids, _ = web
    async with app.sessions() as session:
        officer = await session.scalar(select(User).where(User.name == "officer"))
        admin = await session.scalar(select(User).where(User.name == "admin"))
    assert officer is not None and admin is not None
    with pytest.raises(Exception, match="may not users.manage"):
        await accounts.set_language(app, officer, "reviewer", "fr")
    done = await accounts.set_language(app, admin, "reviewer", "FR")
    assert done.changed and done.account.language == "fr" and done.account.to_json()["language"] == "fr"
    again = await accounts.set_language(app, None, "reviewer", "fr")
    assert not again.changed


# --------------------------------------------------------------------------- subscribers


async def test_a_subscribers_page_falls_back_on_their_language_after_the_browsers(web) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from alerts.actions.subscriptions import signer

    app, base, _clients, _ids, _ = web
    async with app.sessions.begin() as session:
        [cid] = await add_contacts(session, 1, kind="public", language="es", start=70)
        contact = await session.get(Contact, cid)
        assert contact is not None
        link = signer(app).link_token(contact.token)
    visitor = Client(base)
    try:
        for accept, expected in (("", "es"), ("de", "es"), ("fr-CA,fr;q=0.9", "fr")):
            visitor.http.cookie_jar.clear()
            headers = {"Accept-Language": accept} if accept else {}
            for path in (f"/preferences/{link}", f"/unsubscribe/{link}"):
                async with visitor.http.get(base + path, headers=headers) as r:
                    assert f'<html lang="{expected}">' in await r.text(), (path, accept)
        async with visitor.http.get(base + f"/preferences/{link}?hl=en") as r:
            assert '<html lang="en">' in await r.text()  # the switch first
        # a refusal of the action layer, on a public page
        form = {"email": "not-an-address", "language": "en"}
        for accept, said in (("fr", "cette adresse électronique n’est pas valide"), ("es", "no es válida")):
            visitor.http.cookie_jar.clear()
            async with visitor.http.post(
                base + "/subscribe", data=form, headers={"Accept-Language": accept}
            ) as r:
                assert r.status == 422 and said in _unescaped(await r.text())
    finally:
        await visitor.close()
