"""What the i18n tests read: the catalogues, the msgids of the sources, the visible text of a page
and the untranslated text left in a template."""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import alerts.web
from alerts.web import i18n

WEB = Path(alerts.web.__file__).parent
#: Attributes a reader sees or hears.
SHOWN_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")
#: Text that is the same in every language: names of formats and services.
SAME_EVERYWHERE = {"CAP 1.2", "Atom", "RSS", "CSV", "TOML", "JSON", "HTML", "SSE", "Telegram", "Webhook"}


def catalogue(language: str) -> Catalog:
    """The ``language`` catalogue as shipped."""
    with (i18n.LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


@cache
def source_msgids() -> frozenset[str]:
    """Every msgid of the sources (the web's templates, ``N_``/``_`` in the Python of the whole
    package: errors and reasons are made below the web), as
    ``pybabel extract -F alerts/web/locales/babel.cfg -k N_ … alerts`` finds them."""
    found = extract_from_dir(
        str(WEB.parent),
        method_map=[("**/templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    )
    return frozenset(m if isinstance(m, str) else m[0] for _f, _l, m, _c, _x in found)


class _Visible(HTMLParser):
    """Text nodes and shown attributes, outside style/script and outside elements in another
    language than the page's (an alert's own text)."""

    def __init__(self, page_language: str) -> None:
        super().__init__()
        self.page_language = page_language
        self.stack: list[tuple[str, bool]] = []  # (tag, inside another language)
        self.pieces: list[str] = []

    def _foreign(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        lang = values.get("lang") if tag != "html" else None  # the page's own language is checked apart
        foreign = (lang is not None and lang != self.page_language) if lang is not None else self._foreign()
        if tag in ("style", "script"):
            foreign = True
        if not foreign:
            self.pieces.extend(v.strip() for k, v in attrs if k in SHOWN_ATTRIBUTES and v)
            if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
                self.pieces.append(str(values["value"]).strip())
        if tag not in ("br", "input", "meta", "link", "img", "hr", "col", "source", "wbr"):
            self.stack.append((tag, foreign))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if not self._foreign() and data.strip():
            self.pieces.append(" ".join(data.split()))


def visible_text(html: str, language: str) -> list[str]:
    """The pieces of text a reader of ``html`` sees in the page's ``language``."""
    parser = _Visible(language)
    parser.feed(html)
    return parser.pieces


_SLOT = re.compile(r"%\((\w+)\)[sdr]")


@cache
def _english_patterns(language: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The msgids with slots whose translation differs, as patterns a filled-in English text
    matches ("alert 5 does not exist"): a slot is any text; at least two words stay literal."""
    found = []
    for m in catalogue(language):
        if not (m.id and isinstance(m.id, str) and m.string and m.string != m.id and "%(" in m.id):
            continue
        literal = _SLOT.sub(" ", m.id)
        if len(re.findall(r"[A-Za-z]{2,}", literal)) < 2:
            continue
        parts = _SLOT.split(m.id)[::2]  # the literal text between the slots
        found.append((m.id, re.compile(".+?".join(re.escape(p) for p in parts), re.S)))
    return tuple(found)


def english_left(html: str, language: str, data: frozenset[str] = frozenset()) -> list[str]:
    """English msgids shown untranslated in a page rendered in ``language``: a piece of the
    page's text that is exactly a msgid whose translation differs from it, or an English msgid
    with slots filled in ("alert 5 does not exist"; parts joined by ``·`` are compared one by
    one); ``data``: values the test wrote (a user named "officer")."""
    translated = {m.id: m.string for m in catalogue(language) if m.id and isinstance(m.id, str)}
    english = {mid for mid, text in translated.items() if text and text != mid and "%(" not in mid}
    left = []
    for piece in visible_text(html, language):
        for part in {piece, *re.split(r"\s*[·|]\s*", piece), piece.rstrip(".:")}:
            if part in english and part not in SAME_EVERYWHERE and part not in data:
                left.append(part)
            left.extend(mid for mid, pattern in _english_patterns(language) if pattern.fullmatch(part))
    return sorted(set(left))


class _Untranslated(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.pieces: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self.skip += 1
        self.pieces.extend(v for k, v in attrs if k in SHOWN_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.pieces.append(data)


_JINJA = re.compile(r"\{#.*?#\}|\{%-?\s*trans\b.*?endtrans\s*-?%\}|\{\{.*?\}\}|\{%.*?%\}", re.S)


def untranslated(template: Path) -> list[str]:
    """Words in a template outside ``_()``/``{% trans %}`` and outside expressions: text a page
    would show in English whatever the language (format names excepted)."""
    source = _JINJA.sub(" ", template.read_text(encoding="utf-8"))
    parser = _Untranslated()
    parser.feed(source)
    words = []
    for piece in parser.pieces:
        text = " ".join(piece.split())
        for name in SAME_EVERYWHERE:
            text = text.replace(name, " ")
        if re.search(r"[A-Za-z]{2,}", text):
            words.append(text.strip())
    return words
