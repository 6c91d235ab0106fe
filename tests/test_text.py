"""The control-character policy (alerts.core.text), as one table."""

from __future__ import annotations

import pytest

from alerts.core.errors import ValidationError
from alerts.core.text import check_line, check_text, for_xml, one_line, unsafe_in_link

REFUSED, ALLOWED = "refused", "allowed"

# character, what a one-line field does with it, what multi-line text does with it
# (ALLOWED, REFUSED, or the character it becomes)
POLICY = [
    ("\x00", REFUSED, REFUSED),  # NUL
    ("\x07", REFUSED, REFUSED),  # BEL: Word table-cell marks
    ("\t", REFUSED, ALLOWED),
    ("\n", REFUSED, ALLOWED),
    ("\r", REFUSED, "\n"),
    ("\x0b", REFUSED, "\n"),  # VT: Word's Shift+Enter
    ("\x0c", REFUSED, "\n"),  # FF: Word's page break
    ("\x1b", REFUSED, REFUSED),  # ESC: terminal escapes
    ("\x1f", REFUSED, REFUSED),
    ("\x7f", REFUSED, REFUSED),  # DEL
    ("\x80", REFUSED, REFUSED),  # C1
    ("\x85", REFUSED, "\n"),  # NEL
    ("\x9f", REFUSED, REFUSED),
    ("\u2028", REFUSED, "\n"),  # LINE SEPARATOR
    ("\u2029", REFUSED, "\n"),  # PARAGRAPH SEPARATOR
    ("\u202a", REFUSED, REFUSED),  # LEFT-TO-RIGHT EMBEDDING
    ("\u202e", REFUSED, REFUSED),  # RIGHT-TO-LEFT OVERRIDE (Trojan Source)
    ("\u2066", REFUSED, REFUSED),  # LEFT-TO-RIGHT ISOLATE
    ("\u2069", REFUSED, REFUSED),  # POP DIRECTIONAL ISOLATE
    ("\ud800", REFUSED, REFUSED),  # a lone surrogate (JSON "\ud800"): not storable as UTF-8
    ("\ufffe", REFUSED, REFUSED),  # noncharacter, invalid in XML (a byte-swapped BOM)
    ("\uffff", REFUSED, REFUSED),  # noncharacter, invalid in XML
    ("\ufdd0", REFUSED, REFUSED),  # noncharacter
    ("\U0010ffff", REFUSED, REFUSED),  # noncharacter, last of plane 16
    ("\ufffd", ALLOWED, ALLOWED),  # REPLACEMENT CHARACTER: a decoder's honest mark
    (" ", ALLOWED, ALLOWED),
    ("\xa0", ALLOWED, ALLOWED),  # no-break space
    ("\xe9", ALLOWED, ALLOWED),  # é
    ("\u200e", ALLOWED, ALLOWED),  # LEFT-TO-RIGHT MARK: plain bidi text needs it
    ("\u200f", ALLOWED, ALLOWED),  # RIGHT-TO-LEFT MARK
    ("\u061c", ALLOWED, ALLOWED),  # ARABIC LETTER MARK
    ("\u200c", ALLOWED, ALLOWED),  # ZWNJ: Persian
    ("\u200d", ALLOWED, ALLOWED),  # ZWJ: emoji sequences, Indic scripts
    ("\u0645", ALLOWED, ALLOWED),  # Arabic letter
    ("\U0001f4e2", ALLOWED, ALLOWED),  # emoji
]


@pytest.mark.parametrize(("char", "line", "text"), POLICY)
def test_policy(char: str, line: str, text: str) -> None:
    value = f"ab{char}cd"
    code = f"U+{ord(char):04X}"
    if line == ALLOWED:
        assert check_line(value, "name") == value
        assert one_line(value) == value
    else:
        with pytest.raises(ValidationError) as refused:
            check_line(value, "name")
        assert refused.value.message == f"name: control character {code} at position 3 is not allowed"
        assert refused.value.details == {"field": "name", "character": code, "position": 3}
        assert one_line(value) == "ab cd"
    if text == ALLOWED:
        assert check_text(value, "note") == value
    elif text == REFUSED:
        with pytest.raises(ValidationError) as refused:
            check_text(value, "note")
        assert refused.value.message == f"note: control character {code} at position 3 is not allowed"
    else:
        assert check_text(value, "note") == f"ab{text}cd"


def test_text_line_breaks_become_one_newline_each() -> None:
    assert check_text("a\r\nb\rc\x0bd\r\n\r\ne", "note") == "a\nb\nc\nd\n\ne"


def test_one_line_folds_runs_and_trims() -> None:
    assert one_line("\r\n Subject:\r\n\tBcc: x\u202e ") == "Subject: Bcc: x"


@pytest.mark.parametrize(
    ("char", "unsafe"),
    [(" ", True), ("\t", True), ("\\", True), ("\u200b", True), ("\u202e", True), ("\xad", True)]
    + [("/", False), ("a", False), ("\xe9", False), ("%", False)],
)
def test_links_refuse_more(char: str, unsafe: bool) -> None:
    assert unsafe_in_link(char) is unsafe


def test_for_xml_keeps_what_xml_carries_and_drops_the_rest() -> None:
    stored = "Held\x0bsince \x00dawn\x07.\r\n\ufffe\uffff\ud800 \u202e\U0001f4e2 \u0645 <&]]>\t"
    assert for_xml(stored) == "Held\nsince dawn.\n \u202e\U0001f4e2 \u0645 <&]]>\t"
    every = "".join(chr(c) for c in range(0x110000))
    from xml.etree import ElementTree

    element = ElementTree.fromstring(f"<a>{for_xml(every).replace('&', '').replace('<', '')}</a>")
    assert element.text is not None and len(element.text) > 1_000_000
