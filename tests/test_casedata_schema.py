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
