"""The JSON Schema the API publishes, and the one check that enforces it.

Every request body and query parameter is checked by ``check`` against the very schema the
OpenAPI document shows, so the server refuses exactly what the document says is invalid. The
actions behind the API check the same rules again (the CLI, the pages and the CSV import reach
them without a schema); the building blocks below are derived from those rules' own constants
(``core.text``'s refused characters, ``core.telegram``'s address syntax, ``contacts.fields``'
lengths and languages), so the document can only be stricter than an action, never looser.

``check`` implements the subset of JSON Schema 2020-12 used here: ``type``, ``enum``,
``const``, ``allOf``, ``anyOf``, ``oneOf``, ``not``, string ``minLength``/``maxLength``/``pattern``/
``format`` (``date``, ``date-time``, ``email``), number ``minimum``/``maximum``, array
``minItems``/``maxItems``/``items``, object ``required``/``properties``/
``additionalProperties``/``propertyNames``/``minProperties``, and ``x-refusal`` (below). A
refusal is a 422 naming the field.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import date
from typing import Any

from alerts.contacts.fields import ISO_639_1, LIST_NAME_MAX, clean_email
from alerts.core.clock import parse_when
from alerts.core.errors import ValidationError
from alerts.core.schemas import EMAIL_ADDRESS, is_text_pattern
from alerts.core.schemas import PATH as PATH
from alerts.core.schemas import REFUSAL as REFUSAL
from alerts.core.schemas import TELEGRAM as TELEGRAM
from alerts.core.schemas import Schema as Schema
from alerts.core.schemas import line as line
from alerts.core.schemas import text as text
from alerts.core.text import check_line, check_text

#: A list name (``contacts.fields.clean_list_name``): one line, no ``;``.
LIST_NAME = line(LIST_NAME_MAX, refuse=";")
#: A contact's language (``contacts.fields``): an ISO 639-1 code.
LANGUAGE_CODE: Schema = {"type": "string", "enum": sorted(ISO_639_1)}


#: A time (RFC 3339; one without an offset is taken as UTC).
TIME: Schema = {"type": "string", "format": "date-time", "maxLength": 64}
EMAIL: Schema = {
    "anyOf": [{"type": "null"}, {"const": ""}, EMAIL_ADDRESS],
    "description": "an email address; empty or null: none",
}

# --------------------------------------------------------------------------- the check


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"schema type {kind!r} is not supported")  # a programming error


_KIND_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a JSON object",
    "null": "null",
}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _fail(where: str, problem: str) -> ValidationError:
    where = where.removesuffix(": ")
    return ValidationError(f"{where}: {problem}.", details={"field": where})


def _inner(where: str, name: str) -> str:
    """How a field inside ``where`` is named: ``name`` in the body, ``where.name`` below it,
    ``prefix: name`` under a schema that names its fields so (``PATH``)."""
    if where == "body":
        return name
    return where + name if where.endswith(": ") else f"{where}.{name}"


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 is not true, 1.0 is 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _check_any_of(value: Any, options: list[Schema], where: str) -> None:
    errors: list[ValidationError] = []
    for option in options:
        try:
            check(value, option, where)
            return
        except ValidationError as exc:
            errors.append(exc)
    # The most telling refusal: from an option that the value's type fits ("must be null" says
    # little) and whose constant fields it matches (the family it names, say).
    telling = [
        e
        for e, o in zip(errors, options, strict=True)
        if _fits_type(value, o) and not _other_branch(value, o)
    ]
    if telling:
        raise telling[-1]
    consts = _branch_constants(value, options)
    if consts is not None:
        key, allowed = consts
        inner = _inner(where, key)
        raise _fail(inner, f"{value.get(key)!r} is not one of {', '.join(map(str, allowed))}")
    raise errors[-1]


def _other_branch(value: Any, option: Schema) -> bool:
    """Whether ``value`` names another branch: a field ``option`` fixes with ``const`` differs."""
    if not isinstance(value, dict):
        return False
    return any(
        "const" in sub and name in value and not _equal(value[name], sub["const"])
        for name, sub in option.get("properties", {}).items()
    )


def _branch_constants(value: Any, options: list[Schema]) -> tuple[str, list[Any]] | None:
    """(field, its constants) when every option fixes the same field with ``const``."""
    names = [{n for n, sub in o.get("properties", {}).items() if "const" in sub} for o in options]
    common = set.intersection(*names) if names else set()
    if not isinstance(value, dict) or len(common) != 1:
        return None
    (name,) = common
    return name, [o["properties"][name]["const"] for o in options]


def _fits_type(value: Any, schema: Schema) -> bool:
    kinds = schema.get("type")
    if "const" in schema:
        return type(value) is type(schema["const"])
    if kinds is None:
        return True
    return any(_type_ok(value, k) for k in ([kinds] if isinstance(kinds, str) else kinds))


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as JSON Schema (ECMA-262) reads it: a final ``$`` ends the string, where
    Python's would also match before a trailing newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


def _mismatch(value: str, pattern: str, where: str) -> ValidationError:
    """The refusal of a string that does not match ``pattern``, in words where we can."""
    try:  # a refused character: the very words of core.text, as the actions say them
        (check_text if is_text_pattern(pattern) else check_line)(value, where)
    except ValidationError as exc:
        return exc
    if pattern.startswith("^[^") and not value.strip():
        return _fail(where, "must not be empty")
    if ";" in value and ";" in pattern:
        return _fail(where, "may not contain ';'")
    return _fail(where, f"{value!r} does not match {pattern}")


def _check_string(value: str, schema: Schema, where: str) -> None:
    if len(value) > schema.get("maxLength", math.inf):
        raise _fail(where, f"longer than {schema['maxLength']} characters")
    if len(value) < schema.get("minLength", 0):
        minimum = schema["minLength"]
        raise _fail(where, "must not be empty" if minimum == 1 else f"shorter than {minimum} characters")
    if "pattern" in schema and not _regex(schema["pattern"]).search(value):
        raise _mismatch(value, schema["pattern"], where)
    fmt = schema.get("format")
    if fmt == "date-time":
        parse_when(value, field=where)
    elif fmt == "date":
        try:
            if not _DATE.match(value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            raise _fail(where, f"{value!r} is not a date (YYYY-MM-DD)") from None
    elif fmt == "email":
        try:
            clean_email(value)
        except ValidationError as exc:
            raise _fail(where, exc.message.removeprefix("email ")) from None


def _check_object(value: dict[str, Any], schema: Schema, where: str) -> None:
    props: dict[str, Schema] = schema.get("properties", {})

    def inner(name: str) -> str:
        return _inner(where, name)

    for name in schema.get("required", ()):
        if name not in value:
            raise ValidationError(f"{inner(name)}: is required.", details={"field": inner(name)})
    if len(value) < schema.get("minProperties", 0):
        raise _fail(where, "must not be empty")
    if "propertyNames" in schema:
        for name in value:
            check(name, schema["propertyNames"], f"{where} key {name!r}")
    extra = schema.get("additionalProperties", True)
    if extra is False:
        unknown = sorted(set(value) - set(props))
        if unknown:
            raise ValidationError(
                f"{inner(unknown[0])}: unknown field; fields are {', '.join(sorted(props))}.",
                details={"field": inner(unknown[0])},
            )
    for name, item in value.items():
        sub = props.get(name, extra if isinstance(extra, dict) else None)
        if sub is not None:
            check(item, sub, inner(name))


def _fits(value: Any, schema: Schema, where: str) -> bool:
    try:
        check(value, schema, where)
    except ValidationError:
        return False
    return True


def _check_one_of(value: Any, options: list[Schema], where: str) -> None:
    fits = 0
    for option in options:
        try:
            check(value, option, where)
            fits += 1
        except ValidationError:
            continue
    if fits != 1:
        raise _fail(where, f"fits {fits} of the {len(options)} forms it may take; exactly one is needed")


def check(value: Any, schema: Schema, where: str) -> Any:
    """``value`` if it fits ``schema`` (the subset above); ValidationError (422) naming ``where``."""
    if PATH in schema:
        where = f"{schema[PATH]}: "
    if "const" in schema and not _equal(value, schema["const"]):
        raise _fail(where, f"must be {schema['const']!r}")
    kinds = schema.get("type")
    if kinds is not None:
        options = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_type_ok(value, k) for k in options):
            raise _fail(where, "must be " + " or ".join(_KIND_WORDS[k] for k in options))
    if value is None:
        return value
    if "enum" in schema and not any(_equal(value, v) for v in schema["enum"]):
        allowed = ", ".join(str(v) for v in schema["enum"] if v not in (None, ""))
        if not allowed:
            raise _fail(where, f"{value!r} is not allowed here; leave it empty")
        raise _fail(where, f"{value!r} is not one of {allowed}")
    if isinstance(value, str):
        _check_string(value, schema, where)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            raise _fail(
                where, f"must be between {schema.get('minimum', '-∞')} and {schema.get('maximum', '∞')}"
            )
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", math.inf):
            raise _fail(where, f"more than {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            raise _fail(where, f"needs at least {schema['minItems']} item(s)")
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        _check_object(value, schema, where)
    # last, so that a field's own refusal (type, required, unknown) is the one reported
    for part in schema.get("allOf", ()):
        check(value, part, where)
    try:
        if "not" in schema and _fits(value, schema["not"], where):
            raise _fail(where, f"{value!r} is not allowed here")
        if "oneOf" in schema:
            _check_one_of(value, schema["oneOf"], where)
        if "anyOf" in schema:
            _check_any_of(value, schema["anyOf"], where)
    except ValidationError:
        refusal = schema.get(REFUSAL)
        if refusal is None:
            raise
        raise ValidationError(refusal["message"], details={"field": refusal["field"]}) from None
    return value
