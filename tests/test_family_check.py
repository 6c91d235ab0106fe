"""``alerts templates check|list`` and ``[paths] templates``: an organisation's own families
beside the shipped ones, checked before use, with every problem at its file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alerts.cli.parser import main
from alerts.compose.families import default_templates_dir
from alerts.compose.family_check import check_folder
from alerts.compose.render import Renderer
from alerts.core.config import load_settings
from alerts.core.errors import ConfigError, ValidationError
from tests.own_family import FAMILY, write_own_family

SHIPPED = default_templates_dir()


def problems(folder: Path) -> list[str]:
    return [str(p) for report in check_folder(folder) for p in report.problems]


def test_the_shipped_families_pass_in_every_audience_channel_and_language() -> None:
    reports = check_folder(SHIPPED)
    assert [(r.name, r.renders, r.problems) for r in reports] == [
        ("closure", 120, ()),
        ("update", 120, ()),
        ("urgent-appeal", 120, ()),
    ]  # 2 sets of extras × 5 audiences × 4 channels × 3 languages


def test_an_own_family_passes_as_a_folder_of_families_or_as_the_family(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    for folder in (tmp_path, family):
        [report] = check_folder(folder)
        assert (report.name, report.renders, report.problems) == (FAMILY, 80, ())


def test_variables_declared_but_unused_and_used_but_undeclared(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "body.html.j2").write_text("<p>{{ t.note_lead }}</p>\n<p>{{ case.mesage }}</p>\n")
    found = problems(tmp_path)
    assert "solidarity-note/body.html.j2:2: case.mesage is not declared in family.toml" in found
    assert "solidarity-note/family.toml: variable 'message' is declared but no template uses it" not in found
    (family / "body.txt.j2").write_text("{{ t.note_lead }}\n")
    (family / "telegram.html.j2").write_text("<b>{{ case.defender }}</b>\n")
    assert "solidarity-note/family.toml: variable 'message' is declared but no template uses it" in problems(
        tmp_path
    )


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "body.txt.j2").write_text("{{ t.note_lead }}\n\n{% if case.message %}\n{{ case.message }}\n")
    found = problems(tmp_path)
    assert found[0].startswith("solidarity-note/body.txt.j2:4: Unexpected end of template.")


def test_a_failure_in_one_language_only_names_file_line_and_form(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "body.txt.j2").write_text(
        '{{ t.note_lead }}\n\n{% if lang == "fr" %}{{ t.no_such_sentence }}{% endif %}\n{{ case.message }}\n'
    )
    found = problems(tmp_path)
    assert len(found) == 1
    assert found == [
        "solidarity-note/body.txt.j2:3: 'dict object' has no attribute 'no_such_sentence' "
        "(authority × email × fr, required extras only)"
    ]


def test_an_invalid_example_is_reported_at_the_example(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    example = family / "example.toml"
    example.write_text(example.read_text().replace('defender = "Rosa Imbert"\n', ""))
    assert problems(tmp_path) == ["solidarity-note/example.toml: case data: 'defender' is required"]


def test_a_catalogue_missing_a_sentence_is_reported_at_the_catalogue(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "messages" / "fr.toml").write_text('note_subject = "Solidarité avec {defender}"\n')
    assert problems(tmp_path) == ["solidarity-note/messages/fr.toml: missing note_lead"]


def test_a_missing_template_is_reported_at_its_file(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "subject.txt.j2").unlink()
    found = problems(tmp_path)
    assert found[0] == (
        "solidarity-note/subject.txt.j2: template 'solidarity-note/subject.txt.j2' is missing "
        "(authority × email × en, required extras only)"
    )


def test_a_folder_without_a_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no template family here") as refused:
        check_folder(tmp_path)
    assert refused.value.details == {"folder": str(tmp_path.resolve())}


def test_the_cli_prints_problems_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    family = write_own_family(tmp_path)
    assert main(["templates", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "solidarity-note: ok (80 forms rendered)\n"
    (family / "subject.txt.j2").write_text("{{ case.defendr }}\n")
    assert main(["templates", "check", str(family)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == [
        "solidarity-note: 2 problem(s)",
        "  solidarity-note/subject.txt.j2:1: case.defendr is not declared in family.toml",
    ]
    assert err == "alerts: 1 of 1 template families have problems\n"
    assert main(["templates", "check", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    config = tmp_path / "alerts.toml"
    config.write_text(f'[paths]\ntemplates = "{tmp_path}"\n')
    assert main(["--config", str(config), "templates", "check"]) == 2  # every family this config uses
    assert [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")] == [
        "closure: ok (120 forms rendered)",
        "solidarity-note: 2 problem(s)",
        "update: ok (120 forms rendered)",
        "urgent-appeal: ok (120 forms rendered)",
    ]


def test_own_families_sit_beside_the_shipped_and_win_a_name_clash(tmp_path: Path) -> None:
    write_own_family(tmp_path)
    shutil.copytree(SHIPPED / "closure", tmp_path / "closure")
    ours = tmp_path / "closure" / "family.toml"
    ours.write_text(ours.read_text().replace('description = "', 'description = "Ours: ', 1))
    renderer = Renderer(own_templates=tmp_path)
    assert renderer.families() == ["closure", FAMILY, "update", "urgent-appeal"]
    assert renderer.family("closure").description.startswith("Ours: ")
    assert renderer.is_own("closure") and renderer.is_own(FAMILY) and not renderer.is_own("update")
    assert renderer.family_dir("update") == SHIPPED / "update"
    content = renderer.render(
        FAMILY, renderer.example(FAMILY), audience="public", channel="email", language="fr"
    )
    assert content.subject == "Solidarité avec Rosa Imbert (Vélurie)" and content.language == "fr"


def test_paths_templates_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    write_own_family(tmp_path / "conf" / "ours")
    config = tmp_path / "conf" / "alerts.toml"
    config.write_text('[paths]\ntemplates = "ours"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(config, environ={}).paths.templates == str(tmp_path / "conf" / "ours")
    config.write_text('[paths]\ntemplates = "missing"\n')
    with pytest.raises(ConfigError, match=r"\[paths\] templates has value '.*missing'. Not a folder"):
        load_settings(config, environ={})


def test_templates_list_shows_where_each_family_comes_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_own_family(tmp_path / "ours")
    config = tmp_path / "alerts.toml"
    config.write_text('[paths]\ntemplates = "ours"\n')
    assert main(["--config", str(config), "templates", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["closure", "shipped", "en,es,fr"],
        ["solidarity-note", "own", "en,fr"],
        ["update", "shipped", "en,es,fr"],
        ["urgent-appeal", "shipped", "en,es,fr"],
    ]
    assert lines[1].endswith("Solidarity note: a short message of support for a defender.")


def test_a_contact_without_a_phone_renders_everywhere() -> None:
    """The shared layouts asked for ``case.contact.phone``, which is optional: the check found it."""
    renderer = Renderer()
    case = renderer.example("urgent-appeal")
    case["contact"] = {key: value for key, value in case["contact"].items() if key != "phone"}
    for channel in ("email", "press", "webhook"):
        content = renderer.render("urgent-appeal", case, audience="media", channel=channel, language="en")
        assert case["contact"]["email"] in content.text


def test_a_case_variable_written_as_a_subscript_is_checked_too(tmp_path: Path) -> None:
    family = write_own_family(tmp_path)
    (family / "body.txt.j2").write_text('{{ t.note_lead }}\n\n{{ case["message"] }}\n{{ case["mesage"] }}\n')
    found = problems(tmp_path)
    assert "solidarity-note/body.txt.j2:4: case.mesage is not declared in family.toml" in found
    assert not any("case.message" in problem for problem in found)


def test_a_failure_only_with_every_extra_names_its_form_and_counts_the_forms_that_rendered(
    tmp_path: Path,
) -> None:
    family = write_own_family(tmp_path)
    (family / "body.txt.j2").write_text(
        "{{ t.note_lead }}\n{% if extra.alert_url %}{{ t.no_such_sentence }}{% endif %}\n{{ case.message }}\n"
    )
    [report] = check_folder(tmp_path)
    assert [str(p) for p in report.problems] == [
        "solidarity-note/body.txt.j2:2: 'dict object' has no attribute 'no_such_sentence' (authority × email × en)"
    ]  # no "required extras only": with those the branch is not taken
    assert report.renders == 80 - 30  # every extra × 5 audiences × email, press, webhook × 2 languages fail
