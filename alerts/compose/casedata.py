"""Case data: the variables a template family declares, and their validation.

A family declares its variables in ``templates/<family>/family.toml``::

    [variables.defender]
    type = "string"          # string, text, url, date, list, authorities, contact
    required = true
    description = "Full name of the defender, as they agreed to be named"

``string`` and ``text`` values (and ``list`` values, and an authority's title and form of address) are
either one string or a per-language table ``{en = "...", fr = "..."}``; a table must hold
English, the fallback. ``validate()`` returns JSON-ready data (dates as ``YYYY-MM-DD``);
``localize()`` picks one language and turns dates into ``datetime.date`` for templates.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from alerts.core.errors import ValidationError
from alerts.core.msgids import N_
from alerts.core.schemas import EMAIL_ADDRESS, PATH, text

TYPES = ("string", "text", "url", "date", "list", "authorities", "contact")
FALLBACK_LANGUAGE = "en"
MAX_STRING = 2_000  # characters in a string, url or list item
MAX_TEXT = 20_000  # characters in a text
MAX_ITEMS = 50  # entries in a list or authorities
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AUTHORITY_FIELDS = {"name": True, "title": True, "form_of_address": True, "language": False}
_CONTACT_FIELDS = {"name": True, "email": True, "phone": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableSpec:
    """One variable of a template family."""

    name: str
    type: str
    required: bool = False
    description: str = ""


def _fail(path: str, problem: str) -> ValidationError:
    return ValidationError(f"case data: {problem.format(path=repr(path))}", details={"variable": path})


_NOT_URL = N_("case data: %(path)s must be an http(s) URL, got %(text)r")
_TOO_MANY = N_("case data: %(path)s has %(n)s entries, at most %(limit)s")


def _said(path: str, msgid: str, **values: Any) -> ValidationError:
    """A refusal an officer reads beside a field of the case form (translated on the pages)."""
    return ValidationError.said(msgid, details={"variable": path}, path=repr(path), **values)


def _type_name(value: object) -> str:
    return type(value).__name__


def _string(path: str, value: object, limit: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"{{path}} must be a string, got {_type_name(value)}")
    text = value.strip()
    if not text:
        raise _said(path, N_("case data: %(path)s must not be empty"))
    if len(text) > limit:
        raise _said(
            path,
            N_("case data: %(path)s is too long (%(n)s characters, at most %(limit)s)"),
            n=len(text),
            limit=limit,
        )
    return text


def _per_language(path: str, value: object, check: Callable[[str, object], Any]) -> Any:
    """A single value, or a table language → value that includes English."""
    if not isinstance(value, Mapping):
        return check(path, value)
    if not value:
        raise _said(path, N_("case data: %(path)s must not be empty"))
    for language in value:
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            raise _fail(path, f"{{path}} has {language!r}, which is not a language code like 'en' or 'fr'")
    if FALLBACK_LANGUAGE not in value:
        raise _said(
            path,
            N_("case data: %(path)s must have an English ('en') version, the fallback for other languages"),
        )
    return {language: check(f"{path}.{language}", item) for language, item in value.items()}


def _text(path: str, value: object) -> Any:
    return _per_language(path, value, lambda p, v: _string(p, v, MAX_TEXT))


def _url(path: str, value: object) -> str:
    text = _string(path, value)
    try:
        parts = urlsplit(text)
    except ValueError:  # "http://[x": an unclosed IPv6 host
        raise _said(path, _NOT_URL, text=text) from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise _said(path, _NOT_URL, text=text)
    return text


def _date(path: str, value: object) -> str:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _said(path, N_("case data: %(path)s must be a date (YYYY-MM-DD), got %(value)r"), value=value)


def _strings(path: str, value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"{{path}} must be a list of strings, got {_type_name(value)}")
    if len(value) > MAX_ITEMS:
        raise _said(path, _TOO_MANY, n=len(value), limit=MAX_ITEMS)
    return [_string(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _list(path: str, value: object) -> Any:
    return _per_language(path, value, _strings)


def _table(path: str, value: object, fields: Mapping[str, bool]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"{{path}} must be a table, got {_type_name(value)}")
    for key in value:
        if key not in fields:
            raise _fail(f"{path}.{key}", "unknown field {path}")
    for key, required in fields.items():
        if required and value.get(key) in (None, ""):
            raise _said(f"{path}.{key}", N_("case data: %(path)s is required"))
    return {key: item for key, item in value.items() if item is not None}


def _authorities(path: str, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"{{path}} must be a list of tables, got {_type_name(value)}")
    if len(value) > MAX_ITEMS:
        raise _said(path, _TOO_MANY, n=len(value), limit=MAX_ITEMS)
    result = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        entry = _table(where, item, _AUTHORITY_FIELDS)
        authority = {"name": _string(f"{where}.name", entry["name"])}
        for key in ("title", "form_of_address"):
            authority[key] = _per_language(f"{where}.{key}", entry[key], _string)
        if "language" in entry:
            language = _string(f"{where}.language", entry["language"])
            if not _LANGUAGE.match(language):
                raise _fail(
                    f"{where}.language", f"{{path}} must be a language code like 'en', got {language!r}"
                )
            authority["language"] = language
        result.append(authority)
    return result


def _contact(path: str, value: object) -> dict[str, str]:
    entry = _table(path, value, _CONTACT_FIELDS)
    contact = {key: _string(f"{path}.{key}", item) for key, item in entry.items()}
    from email_validator import EmailNotValidError, validate_email  # not for commands that only read

    try:
        contact["email"] = validate_email(contact["email"], check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise _fail(f"{path}.email", f"{{path}} is not a valid email address: {exc}") from exc
    return contact


def _line(path: str, value: object) -> Any:
    return _per_language(path, value, _string)


_CHECKS: dict[str, Callable[[str, object], Any]] = {
    "string": _line,
    "text": _text,
    "url": _url,
    "date": _date,
    "list": _list,
    "authorities": _authorities,
    "contact": _contact,
}


def validate(variables: Mapping[str, VariableSpec], data: Mapping[str, Any]) -> dict[str, Any]:
    """Check case data against a family's variables; returns the cleaned, JSON-ready data."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"case data: must be a table of variables, got {_type_name(data)}", details={"variable": None}
        )
    for key in data:
        if key not in variables:
            details: dict[str, Any] = {"variable": key}
            close = difflib.get_close_matches(str(key), list(variables), n=1)
            if close:
                details["did_you_mean"] = close[0]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValidationError(f"case data: unknown variable {key!r}{hint}", details=details)
    cleaned: dict[str, Any] = {}
    for name, spec in variables.items():
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()) or value in ([], {}):
            if spec.required:
                raise _said(name, N_("case data: %(path)s is required"))
            continue
        cleaned[name] = _CHECKS[spec.type](name, value)
    return cleaned


