"""The one validator of contact fields, shared by the CSV import, the CLI and the API.

Every refusal is a ``ValidationError`` whose message names the field (the column, in a CSV)
and what is wrong, e.g. ``kind 'minister' is not one of authority, media, press, partner,
public``; its ``details["field"]`` names the field too. Messages never repeat a whole row.
"""

from __future__ import annotations

from collections.abc import Mapping

from alerts.core.errors import ValidationError
from alerts.core.msgids import N_
from alerts.core.states import ContactKind
from alerts.core.telegram import check_address
from alerts.core.text import check_line

#: Text fields of a contact, in CSV column order (``title`` and ``form_of_address`` optional there).
TEXT_FIELDS = (
    "name",
    "email",
    "telegram",
    "kind",
    "language",
    "organisation",
    "country",
    "title",
    "form_of_address",
)
MAX_LENGTHS = {
    "name": 200,
    "email": 320,
    "telegram": 64,
    "kind": 200,
    "language": 200,
    "organisation": 200,
    "country": 64,
    "title": 200,
    "form_of_address": 200,
}
LIST_NAME_MAX = 100
DEFAULT_LANGUAGE = "en"
KINDS = tuple(k.value for k in ContactKind)
STATUSES = ("active", "pending", "unsubscribed")  # "erased" is set by erasure only

# ISO 639-1 (two-letter) language codes.
ISO_639_1 = frozenset(
    {
        "aa",
        "ab",
        "ae",
        "af",
        "ak",
        "am",
        "an",
        "ar",
        "as",
        "av",
        "ay",
        "az",
        "ba",
        "be",
        "bg",
        "bh",
        "bi",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "ce",
        "ch",
        "co",
        "cr",
        "cs",
        "cu",
        "cv",
        "cy",
        "da",
        "de",
        "dv",
        "dz",
        "ee",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "ff",
        "fi",
        "fj",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gn",
        "gu",
        "gv",
        "ha",
        "he",
        "hi",
        "ho",
        "hr",
        "ht",
        "hu",
        "hy",
        "hz",
        "ia",
        "id",
        "ie",
        "ig",
        "ii",
        "ik",
        "io",
        "is",
        "it",
        "iu",
        "ja",
        "jv",
        "ka",
        "kg",
        "ki",
        "kj",
        "kk",
        "kl",
        "km",
        "kn",
        "ko",
        "kr",
        "ks",
        "ku",
        "kv",
        "kw",
        "ky",
        "la",
        "lb",
        "lg",
        "li",
        "ln",
        "lo",
        "lt",
        "lu",
        "lv",
        "mg",
        "mh",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "na",
        "nb",
        "nd",
        "ne",
        "ng",
        "nl",
        "nn",
        "no",
        "nr",
        "nv",
        "ny",
        "oc",
        "oj",
        "om",
        "or",
        "os",
        "pa",
        "pi",
        "pl",
        "ps",
        "pt",
        "qu",
        "rm",
        "rn",
        "ro",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sq",
        "sr",
        "ss",
        "st",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "ti",
        "tk",
        "tl",
        "tn",
        "to",
        "tr",
        "ts",
        "tt",
        "tw",
        "ty",
        "ug",
        "uk",
        "ur",
        "uz",
        "ve",
        "vi",
        "vo",
        "wa",
        "wo",
        "xh",
        "yi",
        "yo",
        "za",
        "zh",
        "zu",
    }
)


