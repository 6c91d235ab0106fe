"""The case data's published JSON Schema refuses what ``casedata.validate`` refuses.

The API publishes ``casedata.json_schema`` and checks bodies against it first, so a keyword
misspelt in it (``anyof``, ``maxlength``, ``propertyNames`` dropped) would let a client's
schema accept a body the server then refuses. Read by jsonschema-rs, not our own check."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from alerts.compose import casedata
from alerts.compose.casedata import MAX_STRING, VariableSpec
from alerts.compose.render import Renderer
from alerts.core.errors import ValidationError

VARIABLES = {
    "defender": VariableSpec(name="defender", type="string", required=True),
    "link": VariableSpec(name="link", type="url", required=True),
}
GOOD: dict[str, Any] = {"defender": "Ana", "link": "https://example.org/case"}


def test_a_good_body_passes_both() -> None:
    validator = jsonschema_rs.Draft202012Validator(casedata.json_schema(VARIABLES))
    assert validator.is_valid(GOOD)
    assert casedata.validate(VARIABLES, GOOD) == GOOD


@pytest.mark.parametrize(
    "change",
    [
        {"defender": 5},  # neither a string nor a table of them
        {"defender": {"en": "Ana", "english": "Ana"}},  # not a language key
        {"link": "https://example.org/" + "x" * MAX_STRING},  # over the length limit
    ],
    ids=["not-a-string", "not-a-language-key", "too-long-url"],
)
def test_the_schema_refuses_what_validate_refuses(change: dict[str, Any]) -> None:
    body = GOOD | change
    with pytest.raises(ValidationError):
        casedata.validate(VARIABLES, body)
    assert not jsonschema_rs.Draft202012Validator(casedata.json_schema(VARIABLES)).is_valid(body)


OPTIONAL = {
    "defender": VariableSpec(name="defender", type="string", required=True),
    "note": VariableSpec(name="note", type="text", required=False),
}


@pytest.mark.parametrize("absent", [None, "  ", [], {}], ids=["null", "blank", "empty-list", "empty-table"])
def test_the_schema_and_validate_agree_on_an_absent_value(absent: Any) -> None:
    validator = jsonschema_rs.Draft202012Validator(casedata.json_schema(OPTIONAL))
    optional_left_out = {"defender": "Ana", "note": absent}
    assert casedata.validate(OPTIONAL, optional_left_out) == {"defender": "Ana"}
    assert validator.is_valid(optional_left_out)
    required_left_out = {"defender": absent, "note": "Seen at the border"}
    with pytest.raises(ValidationError, match=r"^case data: 'defender' is required$"):
        casedata.validate(OPTIONAL, required_left_out)
    assert not validator.is_valid(required_left_out)


def test_the_schema_takes_as_many_authorities_as_validate() -> None:
    variables = {"authorities": VariableSpec(name="authorities", type="authorities", required=True)}
    validator = jsonschema_rs.Draft202012Validator(casedata.json_schema(variables))
    one = {"name": "Minister", "title": "Minister of Justice", "form_of_address": "Dear Minister"}
    fifty = {"authorities": [one] * casedata.MAX_ITEMS}
    assert len(casedata.validate(variables, fifty)["authorities"]) == 50
    assert validator.is_valid(fifty)
    fifty_one = {"authorities": [one] * (casedata.MAX_ITEMS + 1)}
    with pytest.raises(ValidationError, match=r"^case data: 'authorities' has 51 entries"):
        casedata.validate(variables, fifty_one)
    assert not validator.is_valid(fifty_one)


def test_the_published_schema_describes_each_variable_in_the_familys_words() -> None:
    variables = Renderer().family("urgent-appeal").variables
    properties = casedata.json_schema(variables)["properties"]
    assert properties["defender"]["description"] == (
        "The defender's name, exactly as they (or their family) agreed it may be published."
    )
    assert properties["defender"]["anyOf"]  # beside the value's own schema
    plain = casedata.json_schema({"x": VariableSpec(name="x", type="url", required=True)})
    assert "description" not in plain["properties"]["x"]


NESTED = {
    "defender": VariableSpec(name="defender", type="string", required=True),
    "background": VariableSpec(name="background", type="text", required=True),
    "authorities": VariableSpec(name="authorities", type="authorities", required=True),
}
NESTED_GOOD: dict[str, Any] = {
    "defender": {"en": "Ana", "es": "Ana"},
    "background": "Arrested on 3 May.",
    "authorities": [{"name": "Minister", "title": "Minister of Justice", "form_of_address": "Dear Minister"}],
}


@pytest.mark.parametrize(
    "change",
    [
        {"defender": {"en": "Ana", "es": 5}},  # a translation that is not text
        {"background": 5},  # a text variable that is not text
        {"authorities": [{"name": "Minister", "rank": "first"}]},  # an authority with an unknown field
    ],
    ids=["table-of-numbers", "text-not-a-string", "authority-unknown-field"],
)
def test_the_schema_refuses_a_bad_translation_text_or_authority_as_validate_does(
    change: dict[str, Any],
) -> None:
    validator = jsonschema_rs.Draft202012Validator(casedata.json_schema(NESTED))
    assert casedata.validate(NESTED, NESTED_GOOD)
    assert validator.is_valid(NESTED_GOOD)
    body = NESTED_GOOD | change
    with pytest.raises(ValidationError):
        casedata.validate(NESTED, body)
    assert not validator.is_valid(body)


CONTACT = {"contact": VariableSpec(name="contact", type="contact", required=True)}
AUTHORITY = {"name": "Minister", "title": "Minister of Justice", "form_of_address": "Dear Minister"}


@pytest.mark.parametrize(
    ("variables", "good", "bad"),
    [
        (VARIABLES, GOOD, GOOD | {"link": 5}),
        (VARIABLES, GOOD, GOOD | {"link": ["https://example.org/case"]}),
        (NESTED, NESTED_GOOD, NESTED_GOOD | {"authorities": [AUTHORITY | {"rank": "first"}]}),
        (
            CONTACT,
            {"contact": {"name": "Lena", "email": "lena@example.org"}},
            {"contact": {"name": "Lena", "email": "lena@example.org", "fax": "+1 555 0100"}},
        ),
        (OPTIONAL, {"defender": "Ana"}, {"defender": "Ana", "note": 5}),
        (OPTIONAL, {"defender": "Ana"}, {"defender": "Ana", "note": {"fr": "Vue à la frontière"}}),
    ],
    ids=[
        "url-a-number",
        "url-a-list",
        "authority-with-every-field-and-one-more",
        "contact-with-one-field-more",
        "optional-text-a-number",
        "optional-text-without-english",
    ],
)
def test_the_schema_refuses_a_url_that_is_no_string_a_field_more_or_a_bad_optional_value_as_validate_does(
    variables: dict[str, VariableSpec], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    """Each value is otherwise complete, so only the one keyword can refuse it: the url's
    ``type`` (``maxLength`` and ``pattern`` say nothing of a number), a table's
    ``additionalProperties`` (its required fields are all there), an optional variable's
    ``anyOf`` (the value is present, so only its own schema can refuse it)."""
    validator = jsonschema_rs.Draft202012Validator(casedata.json_schema(variables))
    casedata.validate(variables, good)
    assert validator.is_valid(good)
    with pytest.raises(ValidationError):
        casedata.validate(variables, bad)
    assert not validator.is_valid(bad)


@pytest.mark.parametrize(
    "body", [[], ["Ana"], "Ana", 5, None], ids=["empty-list", "list", "text", "number", "null"]
)
def test_the_schema_refuses_case_data_that_is_not_a_table_as_validate_does(body: Any) -> None:
    """``required`` and ``additionalProperties`` say nothing of a list or a text: only the
    top level's ``type: object`` refuses them, as ``validate`` does."""
    with pytest.raises(ValidationError, match=r"^case data: must be a table of variables, got "):
        casedata.validate(OPTIONAL, body)
    assert not jsonschema_rs.Draft202012Validator(casedata.json_schema(OPTIONAL)).is_valid(body)
