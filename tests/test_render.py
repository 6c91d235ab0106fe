"""Template families rendered for real: every family × audience × channel × language, case-data
validation with exact messages, escaping of case data, the Telegram length cap."""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from alerts.compose.render import (
    CHANNELS,
    TELEGRAM_BUDGET,
    TELEGRAM_LIMIT,
    Renderer,
    default_templates_dir,
    fit_telegram,
)
from alerts.core.errors import NotFound, TemplateError, ValidationError
from alerts.core.states import ContactKind
from tests.own_family import FAMILY, write_own_family

RENDERER = Renderer()
FAMILIES = ["closure", "update", "urgent-appeal"]
AUDIENCES = [kind.value for kind in ContactKind]
ORIGINAL = {"title": "Lawyer Lucía Marenco detained", "date": "2025-03-12", "id": 17}
# Words that only appear in that language's catalogue (checked in every rendered text).
LANGUAGE_WORDS = {
    "en": re.compile(r"\b(the|and|to|of)\b"),
    "fr": re.compile(r"\b(les|des|de la|aux|du|Merci|vous)\b"),
    "es": re.compile(r"\b(las|los|del|para|Gracias)\b"),
}


def extra_for(family: str, **more: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"original": ORIGINAL} if family != "urgent-appeal" else {}
    return {**base, **more}


def case(family: str = "urgent-appeal", **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RENDERER.example(family))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_default_templates_dir_is_the_repository_folder() -> None:
    assert default_templates_dir() == RENDERER.templates_dir
    assert (default_templates_dir() / "_base").is_dir()


def test_families_and_their_info() -> None:
    assert RENDERER.families() == FAMILIES
    info = RENDERER.family("urgent-appeal")
    assert info.languages == ("en", "es", "fr")
    assert info.variables["defender"].required and info.variables["defender"].type == "string"
    assert info.variables["authorities"].type == "authorities"
    assert not info.variables["background"].required
    assert RENDERER.family("update").requires == ("original",)


def test_unknown_family_is_not_found() -> None:
    with pytest.raises(
        NotFound, match=r"^template family 'appeal' does not exist; known: closure, update, urgent-appeal$"
    ):
        RENDERER.family("appeal")
    with pytest.raises(
        NotFound, match=r"^template family '\.\./etc' does not exist; known: closure, update, urgent-appeal$"
    ):
        RENDERER.validate_case("../etc", {})
    with pytest.raises(
        NotFound, match=r"^template family '_base' does not exist; known: closure, update, urgent-appeal$"
    ):
        RENDERER.render("_base", {}, audience="public", channel="email", language="en")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_every_form_renders_in_its_language(family: str, language: str) -> None:
    data = RENDERER.example(family)
    for audience in AUDIENCES:
        for channel in CHANNELS:
            content = RENDERER.render(
                family, data, audience=audience, channel=channel, language=language, extra=extra_for(family)
            )
            where = f"{family}/{audience}/{channel}/{language}"
            assert content.language == language, where
            assert (content.channel, content.audience) == (channel, audience), where
            assert content.subject and "\n" not in content.subject, where
            assert "Lucía Marenco" in content.text, where
            assert LANGUAGE_WORDS[language].search(content.text), where
            assert (content.html is not None) == (channel in ("email", "press")), where
            if content.html is not None:
                assert content.html.startswith("<!DOCTYPE html>"), where
                assert f'<html lang="{language}">' in content.html, where
            if channel == "telegram":
                assert len(content.text) <= TELEGRAM_LIMIT, where
                assert set(re.findall(r"</?([a-z]+)", content.text)) <= {"b", "i", "a"}, where


def test_french_and_spanish_forms_use_their_own_words() -> None:
    data = RENDERER.example("urgent-appeal")
    fr = RENDERER.render("urgent-appeal", data, audience="authority", channel="email", language="fr")
    assert fr.subject == "Appel urgent en faveur de Lucía Marenco, Calvera"
    assert "Mesdames, Messieurs," in fr.text
    assert "Nous vous prions respectueusement de :" in fr.text
    assert "Daniel Ostrova, Ministre de la Justice" in fr.text
    es = RENDERER.render("urgent-appeal", data, audience="press", channel="press", language="es")
    assert es.text.startswith("PARA DIFUSIÓN INMEDIATA\n")
    assert "PORT HALDEN, Calvera, 12 de marzo de 2025 –" in es.text