def _text(field: str, value: str | None) -> str | None:
    """Trimmed text, None when empty; refuses control characters and over-long values."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", details={"field": field})
    value = value.strip()
    if not value:
        return None
    check_line(value, field)
    limit = MAX_LENGTHS.get(field, LIST_NAME_MAX)
    if len(value) > limit:
        raise ValidationError.said(
            N_("%(field)s is longer than %(n)s characters"), details={"field": field}, field=field, n=limit
        )
    return value


def clean_email(value: str) -> str:
    """The normalized form of an email address, or ValidationError naming the problem."""
    from email_validator import EmailNotValidError, validate_email  # not for commands that only read

    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError.said(
            N_("email is not a valid address: %(reason)s"), details={"field": "email"}, reason=str(exc)
        ) from None
    if len(normalized) > MAX_LENGTHS["email"]:
        raise ValidationError.said(
            N_("%(field)s is longer than %(n)s characters"),
            details={"field": "email"},
            field="email",
            n=MAX_LENGTHS["email"],
        )
    return normalized


def clean_fields(raw: Mapping[str, str | None], *, complete: bool) -> dict[str, str | None]:
    """Validate the text fields present in ``raw``; empty values come back as None.

    With ``complete`` (a new contact, a CSV row) the fields a contact needs are required:
    ``name``, ``kind``, and an ``email`` or a ``telegram``. Defaults (language "en") are
    applied by whoever creates the contact, so that an empty value never overwrites a known
    one on update. When ``email`` is given the result also holds its ``email_key``.
    """
    for field in raw:
        if field not in MAX_LENGTHS:
            raise ValidationError(f"unknown field {field!r}", details={"field": field})
    out: dict[str, str | None] = {}
    for field in TEXT_FIELDS:
        if field in raw:
            out[field] = _text(field, raw[field])
    if complete:
        if not out.get("name"):
            raise ValidationError.said(N_("name is required"), details={"field": "name"})
        if not out.get("email") and not out.get("telegram"):
            raise ValidationError.said(N_("an email or a telegram is required"), details={"field": "email"})
        if not out.get("kind"):
            raise ValidationError.said(
                N_("kind is required (one of %(kinds)s)"), details={"field": "kind"}, kinds=", ".join(KINDS)
            )
    email = out.get("email")
    if email is not None:
        email = clean_email(email)
        out["email"] = email
        out["email_key"] = email.lower()
    elif "email" in out:
        out["email_key"] = None
    telegram = out.get("telegram")
    if telegram is not None:
        out["telegram"] = check_address(telegram)  # the syntax the Bot API accepts
    kind = out.get("kind")
    if kind is not None:
        kind = kind.lower()
        if kind not in KINDS:
            raise ValidationError(
                f"kind {out['kind']!r} is not one of {', '.join(KINDS)}", details={"field": "kind"}
            )
        out["kind"] = kind
    language = out.get("language")
    if language is not None:
        language = language.lower()
        if language not in ISO_639_1:
            raise ValidationError(
                f"language {out['language']!r} is not a two-letter ISO 639-1 code",
                details={"field": "language"},
            )
        out["language"] = language
    return out


def parse_list_names(text: str | None) -> list[str]:
    """``;``-separated list names, trimmed, empties ignored, duplicates dropped, order kept."""
    names: list[str] = []
    for part in (text or "").split(";"):
        name = clean_list_name(part, required=False)
        if name and name not in names:
            names.append(name)
    return names


def clean_list_name(name: str, *, required: bool = True) -> str:
    """A list name, trimmed: at most 100 characters, no control characters and no ``;``."""
    value = _text("lists", name) or ""
    if ";" in value:
        raise ValidationError("a list name may not contain ';'", details={"field": "lists"})
    if required and not value:
        raise ValidationError("list name is empty", details={"field": "lists"})
    return value


def clean_status(value: str) -> str:
    """A contact status a user may set: active, pending or unsubscribed."""
    if value not in STATUSES:
        raise ValidationError(
            f"status {value!r} is not one of {', '.join(STATUSES)}", details={"field": "status"}
        )
    return value


def clean_names(field: str, values: object, *, allowed: tuple[str, ...] | None = None) -> list[str] | None:
    """A list of short names (channels, topics); None stays None (meaning "all")."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValidationError(f"{field} must be a list of names", details={"field": field})
    out: list[str] = []
    for value in values:
        name = value.strip()
        if not name or len(name) > LIST_NAME_MAX:
            raise ValidationError(f"{field} has an invalid entry", details={"field": field})
        check_line(name, field)
        if allowed is not None and name not in allowed:
            raise ValidationError(
                f"{field}: {name!r} is not one of {', '.join(allowed)}", details={"field": field}
            )
        if name not in out:
            out.append(name)
    return out
