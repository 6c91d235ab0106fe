"""The case editor as a form, generated from a template family's declared variables.

Each variable becomes inputs named after it, so that the form and the case data map one to one
(and a validation error's path, ``facts.fr[2]``, names the input it is about):

- ``string``, ``url``, ``date``: one input, ``c.NAME``;
- ``text`` and ``list``: one per language, ``c.NAME.LANG`` (a list repeats it, one input per
  entry, with one empty entry to add another); English is shown beside the other languages;
- ``authorities``: rows ``c.NAME.I.name``, ``….title.LANG``, ``….form_of_address.LANG``,
  ``….language`` (one empty row to add another); names come with a list of the directory's
  authorities to pick from;
- ``contact``: ``c.NAME.name``, ``c.NAME.email``, ``c.NAME.phone``.

``values`` turns case data into what the form shows; ``read`` turns a submitted form back into
case data (empty inputs are left out, so the family's validation says what is missing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multidict import MultiDictProxy

from alerts.compose.casedata import FALLBACK_LANGUAGE, MAX_ITEMS, VariableSpec

PREFIX = "c."
AUTHORITY_TEXTS = ("title", "form_of_address")
CONTACT_FIELDS = ("name", "email", "phone")


@dataclass(frozen=True, slots=True)
class Field:
    """One variable as the form shows it."""

    name: str
    type: str
    required: bool
    description: str
    per_language: bool

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


def fields(variables: Mapping[str, VariableSpec], case: Mapping[str, Any]) -> list[Field]:
    """The form's fields in the family's order (a ``string`` is per language only if it is already)."""
    return [
        Field(
            name=spec.name,
            type=spec.type,
            required=spec.required,
            description=spec.description,
            per_language=spec.type in ("text", "list")
            or (spec.type == "string" and isinstance(case.get(spec.name), Mapping)),
        )
        for spec in variables.values()
    ]


def _by_language(value: Any, languages: Sequence[str]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {lang: value.get(lang) for lang in languages}
    return {lang: (value if lang == FALLBACK_LANGUAGE else None) for lang in languages}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def values(fields_: Sequence[Field], case: Mapping[str, Any], languages: Sequence[str]) -> dict[str, Any]:
    """What each input shows for ``case`` (strings; lists end with one empty entry to add one)."""
    out: dict[str, Any] = {}
    for f in fields_:
        value = case.get(f.name)
        if f.type == "authorities":
            rows = [
                {
                    "name": _text(a.get("name")),
                    "language": _text(a.get("language")),
                    **{
                        key: {k: _text(v) for k, v in _by_language(a.get(key), languages).items()}
                        for key in AUTHORITY_TEXTS
                    },
                }
                for a in (value or [])
                if isinstance(a, Mapping)
            ]
            blank = {
                "name": "",
                "language": "",
                **{key: dict.fromkeys(languages, "") for key in AUTHORITY_TEXTS},
            }
            out[f.name] = [*rows, blank]
        elif f.type == "contact":
            contact = value if isinstance(value, Mapping) else {}
            out[f.name] = {key: _text(contact.get(key)) for key in CONTACT_FIELDS}
        elif f.type == "list":
            out[f.name] = {
                lang: [*(_text(item) for item in (items or [])), ""]
                for lang, items in _by_language(value, languages).items()
            }
        elif f.per_language:
            out[f.name] = {lang: _text(v) for lang, v in _by_language(value, languages).items()}
        else:
            out[f.name] = _text(value)
    return out


def _one(form: MultiDictProxy[Any], name: str) -> str:
    return str(form.get(name, "")).strip()


def _rows(form: MultiDictProxy[Any], key: str) -> int:
    """How many authority rows the form sent (``KEY.rows``, bounded like the family's lists)."""
    raw = str(form.get(f"{key}.rows", "0"))
    return min(int(raw), MAX_ITEMS + 1) if raw.isascii() and raw.isdigit() and len(raw) < 4 else 0


def _per_language(found: dict[str, Any]) -> Any:
    """``{en: x}`` alone reads as ``x``; nothing at all as None."""
    kept = {lang: v for lang, v in found.items() if v}
    if not kept:
        return None
    if list(kept) == [FALLBACK_LANGUAGE]:
        return kept[FALLBACK_LANGUAGE]
    return kept


def read(fields_: Sequence[Field], form: MultiDictProxy[Any], languages: Sequence[str]) -> dict[str, Any]:
    """The case data a submitted form holds (empty inputs left out)."""
    case: dict[str, Any] = {}
    for f in fields_:
        key = PREFIX + f.name
        value: Any
        if f.type == "authorities":
            rows = []
            for i in range(_rows(form, key)):
                row = f"{key}.{i}"
                entry: dict[str, Any] = {"name": _one(form, f"{row}.name")}
                for text in AUTHORITY_TEXTS:
                    entry[text] = _per_language(
                        {lang: _one(form, f"{row}.{text}.{lang}") for lang in languages}
                    )
                if _one(form, f"{row}.language"):
                    entry["language"] = _one(form, f"{row}.language")
                if any(v for v in entry.values()):
                    rows.append({k: v for k, v in entry.items() if v})
            value = rows or None
        elif f.type == "contact":
            contact = {k: _one(form, f"{key}.{k}") for k in CONTACT_FIELDS}
            value = {k: v for k, v in contact.items() if v} or None
        elif f.type == "list":
            value = _per_language(
                {
                    lang: [str(v).strip() for v in form.getall(f"{key}.{lang}", []) if str(v).strip()]
                    for lang in languages
                }
            )
        elif f.per_language or any(f"{key}.{lang}" in form for lang in languages):
            value = _per_language({lang: _one(form, f"{key}.{lang}") for lang in languages})
        else:
            value = _one(form, key) or None
        if value is not None:
            case[f.name] = value
    return case


def error_language(variable: str | None) -> str:
    """The language a validation error's path is about (``facts.fr[2]`` → ``fr``; "" if none):
    the form opens that language's tab."""
    parts = (variable or "").replace("[", ".").replace("]", "").split(".")
    return next((p for p in reversed(parts[1:]) if p.isalpha() and p.islower() and len(p) <= 3), "")


def error_field(variable: str | None) -> str:
    """The input a validation error's path is about: ``facts.fr[2]`` → ``facts`` (the field)."""
    if not variable:
        return ""
    return variable.split(".")[0].split("[")[0]