def test_unknown_language_falls_back_to_english() -> None:
    content = RENDERER.render(
        "urgent-appeal", RENDERER.example("urgent-appeal"), audience="public", channel="email", language="de"
    )
    assert content.language == "en"
    assert content.subject == "Urgent action: Lucía Marenco at risk in Calvera"
    assert "Write to the authorities, politely urging them to:" in content.text


def test_text_variable_without_the_language_uses_english() -> None:
    data = case(summary="Detained on 10 March; whereabouts unknown.")
    content = RENDERER.render("urgent-appeal", data, audience="partner", channel="email", language="fr")
    assert content.language == "fr"
    assert "Detained on 10 March; whereabouts unknown." in content.text
    assert "Écrivez aux autorités" in content.text


def test_authority_form_is_a_formal_appeal() -> None:
    one = case(authorities=[case()["authorities"][0]])
    content = RENDERER.render("urgent-appeal", one, audience="authority", channel="email", language="en")
    lines = content.text.splitlines()
    assert lines[:4] == ["To:", "Daniel Ostrova, Minister of Justice", "", "Dear Minister,"]
    assert "We respectfully urge you to:" in content.text
    assert "  - Allow her immediate access to a lawyer of her choice and to her family." in content.text
    assert content.text.rstrip().endswith("Ana Ferreira <press@example.org>")
    two = RENDERER.render("urgent-appeal", case(), audience="authority", channel="email", language="en")
    assert "\nExcellencies,\n" in two.text


def test_press_release_form() -> None:
    data = case()
    content = RENDERER.render("urgent-appeal", data, audience="media", channel="press", language="en")
    assert content.text.startswith("FOR IMMEDIATE RELEASE\n\nCALVERA: LUCÍA MARENCO AT RISK")
    assert "\nPORT HALDEN, Calvera, 12 March 2025 – Defenders Watch (example) today called" in content.text
    assert "\nEnds\n" in content.text and "\nNotes to editors\n" in content.text
    assert (
        content.text.index("Ends")
        < content.text.index("Notes to editors")
        < content.text.index("Press contact")
    )
    assert "Phone: +44 20 7946 0000" in content.text
    embargoed = RENDERER.render(
        "urgent-appeal",
        data,
        audience="press",
        channel="press",
        language="en",
        extra={"embargo_until": "15 March 2025 00:01 UTC"},
    )
    assert embargoed.text.startswith("EMBARGOED UNTIL 15 March 2025 00:01 UTC\n")
    assert "FOR IMMEDIATE RELEASE" not in embargoed.text


def test_webhook_carries_the_email_text_without_html() -> None:
    data = case()
    email = RENDERER.render("urgent-appeal", data, audience="partner", channel="email", language="es")
    webhook = RENDERER.render("urgent-appeal", data, audience="partner", channel="webhook", language="es")
    assert (webhook.subject, webhook.text, webhook.html) == (email.subject, email.text, None)


def test_update_and_closure_refer_to_the_original() -> None:
    update = RENDERER.render(
        "update", case("update"), audience="public", channel="email", language="en", extra=extra_for("update")
    )
    assert update.subject == "Update: Lawyer Lucía Marenco detained"
    assert (
        "This is an update to our alert “Lawyer Lucía Marenco detained” of 12 March 2025 (reference 17)."
        in (update.text)
    )
    assert "What has changed:" in update.text
    closure = RENDERER.render(
        "closure", case("closure", thanks=None), audience="public", channel="telegram", language="fr",
        extra=extra_for("closure"),
    )  # fmt: skip
    assert closure.text.startswith("<b>AFFAIRE CLOSE : Lucía Marenco (Calvera)</b>")
    assert "Merci à toutes celles et ceux qui se sont mobilisés." in closure.text


