"""The API's published JSON Schema refuses exactly what the rules behind it refuse: the text
patterns against ``core.text`` character by character, and ``check`` on the document's own
schemas."""

from __future__ import annotations

import pytest

from alerts.core.errors import ValidationError
from alerts.core.schemas import EMAIL_ADDRESS, line, text
from alerts.core.text import LINE_BREAK, REFUSED_IN_LINE, REFUSED_IN_TEXT, check_line, check_text
from alerts.web.api.schema import check

SURROGATES = range(0xD800, 0xE000)


def _accepted(rule: object, value: str) -> bool:
    try:
        rule(value, "f")  # type: ignore[operator]
    except ValidationError:
        return False
    return True


def test_text_patterns_refuse_exactly_the_characters_core_text_refuses() -> None:
    one_line, multi_line = line(10), text(10, blank=False)
    beyond = [
        p * 0x10000 + low for p in range(1, 17) for low in (0x0000, 0x1F600 & 0xFFFF, 0xFFFD, 0xFFFE, 0xFFFF)
    ]
    for code in [*range(0x10000), *beyond]:
        if code in SURROGATES:
            continue
        value = f"a{chr(code)}"
        assert _accepted(lambda v, f: check(v, one_line, f), value) == _accepted(check_line, value), hex(code)
        assert _accepted(lambda v, f: check(v, multi_line, f), value) == _accepted(check_text, value), hex(
            code
        )


def test_beyond_the_bmp_both_rules_refuse_the_same_characters() -> None:
    """core.schemas scans the astral planes once, for both rules; this is why it may."""
    astral = "".join(chr(c) for c in range(0x10000, 0x110000, 7)) + "".join(
        chr(p * 0x10000 + low) for p in range(1, 17) for low in (0xFFFE, 0xFFFF)
    )
    in_line = {m.group() for m in REFUSED_IN_LINE.finditer(astral)}
    in_text = {m.group() for m in REFUSED_IN_TEXT.finditer(LINE_BREAK.sub("\n", astral))}
    assert in_line == in_text and len(in_line) == 32


@pytest.mark.parametrize("value", [" ", "\u3000", " \u00a0 ", "\u2002"])
def test_a_required_field_of_whitespace_is_refused_as_empty(value: str) -> None:
    assert not value.strip()
    with pytest.raises(ValidationError, match="name: must not be empty"):
        check(value, line(10), "name")
    with pytest.raises(ValidationError):
        check(f"{value}\n\t", text(10, blank=False), "note")


def test_check_refuses_an_address_email_validator_refuses() -> None:
    for bad in ("ada@host.test", "ada@x.LOCALHOST", "ada@@x.org", "ada@onion"):
        with pytest.raises(ValidationError):
            check(bad, EMAIL_ADDRESS, "email")
    assert check("Ada.Lovelace@example.org", EMAIL_ADDRESS, "email") == "Ada.Lovelace@example.org"


def test_check_names_the_field_and_the_character_as_core_text_does() -> None:
    schema = {
        "type": "object",
        "properties": {"facts": {"type": "array", "items": text(100)}},
        "x-path": "case data",
    }
    with pytest.raises(ValidationError) as caught:
        check({"facts": ["ok", "bell\x07"]}, schema, "data")
    assert (
        caught.value.message == "case data: facts[1]: control character U+0007 at position 5 is not allowed"
    )
    assert caught.value.details["field"] == "case data: facts[1]"


def test_follow_up_rules_that_depend_on_the_kind_are_in_the_schema() -> None:
    """Found by schemathesis: each kind's branch must keep its ``kind`` constant."""
    from alerts.web.api.followups import followup_body

    schema = followup_body(("reminder", "update", "send"), {})
    with pytest.raises(ValidationError, match="condition: 'case-open' is not allowed here"):
        check({"kind": "send", "condition": "case-open", "at": "2300-01-01T00:00:00Z"}, schema, "body")
    assert check({"kind": "reminder", "condition": "case-open", "in": "7d"}, schema, "body")
    with pytest.raises(ValidationError, match="give exactly one of at"):
        check({"kind": "reminder", "at": "2300-01-01T00:00:00Z", "in": "7d"}, schema, "body")