def pick(value: Any, language: str) -> Any:
    """One language's version of a per-language value, falling back to English."""
    if isinstance(value, Mapping):
        return value.get(language, value[FALLBACK_LANGUAGE])
    return value


def case_country(data: Mapping[str, Any]) -> str | None:
    """The case's country as subscribers' country topics name it (in English): the
    ``country`` value, or its English version when it is given per language."""
    value = data.get("country")
    if isinstance(value, Mapping):
        value = value.get(FALLBACK_LANGUAGE)
    return (value.strip() or None) if isinstance(value, str) else None


def localize(
    variables: Mapping[str, VariableSpec], cleaned: Mapping[str, Any], language: str
) -> dict[str, Any]:
    """Template values for one language: absent variables are None, dates are dates."""
    result: dict[str, Any] = {}
    for name, spec in variables.items():
        value = cleaned.get(name)
        if value is None:
            result[name] = None
        elif spec.type == "date":
            result[name] = date.fromisoformat(value)
        elif spec.type == "authorities":
            result[name] = [
                {key: pick(entry.get(key), language) for key in _AUTHORITY_FIELDS} for entry in value
            ]
        elif spec.type == "contact":  # an optional field left out is there, as None
            result[name] = {key: value.get(key) for key in _CONTACT_FIELDS}
        elif spec.type in ("string", "text", "list"):
            result[name] = pick(value, language)
        else:
            result[name] = value
    return result