def test_update_without_original_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"^extra: 'original' is required for template family 'update'$"
    ):
        RENDERER.render("update", case("update"), audience="public", channel="email", language="en")
    with pytest.raises(
        ValidationError, match=r"^extra: 'original' must be a table with the original alert's"
    ):
        RENDERER.render(
            "update", case("update"), audience="public", channel="email", language="en",
            extra={"original": {"title": "x"}},
        )  # fmt: skip
    with pytest.raises(ValidationError, match=r"^extra: unknown key 'embargo'$"):
        RENDERER.render("urgent-appeal", case(), audience="public", channel="email", language="en",
                        extra={"embargo": "soon"})  # fmt: skip


@pytest.mark.parametrize(
    ("audience", "channel", "message"),
    [
        ("minister", "email",
         "audience: unknown audience 'minister' (expected one of authority, media, press, partner, public)"),
        ("public", "sms", "channel: unknown channel 'sms' (expected one of email, press, telegram, webhook)"),
    ],
)  # fmt: skip
def test_unknown_audience_or_channel(audience: str, channel: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        RENDERER.render("urgent-appeal", case(), audience=audience, channel=channel, language="en")
    assert info.value.message == message


@pytest.mark.parametrize(
    ("changes", "message", "variable"),
    [
        ({"defender": None}, "case data: 'defender' is required", "defender"),
        ({"defender": "   "}, "case data: 'defender' is required", "defender"),
        ({"date": "soon"}, "case data: 'date' must be a date (YYYY-MM-DD), got 'soon'", "date"),
        ({"date": "2025-02-30"}, "case data: 'date' must be a date (YYYY-MM-DD), got '2025-02-30'", "date"),
        ({"defendr": "x"}, "case data: unknown variable 'defendr' (did you mean 'defender'?)", "defendr"),
        ({"zzz": "x"}, "case data: unknown variable 'zzz'", "zzz"),
        ({"defender": 42}, "case data: 'defender' must be a string, got int", "defender"),
        ({"demands": "free her"}, "case data: 'demands' must be a list of strings, got str", "demands"),
        ({"demands": ["ok", ""]}, "case data: 'demands[1]' must not be empty", "demands[1]"),
        ({"summary": {"fr": "Texte"}},
         "case data: 'summary' must have an English ('en') version, the fallback for other languages", "summary"),
        ({"summary": {"en": "x", "French": "y"}},
         "case data: 'summary' has 'French', which is not a language code like 'en' or 'fr'", "summary"),
        ({"summary": "x" * 20_001}, "case data: 'summary' is too long (20001 characters, at most 20000)", "summary"),
        ({"authorities": [{"name": "A", "form_of_address": "Sir"}]},
         "case data: 'authorities[0].title' is required", "authorities[0].title"),
        ({"authorities": [{"name": "A", "title": "T", "form_of_address": "Sir", "adress": "x"}]},
         "case data: unknown field 'authorities[0].adress'", "authorities[0].adress"),
        ({"authorities": {"name": "A"}}, "case data: 'authorities' must be a list of tables, got dict", "authorities"),
        ({"contact": {"name": "Ana", "email": "not-an-address"}},
         "case data: 'contact.email' is not a valid email address: ", "contact.email"),
        ({"action_url": "javascript:alert(1)"},
         "case data: 'action_url' must be an http(s) URL, got 'javascript:alert(1)'", "action_url"),
    ],
)  # fmt: skip
def test_bad_case_data_is_refused_naming_the_variable(
    changes: dict[str, Any], message: str, variable: str
) -> None:
    data = case(**changes)
    with pytest.raises(ValidationError) as info:
        RENDERER.validate_case("urgent-appeal", data)
    assert info.value.message.startswith(message) if message.endswith(": ") else info.value.message == message
    assert info.value.details == {
        "variable": variable,
        **({"did_you_mean": "defender"} if variable == "defendr" else {}),
    }
    with pytest.raises(ValidationError):  # and nothing is rendered from it either
        RENDERER.render("urgent-appeal", data, audience="public", channel="email", language="en")


def test_case_data_must_be_a_table() -> None:
    with pytest.raises(ValidationError, match=r"^case data: must be a table of variables, got list$"):
        RENDERER.validate_case("urgent-appeal", [])  # type: ignore[arg-type]


def test_case_data_that_is_not_a_table_is_refused_naming_no_variable() -> None:
    """The API's error details of case data always hold ``variable``: here none, the whole is wrong."""
    with pytest.raises(ValidationError) as info:
        RENDERER.validate_case("urgent-appeal", "defender = 'x'")  # type: ignore[arg-type]
    assert info.value.message == "case data: must be a table of variables, got str"
    assert info.value.to_dict()["error"]["details"] == {"variable": None}


def test_validate_case_returns_json_ready_data() -> None:
    cleaned = RENDERER.validate_case("urgent-appeal", case(defender="  Lucía Marenco "))
    assert cleaned["defender"] == "Lucía Marenco"
    assert cleaned["date"] == "2025-03-12"  # TOML date → ISO string
    assert cleaned["contact"] == {
        "name": "Ana Ferreira",
        "email": "press@example.org",
        "phone": "+44 20 7946 0000",
    }
    assert cleaned["summary"]["fr"].startswith("Lucía Marenco a été arrêtée")
    assert "background" not in cleaned
    assert RENDERER.validate_case("urgent-appeal", cleaned) == cleaned


HOSTILE = "{{ 7*7 }} <script>alert('x')</script> {% if 1 %}&amp; “quoted”{% endif %}"


def test_case_data_is_never_evaluated_and_is_escaped() -> None:
    data = case(summary=HOSTILE, defender="Ana <b>Bold</b> & Co")
    text = RENDERER.render("urgent-appeal", data, audience="partner", channel="webhook", language="en").text
    assert HOSTILE in text and "49" not in text
    assert "Ana <b>Bold</b> & Co" in text  # plain text keeps the characters as written
    email = RENDERER.render("urgent-appeal", data, audience="partner", channel="email", language="en")
    assert email.html is not None
    assert "<script>" not in email.html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in email.html
    assert "{{ 7*7 }}" in email.html and "{% if 1 %}&amp;amp;" in email.html
    assert "Ana &lt;b&gt;Bold&lt;/b&gt; &amp; Co" in email.html
    assert (
        "<title>Urgent action: Ana &lt;b&gt;Bold&lt;/b&gt; &amp; Co at risk in Calvera</title>" in email.html
    )
    telegram = RENDERER.render("urgent-appeal", data, audience="public", channel="telegram", language="en")
    assert "<script>" not in telegram.text and "&lt;script&gt;" in telegram.text
    assert "Ana &lt;b&gt;Bold&lt;/b&gt; &amp; Co at risk" in telegram.text
    tags = set(re.findall(r"</?([a-z]+)", telegram.text))
    assert tags <= {"b", "i", "a"}


def test_telegram_is_cut_at_a_line_with_a_link_to_the_full_alert_past_its_budget() -> None:
    # up to TELEGRAM_BUDGET the channel sends a long form in parts (tests/channels/test_telegram_parts.py)
    demands = [f"Demand number {i}: " + "release her now and guarantee her safety " * 16 for i in range(50)]
    data = case(demands={"en": demands}, summary="Short & clear <summary>.")
    url = "https://alerts.example.org/alerts/17?a=1&b=2"
    content = RENDERER.render(
        "urgent-appeal", data, audience="public", channel="telegram", language="en", extra={"alert_url": url}
    )
    text = content.text
    assert len(text.encode("utf-16-le")) // 2 <= TELEGRAM_BUDGET
    assert text.endswith(
        '\n…\n<a href="https://alerts.example.org/alerts/17?a=1&amp;b=2">Read the full alert</a>'
    )
    kept = text.rsplit("\n…\n", 1)[0]
    assert kept.splitlines()[-1] in {f"• {d.strip()}" for d in demands}  # whole lines only
    assert "Short &amp; clear &lt;summary&gt;." in kept
    assert "Demand number 0:" in kept and "Demand number 49:" not in kept


def test_fit_telegram_closes_tags_and_cuts_long_paragraphs_at_a_word() -> None:
    short = "<b>Title</b>\nbody"
    assert fit_telegram(short, more="more") == short
    html = "<b>Title</b>\n<i>" + "word &amp; " * 1000 + "</i>"
    fitted = fit_telegram(html, more="(shortened)", limit=500)
    assert len(fitted) <= 500
    assert fitted.startswith("<b>Title</b>\n<i>word &amp; word")
    assert fitted.endswith("</i>\n…\n(shortened)")
    assert not re.search(r"&[a-z]*</i>", fitted)  # never half an entity
    # a closing tag closes what was left open inside it: only the <u> is still open at the cut
    misnested = "<b>Lead <i>note</b>\n<u>" + "word " * 1000 + "</u>"
    assert fit_telegram(misnested, more="(shortened)", limit=500).endswith("word</u>\n…\n(shortened)")
    no_link = RENDERER.render(
        "urgent-appeal", case(demands=["x " * 999] * 50), audience="public", channel="telegram", language="es"
    )
    assert no_link.text.endswith("\n…\n(Este mensaje ha sido abreviado.)")


def test_fit_telegram_keeps_a_line_that_just_fits_and_never_half_a_tag() -> None:
    room = 500 - len("\n…\nm") - 64  # what the lines may take, the closing tags' room kept aside
    just_fits = "a" * (room - 1)  # with its newline: exactly the room
    assert fit_telegram(just_fits + "\n" + "b" * 600, more="m", limit=500) == just_fits + "\n…\nm"
    # a huge paragraph after less than half the room is cut at a word, not dropped
    fitted = fit_telegram("x" * 180 + "\n" + "word " * 200, more="m", limit=500)
    assert fitted.startswith("x" * 180 + "\nword word") and fitted.endswith("word\n…\nm")
    # a cut inside a link's tag drops the tag, even after a complete tag earlier on the line
    link = '<a href="https://example.org/' + "p" * 300 + '">link</a>'
    fitted = fit_telegram("<b>Title</b> " + "word " * 70 + link, more="m", limit=500)
    assert fitted == "<b>Title</b> " + "word " * 69 + "word\n…\nm"
    # a complete entity at the cut is kept whole
    entities = "<i>" + "word &amp; " * 1000 + "</i>"
    assert fit_telegram(entities, more="m", limit=490).endswith(" word &amp;</i>\n…\nm")


def test_render_string_for_officer_text() -> None:
    context = {"name": "Ana <Co>", "items": ["a", "b"]}
    source = "Dear {{ name }}, {{ items|join(', ') }}{% for i in items %}!{% endfor %}"
    assert RENDERER.render_string(source, context) == "Dear Ana <Co>, a, b!!"
    assert RENDERER.render_string(source, context, autoescape=True) == "Dear Ana &lt;Co&gt;, a, b!!"
    with pytest.raises(TemplateError, match=r"^template '<string>': 'nobody' is undefined$"):
        RENDERER.render_string("{{ nobody }}", {})
    with pytest.raises(
        TemplateError,
        match=r"^template '<string>', line 1: Expected an expression, got 'end of print statement'$",
    ):
        RENDERER.render_string("{{ }} }}", {})


def test_broken_family_files_are_reported(tmp_path: Any) -> None:
    root = tmp_path / "templates"
    (root / "_base" / "messages").mkdir(parents=True)
    (root / "_base" / "messages" / "en.toml").write_text('a = "A"\nb = "B"\n')
    (root / "_base" / "messages" / "fr.toml").write_text('a = "A"\n')
    (root / "x" / "messages").mkdir(parents=True)
    (root / "x" / "family.toml").write_text('[variables.v]\ntype = "string"\n')
    (root / "x" / "messages" / "en.toml").write_text("")
    (root / "x" / "messages" / "fr.toml").write_text("")
    with pytest.raises(TemplateError, match=r"^x/messages/fr.toml: missing b$"):
        Renderer(root).family("x")
    (root / "x" / "family.toml").write_text('[variables.v]\ntype = "number"\n')
    with pytest.raises(TemplateError, match=r"^x/family.toml: variable 'v' has unknown type 'number'$"):
        Renderer(root).family("x")


def test_press_release_has_an_html_version() -> None:
    data = case(defender="Ana <b>Bold</b> & Co")
    content = RENDERER.render(
        "urgent-appeal", data, audience="press", channel="press", language="fr",
        extra={"embargo_until": "15 mars 2025 00:01 UTC"},
    )  # fmt: skip
    assert content.html is not None and content.html.startswith("<!DOCTYPE html>")
    assert "SOUS EMBARGO JUSQU’AU 15 mars 2025 00:01 UTC" in content.text
    html = content.html
    assert "SOUS EMBARGO JUSQU’AU 15 mars 2025 00:01 UTC" in html
    assert "POUR DIFFUSION IMMÉDIATE" not in html
    assert html.index("Fin") < html.index("Notes aux rédactions") < html.index("Contact presse")
    assert "Ana &lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html and "<b>Bold</b>" not in html
    now = RENDERER.render("urgent-appeal", case(), audience="media", channel="press", language="en")
    assert now.html is not None and "FOR IMMEDIATE RELEASE" in now.html


def test_string_variable_may_be_given_per_language() -> None:
    data = case(organisation={"en": "Defenders Watch", "fr": "Veille des défenseurs"})
    assert RENDERER.validate_case("urgent-appeal", data)["organisation"] == data["organisation"]
    fr = RENDERER.render("urgent-appeal", data, audience="media", channel="email", language="fr")
    es = RENDERER.render("urgent-appeal", data, audience="media", channel="email", language="es")
    assert "Veille des défenseurs" in fr.text and "Defenders Watch" not in fr.text
    assert "Defenders Watch" in es.text  # no Spanish version: English


def test_repeated_rendering_is_fast() -> None:
    data = case()
    RENDERER.render("urgent-appeal", data, audience="public", channel="email", language="en")
    started = time.perf_counter()
    for _ in range(200):
        RENDERER.render("urgent-appeal", data, audience="public", channel="email", language="en")
    assert time.perf_counter() - started < 2.0  # ~0.5 ms each once the templates are compiled


def test_render_string_names_a_missing_include() -> None:
    with pytest.raises(
        TemplateError, match=r"^template 'note' uses template '\.\./pyproject\.toml', which does not exist$"
    ):
        RENDERER.render_string('{% include "../pyproject.toml" %}', {}, name="note")


def test_placeholders_in_case_data_are_not_filled() -> None:
    data = case(defender="{country} {organisation}", country="Calvera")
    content = RENDERER.render("urgent-appeal", data, audience="public", channel="email", language="en")
    assert content.subject == "Urgent action: {country} {organisation} at risk in Calvera"


def test_closure_letter_thanks_without_asking_for_a_reply() -> None:
    content = RENDERER.render(
        "closure", case("closure"), audience="authority", channel="email", language="fr",
        extra=extra_for("closure"),
    )  # fmt: skip
    assert "Nous vous remercions de l’attention que vous avez portée à cette affaire." in content.text
    assert "réponse" not in content.text


@pytest.mark.parametrize(
    ("family", "changes", "details"),
    [
        ("urgent-appeal", {"audience": "minister"}, {"audience": "minister"}),
        ("urgent-appeal", {"channel": "sms"}, {"channel": "sms"}),
        ("urgent-appeal", {"extra": {"embargo": "soon"}}, {"extra": "embargo"}),
        ("update", {"extra": {}}, {"extra": "original"}),
        ("update", {"extra": {"original": {"title": "x"}}}, {"extra": "original"}),
        ("closure", {"extra": {"original": "17"}}, {"extra": "original"}),
    ],
    ids=[
        "audience",
        "channel",
        "unknown-extra",
        "missing-original",
        "incomplete-original",
        "original-not-a-table",
    ],
)
def test_render_refusals_name_what_is_wrong_in_details(
    family: str, changes: dict[str, Any], details: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {"audience": "public", "channel": "email", "language": "en", **changes}
    with pytest.raises(ValidationError) as info:
        RENDERER.render(family, case(family), **arguments)
    assert info.value.details == details  # the API's error body names the field


def test_a_family_folder_that_cannot_load_names_the_file_and_the_problem(tmp_path: Any) -> None:
    root = tmp_path / "templates"
    (root / "_base" / "messages").mkdir(parents=True)
    (root / "_base" / "messages" / "en.toml").write_text('a = "A"\n')
    family = root / "x"
    (family / "messages").mkdir(parents=True)
    (family / "family.toml").write_text('requires = ["original", "deadline", "venue"]\n')
    with pytest.raises(TemplateError) as info:
        Renderer(root).family("x")
    assert info.value.message == "x/messages: the English catalogue en.toml is missing"
    (family / "messages" / "en.toml").write_text("")
    with pytest.raises(TemplateError) as info:
        Renderer(root).family("x")
    assert info.value.message == "x/family.toml: requires unknown extra value(s) deadline, venue"
    (family / "family.toml").write_text('requires = ["original"\n')
    with pytest.raises(TemplateError) as info:
        Renderer(root).family("x")
    assert info.value.message.startswith("x/family.toml: Unclosed array")  # tomllib's words follow
    (family / "family.toml").write_text('requires = ["original"]\n')
    assert Renderer(root).family("x").requires == ("original",)
    with pytest.raises(TemplateError) as info:
        Renderer(root).example("x")
    assert info.value.message == "x/example.toml is missing"


def test_fill_names_a_sentence_missing_its_value_and_escapes_values_in_html() -> None:
    with pytest.raises(TemplateError) as info:
        RENDERER.render_string("{{ 'Dear {name}, {greeting}'|fill(name='Ana') }}", {})
    assert info.value.message == "message 'Dear {name}, {greeting}' needs a value for 'greeting'"
    source = "{{ 'Dear {name}'|fill(name=who) }}"
    assert RENDERER.render_string(source, {"who": "<b>Ana</b>"}) == "Dear <b>Ana</b>"
    assert (
        RENDERER.render_string(source, {"who": "<b>Ana</b>"}, autoescape=True)
        == "Dear &lt;b&gt;Ana&lt;/b&gt;"
    )


AUTHORITY = {"name": "Daniel Ostrova", "title": "Minister of Justice", "form_of_address": "Dear Minister"}


@pytest.mark.parametrize(
    ("changes", "message", "variable"),
    [
        ({"demands": ["d"] * 51}, "case data: 'demands' has 51 entries, at most 50", "demands"),
        ({"demands": {"en": ["d"] * 51}}, "case data: 'demands.en' has 51 entries, at most 50", "demands.en"),
        ({"facts": {"en": ["a"], "fr": ["b", " "]}}, "case data: 'facts.fr[1]' must not be empty", "facts.fr[1]"),
        ({"summary": {"en": "x", "fr": 5}}, "case data: 'summary.fr' must be a string, got int", "summary.fr"),
        ({"defender": "x" * 2001}, "case data: 'defender' is too long (2001 characters, at most 2000)", "defender"),
        ({"action_url": "https://e.org/" + "x" * 1987},
         "case data: 'action_url' is too long (2001 characters, at most 2000)", "action_url"),
        ({"action_url": "http://[x"}, "case data: 'action_url' must be an http(s) URL, got 'http://[x'", "action_url"),
        ({"action_url": "https://exa mple.org"},
         "case data: 'action_url' must be an http(s) URL, got 'https://exa mple.org'", "action_url"),
        ({"action_url": "http:///path"},
         "case data: 'action_url' must be an http(s) URL, got 'http:///path'", "action_url"),
        ({"date": "2025-3-1"}, "case data: 'date' must be a date (YYYY-MM-DD), got '2025-3-1'", "date"),
        ({"authorities": [AUTHORITY | {"language": "English"}]},
         "case data: 'authorities[0].language' must be a language code like 'en', got 'English'",
         "authorities[0].language"),
        ({"authorities": [AUTHORITY, AUTHORITY | {"title": {}}]},
         "case data: 'authorities[1].title' must not be empty", "authorities[1].title"),
    ],
)  # fmt: skip
def test_case_data_past_its_limits_is_refused_naming_the_exact_path(
    changes: dict[str, Any], message: str, variable: str
) -> None:
    with pytest.raises(ValidationError) as info:
        RENDERER.validate_case("urgent-appeal", case(**changes))
    assert info.value.message == message
    assert info.value.details == {"variable": variable}


def test_case_data_at_its_limits_is_accepted_and_tidied() -> None:
    url = "https://e.org/" + "x" * 1986
    cleaned = RENDERER.validate_case(
        "urgent-appeal",
        case(demands=["d"] * 50, defender="  " + "x" * 2000 + " ", action_url=url, date=" 2025-03-01 "),
    )
    assert (len(cleaned["demands"]), cleaned["defender"], cleaned["action_url"], cleaned["date"]) == (
        50, "x" * 2000, url, "2025-03-01",
    )  # fmt: skip


def test_a_broken_or_missing_family_template_is_named_with_its_line_in_message_and_details(
    tmp_path: Path,
) -> None:
    family = write_own_family(tmp_path)
    subject = family / "subject.txt.j2"
    subject.write_text("{{ t.note_subject|fill(defender=case.defender) }}\n\n{% if case.defender %}\n")
    renderer = Renderer(own_templates=tmp_path)
    with pytest.raises(TemplateError) as info:
        renderer.render(FAMILY, renderer.example(FAMILY), audience="public", channel="email", language="en")
    assert info.value.message.startswith(
        f"template '{FAMILY}/subject.txt.j2', line 3: Unexpected end of template."
    )
    assert info.value.details == {"template": f"{FAMILY}/subject.txt.j2"}
    subject.unlink()
    renderer = Renderer(own_templates=tmp_path)
    with pytest.raises(TemplateError) as info:
        renderer.render(FAMILY, renderer.example(FAMILY), audience="public", channel="email", language="en")
    assert info.value.message == f"template '{FAMILY}/subject.txt.j2' is missing"
    assert info.value.details == {"template": f"{FAMILY}/subject.txt.j2"}


def test_fit_telegram_drops_a_paragraph_it_cannot_cut_and_never_ends_in_half_an_entity() -> None:
    # after less than half the room, a huge paragraph without a space to cut at goes whole
    assert fit_telegram("x" * 180 + "\n" + "y" * 600, more="m", limit=500) == "x" * 180 + "\n…\nm"
    # an indented link of escaped query parameters: cut at an entity, never inside one (Telegram
    # refuses a message with a bare "&")
    link = " https://example.org/?" + "&amp;".join(f"k{i}=v{i}" for i in range(200))
    fitted = fit_telegram(link, more="m", limit=500)
    assert fitted.startswith("https://example.org/?k0=v0&amp;k1=v1&amp;")
    assert fitted.endswith("&amp;k35=v35\n…\nm"), fitted[-40:]


def test_the_words_of_a_language_a_family_lacks_are_its_english_ones() -> None:
    """The public feed names the event (``cap_event``) in each language's words."""
    assert "de" not in RENDERER.family("urgent-appeal").languages
    german = RENDERER.words("urgent-appeal", "de")
    assert german == RENDERER.words("urgent-appeal", "en")
    assert german["cap_event"] == "Human rights defender at risk"
    assert RENDERER.words("urgent-appeal", "fr")["cap_event"] == "Défenseur·e des droits humains en danger"


def test_an_own_familys_body_ending_in_a_line_of_text_keeps_its_blank_line_before_the_closing(
    tmp_path: Path,
) -> None:
    """The solidarity note's body.txt.j2 ends with ``{{ case.message }}`` and a newline: that
    newline is the body's, so the layout's blank line before the closing still shows."""
    write_own_family(tmp_path)
    renderer = Renderer(own_templates=tmp_path)
    content = renderer.render(
        FAMILY, renderer.example(FAMILY), audience="authority", channel="email", language="en"
    )
    closing = renderer.words(FAMILY, "en")["closing_appeal"]
    assert f"A note of solidarity:\n\nWe stand with Rosa.\n\n{closing}\n\nYours sincerely,\n" in content.text


def test_a_family_template_edited_on_disk_while_running_is_read_again_only_by_a_new_renderer(
    tmp_path: Path,
) -> None:
    """Templates are read once, like the family's words and variables: an edit on disk takes
    effect at the next start (a new Renderer), never half-way through a running service."""
    family = write_own_family(tmp_path)
    renderer = Renderer(own_templates=tmp_path)

    def text(r: Renderer) -> str:
        return r.render(FAMILY, r.example(FAMILY), audience="authority", channel="email", language="en").text

    before = text(renderer)
    body = family / "body.txt.j2"
    body.write_text("{{ t.note_lead }} (edited)\n\n{{ case.message }}\n", encoding="utf-8")
    later = time.time() + 60
    os.utime(body, (later, later))  # a newer file, whatever the file system's clock resolution
    assert text(renderer) == before
    assert "A note of solidarity: (edited)\n" in text(Renderer(own_templates=tmp_path))
