"""The one control-character policy for text people type or import.

Two kinds of field:

- **one-line fields** — names, titles, subjects, list names, header values. ``check_line``
  refuses any character of ``REFUSED_IN_LINE``; ``one_line`` folds them to a space where a
  value must be sent rather than refused (an email header).
- **multi-line text** — notes, response summaries, consent notes, case data. ``check_text``
  turns every kind of line break into ``\\n`` and refuses the rest of ``REFUSED_IN_LINE``
  (TAB is allowed).

What ``REFUSED_IN_LINE`` holds, and why:

- C0 controls U+0000–U+001F (TAB, LF and CR among them) and DEL U+007F: a line break in a
  header value adds a header (injection); NUL and the other C0 characters are invalid in XML
  1.0 (feeds, CAP) and mean nothing to a reader.
- C1 controls U+0080–U+009F, NEL U+0085 among them: invisible, and some mail and XML
  software treats NEL as a line break.
- U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: line breaks to Unicode, JavaScript
  and some mail clients.
- Bidirectional embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069: they
  reorder what is displayed, so a name or title can read differently from what it is
  ("Trojan Source", CVE-2021-42574), e.g. in the list a reviewer approves from. Plain
  right-to-left text needs none of them: the marks U+200E, U+200F and U+061C stay allowed,
  as do ZWJ/ZWNJ (needed in Persian, Indic scripts and emoji).
- Lone surrogates U+D800–U+DFFF: a JSON body can carry one, and it cannot be stored as UTF-8.
- Noncharacters U+FDD0–U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF,
  U+1FFFE…): Unicode reserves them for internal use, and U+FFFE and U+FFFF are invalid in
  XML 1.0 (a byte-swapped BOM reads as U+FFFE).

Word's manual line break (Shift+Enter) is U+000B: in multi-line text it becomes ``\\n``
like every other line break (CR LF, CR, VT, FF, NEL, U+2028, U+2029).

Text stored before a rule existed may still hold such characters: ``for_xml`` makes any text
safe to write into XML (feeds, CAP) by turning its line breaks into ``\\n`` and dropping every
character XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
import unicodedata

from alerts.core.errors import ValidationError

_C0_DEL = "\x00-\x1f\x7f"
_C1 = "\x80-\x9f"
_SEPARATORS = "\u2028\u2029"
_BIDI = "\u202a-\u202e\u2066-\u2069"
_SURROGATES = "\ud800-\udfff"
_NONCHARACTERS = "\ufdd0-\ufdef\ufffe\uffff" + "".join(
    chr(plane * 0x10000 + 0xFFFE) + chr(plane * 0x10000 + 0xFFFF) for plane in range(1, 17)
)
_NOT_TEXT = f"{_C0_DEL}{_C1}{_SEPARATORS}{_BIDI}{_SURROGATES}{_NONCHARACTERS}"

#: Characters a one-line field may not contain (see the module docstring for why).
REFUSED_IN_LINE = re.compile(f"[{_NOT_TEXT}]")
_REFUSED_RUN = re.compile(f"[{_NOT_TEXT}]+")
#: Every form of line break, each turned into "\n" in multi-line text.
LINE_BREAK = re.compile("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")
#: Characters multi-line text may not contain once its line breaks are "\n" (TAB and LF allowed).
REFUSED_IN_TEXT = re.compile(
    f"[\x00-\x08\x0b-\x1f\x7f{_C1}{_SEPARATORS}{_BIDI}{_SURROGATES}{_NONCHARACTERS}]"
)
#: What XML 1.0 cannot carry (its ``Char`` production: TAB, LF, CR and U+0020–U+10FFFF less the
#: surrogates, U+FFFE and U+FFFF).
NOT_IN_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _refuse(match: re.Match[str], field: str) -> ValidationError:
    char = match.group()
    position = match.start() + 1
    return ValidationError(
        f"{field}: control character U+{ord(char):04X} at position {position} is not allowed",
        details={"field": field, "character": f"U+{ord(char):04X}", "position": position},
    )


def check_line(value: str, field: str) -> str:
    """``value`` unchanged, or ValidationError naming ``field``, the character and its position (from 1)."""
    found = REFUSED_IN_LINE.search(value)
    if found is not None:
        raise _refuse(found, field)
    return value


def check_text(value: str, field: str) -> str:
    """Multi-line text with every line break as ``\\n``; ValidationError (as ``check_line``) for
    any other refused character. Positions count in the normalised text."""
    value = LINE_BREAK.sub("\n", value)
    found = REFUSED_IN_TEXT.search(value)
    if found is not None:
        raise _refuse(found, field)
    return value


def one_line(value: str) -> str:
    """``value`` with each run of refused characters (line breaks included) folded to one space,
    trimmed: for a header or a title built from text that was never checked."""
    return _REFUSED_RUN.sub(" ", value).strip()


def for_xml(value: str) -> str:
    """``value`` as XML 1.0 can carry it: every line break a ``\\n`` (Word's U+000B among them),
    any other character XML cannot hold dropped. For text that may predate ``check_text``;
    ElementTree writes such characters as they are, making the whole document unreadable."""
    return NOT_IN_XML.sub("", LINE_BREAK.sub("\n", value))


def unsafe_in_link(char: str) -> bool:
    """Whether a character may not appear in a link the service redirects to.

    Stricter than ``check_line``: every whitespace and control or format character (browsers
    drop some, so ``/\\t/x`` is ``//x``; CR/LF would break the Location header), and the
    backslash, which browsers read as a slash.
    """
    return (
        char.isspace()
        or char == "\\"
        or REFUSED_IN_LINE.match(char) is not None
        or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
    )


#: What a spreadsheet runs as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a quote first."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