# --------------------------------------------------------------------------- the published form

#: A language key of a per-language table (``_LANGUAGE``, in JSON Schema's regex dialect).
LANGUAGE_KEY_PATTERN = "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
#: An http(s) URL as ``_url`` takes it: a host of URL characters, then no whitespace.
URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=:@-]+(?:[/?#][!-~]*)?$"
#: What ``validate`` takes as "not given" for an optional variable.
_ABSENT: list[dict[str, Any]] = [
    {"type": "null"},
    {"type": "string", "pattern": "^[\\u0020\\u0009-\\u000d]*$"},
    {"const": []},
    {"const": {}},
]


def _table_of(item: dict[str, Any]) -> dict[str, Any]:
    """A per-language table of ``item``: language → value, English required."""
    return {
        "type": "object",
        "required": [FALLBACK_LANGUAGE],
        "propertyNames": {"type": "string", "pattern": LANGUAGE_KEY_PATTERN},
        "additionalProperties": item,
    }


def _strict_table(fields: Mapping[str, bool], schemas: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [k for k, required in fields.items() if required],
        "properties": {
            k: schemas[k] if required else {"anyOf": [{"type": "null"}, schemas[k]]}
            for k, required in fields.items()
        },
    }


def _value_schema(kind: str) -> dict[str, Any]:
    # Every string of case data is stored as multi-line text (compose.drafts: check_text).
    one_line = text(MAX_STRING, blank=False)
    strings = {"type": "array", "items": one_line, "maxItems": MAX_ITEMS}
    per_line = {"anyOf": [one_line, _table_of(one_line)]}
    if kind == "string":
        return per_line
    if kind == "text":
        long_text = text(MAX_TEXT, blank=False)
        return {"anyOf": [long_text, _table_of(long_text)]}
    if kind == "url":
        return {"type": "string", "maxLength": MAX_STRING, "pattern": URL_PATTERN}
    if kind == "date":
        return {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    if kind == "list":
        return {"anyOf": [{**strings, "minItems": 1}, _table_of(strings)]}
    if kind == "authorities":
        language = {"type": "string", "pattern": LANGUAGE_KEY_PATTERN}
        authority = _strict_table(
            _AUTHORITY_FIELDS,
            {"name": one_line, "title": per_line, "form_of_address": per_line, "language": language},
        )
        return {"type": "array", "items": authority, "minItems": 1, "maxItems": MAX_ITEMS}
    if kind == "contact":
        email = EMAIL_ADDRESS
        return _strict_table(_CONTACT_FIELDS, {"name": one_line, "email": email, "phone": one_line})
    raise ValueError(f"variable type {kind!r} has no schema")  # TYPES and this list go together


def json_schema(variables: Mapping[str, VariableSpec]) -> dict[str, Any]:
    """The JSON Schema of a family's case data: what ``validate`` accepts, or less (the API
    checks it first, so its document says exactly what the server takes)."""
    properties: dict[str, Any] = {}
    for name, spec in variables.items():
        schema = _value_schema(spec.type)
        if not spec.required:
            schema = {"anyOf": [*_ABSENT, schema]}
        properties[name] = {**schema, "description": spec.description} if spec.description else schema
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name, spec in variables.items() if spec.required],
        "properties": properties,
        PATH: "case data",  # refusals name "case data: facts.en[2]", as validate and drafts do
    }
