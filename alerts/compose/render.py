"""Alert rendering: template families, per-language catalogues and the sandboxed renderer.

A family is a folder under ``templates/`` (``urgent-appeal``, ``update``, ``closure``)::

    family.toml           description, the extra values it needs, its variables (alerts.compose.casedata)
    example.toml          a complete fictional case, used by the demo and the tests
    messages/<lang>.toml  the family's sentences in one language (merged over _base/messages)
    subject.txt.j2  body.txt.j2  body.html.j2  telegram.html.j2  (and any _base layout to override:
    email.txt.j2  email.html.j2  press.txt.j2  press.html.j2)

One template per channel serves every audience: the audience picks a ``form`` (authority →
``appeal``, media/press → ``release``, partner/public → ``action``) and the language picks a
catalogue ``t``; the templates hold structure, the catalogues hold words. A language the family
has no catalogue for falls back to English, and ``RenderedContent.language`` says which was used.
Templates run in :mod:`alerts.compose.sandbox`; case data is never evaluated, and is escaped in HTML and
Telegram output.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    PrefixLoader,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    pass_eval_context,
)
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import Markup, escape

from alerts.compose import casedata
from alerts.compose.casedata import FALLBACK_LANGUAGE, VariableSpec
from alerts.compose.families import default_templates_dir, find_families
from alerts.compose.sandbox import AlertSandbox, render_metered
from alerts.core.channels import ALL
from alerts.core.errors import NotFound, TemplateError, ValidationError
from alerts.core.states import ContactKind
from alerts.core.telegram import MESSAGE_LIMIT
from alerts.core.types import RenderedContent

logger = logging.getLogger(__name__)

CHANNELS = tuple(c.value for c in ALL)
FORMS = {
    ContactKind.AUTHORITY: "appeal",
    ContactKind.MEDIA: "release",
    ContactKind.PRESS: "release",
    ContactKind.PARTNER: "action",
    ContactKind.PUBLIC: "action",
}
EXTRA_KEYS = ("alert_title", "alert_url", "embargo_until", "original")
TELEGRAM_LIMIT = MESSAGE_LIMIT  # one message: UTF-16 code units after entity parsing
#: The longest Telegram form kept whole, counted in the HTML (tags included): the channel sends
#: a form longer than one message in numbered parts (alerts.core.telegram.split_message), and
#: only a form longer than this (case data pasted by the page) is shortened, with a link to the
#: full alert, so that no chat gets dozens of parts.
TELEGRAM_BUDGET = 8 * MESSAGE_LIMIT
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^>]*>")


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyInfo:
    """What a template family needs and offers."""

    name: str
    description: str
    variables: Mapping[str, VariableSpec]
    languages: tuple[str, ...]
    requires: tuple[str, ...] = ()  # keys of ``extra`` the family cannot render without


def _fill_text(message: str, values: Mapping[str, Any], convert: Any = str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise TemplateError(f"message {message!r} needs a value for {match.group(1)!r}")
        return str(convert(values[match.group(1)]))

    return _PLACEHOLDER.sub(value, str(convert(message)))


@pass_eval_context
def _fill(eval_ctx: EvalContext, message: str, **values: Any) -> str:
    """``{{ t.key|fill(name=...) }}``: put values into a catalogue sentence's ``{name}`` slots."""
    if eval_ctx.autoescape:
        return Markup(_fill_text(message, values, escape))
    return _fill_text(message, values)


@pass_context
def _longdate(context: Context, value: date | str) -> str:
    """``{{ case.date|longdate }}``: a date written out in the catalogue's language."""
    day = value if isinstance(value, date) else date.fromisoformat(str(value))
    t = context["t"]
    return _fill_text(
        t["date_format"], {"day": day.day, "month": t["months"][day.month - 1], "year": day.year}
    )


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _close_open_tags(html: str) -> str:
    stack: list[str] = []
    for match in _TAG.finditer(html):
        closing, tag = match.group(1), match.group(2).lower()
        if not closing:
            stack.append(tag)
        elif tag in stack:
            del stack[len(stack) - 1 - stack[::-1].index(tag) :]
    return "".join(f"</{tag}>" for tag in reversed(stack))


def _tidy(text: str) -> str:
    """At most one blank line in a row, no trailing spaces, one final newline."""
    lines = [line.rstrip() for line in _BLANK_LINES.sub("\n\n", text).strip("\n").split("\n")]
    return "\n".join(lines) + "\n"


def fit_telegram(html: str, *, more: str, limit: int = TELEGRAM_LIMIT) -> str:
    """Shorten Telegram HTML to ``limit``: cut at a line end, close open tags, add ``…`` and ``more``."""
    if _utf16_units(html) <= limit:
        return html
    tail = f"\n…\n{more}"
    room = limit - _utf16_units(tail) - 64  # 64: closing tags
    kept, used = [], 0
    for line in html.split("\n"):
        if used + _utf16_units(line) + 1 > room:
            if used < room // 2:  # one huge paragraph: cut it at a word instead
                part = line[: room - used].rsplit(None, 1)[0] if " " in line[: room - used] else ""
                part = part[: part.rfind("<")] if part.rfind("<") > part.rfind(">") else part
                part = part[: part.rfind("&")] if part.rfind("&") > part.rfind(";") else part
                kept.append(part)
            break
        kept.append(line)
        used += _utf16_units(line) + 1
    body = "\n".join(kept).rstrip()
    return body + _close_open_tags(body) + tail


class Renderer:
    """Renders alert template families in the sandbox.

    ``templates_dir`` holds the shipped families and the shared ``_base/`` layouts;
    ``own_templates`` (``[paths] templates``) an organisation's families, used beside them: a
    family of the same name replaces the shipped one whole (never file by file), and every
    family shares the shipped ``_base/``.
    """

    def __init__(self, templates_dir: Path | None = None, *, own_templates: Path | None = None) -> None:
        self.templates_dir = (templates_dir or default_templates_dir()).resolve()
        self.own_templates = own_templates.resolve() if own_templates is not None else None
        self._folders = find_families(self.templates_dir)
        if self.own_templates is not None:
            self._folders.update(find_families(self.own_templates))
        loader = PrefixLoader(
            {
                "_base": FileSystemLoader(str(self.templates_dir / "_base")),
                **{name: FileSystemLoader(str(folder)) for name, folder in self._folders.items()},
            }
        )
        self._env = AlertSandbox(loader)
        self._html_env = AlertSandbox(loader, html_strings=True)
        for env in (self._env, self._html_env):
            env.add_filter("fill", _fill)
            env.add_filter("longdate", _longdate)
        self._families: dict[str, FamilyInfo] = {}
        self._catalogues: dict[tuple[str, str], dict[str, Any]] = {}

    def families(self) -> list[str]:
        """Names of the template families, sorted."""
        return sorted(self._folders)

    def family_dir(self, name: str) -> Path:
        """The folder family ``name`` is read from (``NotFound`` if there is none)."""
        if name not in self._folders:
            known = ", ".join(self.families())
            raise NotFound(
                f"template family {name!r} does not exist; known: {known}", details={"family": name}
            )
        return self._folders[name]

    def is_own(self, name: str) -> bool:
        """Whether family ``name`` comes from ``[paths] templates`` (not shipped)."""
        folder = self._folders.get(name)
        return folder is not None and folder.parent == self.own_templates

    def family(self, name: str) -> FamilyInfo:
        """One family's description, variables and languages (``NotFound`` if there is none)."""
        if name not in self._families:
            self.family_dir(name)
            self._families[name] = self._load_family(name)
        return self._families[name]

    def example(self, name: str) -> dict[str, Any]:
        """The family's example case (``templates/<family>/example.toml``)."""
        return self._toml(self.family_dir(name) / "example.toml")

    def validate_case(self, family: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Check case data for ``family`` before anything is rendered; returns JSON-ready data."""
        return casedata.validate(self.family(family).variables, data)

    def render(
        self,
        family: str,
        data: Mapping[str, Any],
        *,
        audience: str,
        channel: str,
        language: str,
        extra: Mapping[str, Any] | None = None,
    ) -> RenderedContent:
        """One form of an alert: subject, text and (email and press) HTML."""
        info = self.family(family)
        if audience not in FORMS:
            expected = ", ".join(FORMS)
            raise ValidationError(
                f"audience: unknown audience {audience!r} (expected one of {expected})",
                details={"audience": audience},
            )
        if channel not in CHANNELS:
            expected = ", ".join(CHANNELS)
            raise ValidationError(
                f"channel: unknown channel {channel!r} (expected one of {expected})",
                details={"channel": channel},
            )
        used = language if language in info.languages else FALLBACK_LANGUAGE
        t = self._catalogue(family, used)
        context: dict[str, Any] = {
            "case": casedata.localize(info.variables, self.validate_case(family, data), used),
            "extra": self._extra(info, extra or {}),
            "t": t,
            "lang": used,
            "audience": audience,
            "form": FORMS[ContactKind(audience)],
            "channel": channel,
            "family": family,
        }
        subject = " ".join(self._render_file(f"{family}/subject.txt.j2", context).split())
        context["subject"] = subject
        html: str | None = None
        if channel == "telegram":
            url = context["extra"]["alert_url"]
            more = (
                f'<a href="{escape(url)}">{escape(t["read_full"])}</a>'
                if url
                else str(escape(t["shortened"]))
            )
            text = self._render_file(f"{family}/telegram.html.j2", context).strip()
            text = fit_telegram(text, more=more, limit=TELEGRAM_BUDGET)
        elif channel == "press":
            text = self._render_file(self._layout(family, "press.txt.j2"), context)
            html = self._render_file(self._layout(family, "press.html.j2"), context)
        else:
            text = self._render_file(self._layout(family, "email.txt.j2"), context)
            if channel == "email":
                html = self._render_file(self._layout(family, "email.html.j2"), context)
        logger.debug("rendered %s for %s/%s/%s", family, audience, channel, used)
        return RenderedContent(
            channel=channel, audience=audience, language=used, subject=subject, text=text, html=html
        )

    def words(self, family: str, language: str) -> Mapping[str, Any]:
        """The family's catalogue in ``language`` (English when the family has none in it)."""
        info = self.family(family)
        return self._catalogue(family, language if language in info.languages else FALLBACK_LANGUAGE)

    def case_values(self, family: str, data: Mapping[str, Any], language: str) -> dict[str, Any]:
        """The case data as templates see it in ``language`` (alerts.compose.casedata.localize)."""
        info = self.family(family)
        return casedata.localize(info.variables, self.validate_case(family, data), language)

    def render_string(
        self, source: str, context: Mapping[str, Any], *, autoescape: bool = False, name: str = "<string>"
    ) -> str:
        """Render template source that is not a file (officer-edited text) in the same sandbox."""
        env = self._html_env if autoescape else self._env
        return render_metered(env.compile_string(source, name), dict(context), name=name)

    def _layout(self, family: str, filename: str) -> str:
        """The family's own template, or the shared one in ``_base/``."""
        own = self._folders[family] / filename
        return f"{family}/{filename}" if own.is_file() else f"_base/{filename}"

    def _render_file(self, name: str, context: dict[str, Any]) -> str:
        try:
            template = self._env.get_template(name)
        except TemplateNotFound as exc:
            raise TemplateError(f"template {name!r} is missing", details={"template": name}) from exc
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {name!r}, line {exc.lineno}: {exc.message}", details={"template": name}
            ) from exc
        return _tidy(render_metered(template, context, name=name))

    def _extra(self, info: FamilyInfo, extra: Mapping[str, Any]) -> dict[str, Any]:
        for key in extra:
            if key not in EXTRA_KEYS:
                raise ValidationError(f"extra: unknown key {key!r}", details={"extra": key})
        values = {key: extra.get(key) for key in EXTRA_KEYS}
        for key in info.requires:
            if values[key] in (None, ""):
                raise ValidationError(
                    f"extra: {key!r} is required for template family {info.name!r}", details={"extra": key}
                )
        original = values["original"]
        if original is not None:
            if not isinstance(original, Mapping) or any(
                original.get(k) in (None, "") for k in ("title", "date", "id")
            ):
                raise ValidationError(
                    "extra: 'original' must be a table with the original alert's title, date and id",
                    details={"extra": "original"},
                )
            when = original["date"]
            values["original"] = {
                "title": str(original["title"]),
                "id": str(original["id"]),
                "date": when if isinstance(when, date) else date.fromisoformat(str(when)[:10]),
            }
        return values

    @cached_property
    def _base_messages(self) -> dict[str, dict[str, Any]]:
        folder = self.templates_dir / "_base" / "messages"
        return {path.stem: self._toml(path) for path in sorted(folder.glob("*.toml"))}

    def _catalogue(self, family: str, language: str) -> dict[str, Any]:
        key = (family, language)
        if key not in self._catalogues:
            own = self._toml(self._folders[family] / "messages" / f"{language}.toml")
            self._catalogues[key] = {**self._base_messages.get(language, {}), **own}
        return self._catalogues[key]

    def _load_family(self, name: str) -> FamilyInfo:
        folder = self._folders[name]
        raw = self._toml(folder / "family.toml")
        variables = {}
        for var, spec in raw.get("variables", {}).items():
            if spec.get("type") not in casedata.TYPES:
                raise TemplateError(
                    f"{name}/family.toml: variable {var!r} has unknown type {spec.get('type')!r}"
                )
            variables[var] = VariableSpec(
                name=var,
                type=spec["type"],
                required=bool(spec.get("required", False)),
                description=str(spec.get("description", "")),
            )
        languages = tuple(sorted(p.stem for p in (folder / "messages").glob("*.toml")))
        if FALLBACK_LANGUAGE not in languages:
            raise TemplateError(f"{name}/messages: the English catalogue en.toml is missing")
        english = set(self._catalogue(name, FALLBACK_LANGUAGE))
        for language in languages:
            missing = sorted(english - set(self._catalogue(name, language)))
            if missing:
                raise TemplateError(f"{name}/messages/{language}.toml: missing {', '.join(missing)}")
        requires = tuple(raw.get("requires", ()))
        unknown = [key for key in requires if key not in EXTRA_KEYS]
        if unknown:
            raise TemplateError(f"{name}/family.toml: requires unknown extra value(s) {', '.join(unknown)}")
        return FamilyInfo(
            name=name,
            description=str(raw.get("description", "")),
            variables=variables,
            languages=languages,
            requires=requires,
        )

    def _toml(self, path: Path) -> dict[str, Any]:
        try:
            with path.open("rb") as handle:
                return tomllib.load(handle)
        except FileNotFoundError as exc:
            raise TemplateError(f"{self.shown(path)} is missing") from exc
        except tomllib.TOMLDecodeError as exc:
            raise TemplateError(f"{self.shown(path)}: {exc}") from exc

    def shown(self, path: Path) -> str:
        """A template file's path as errors name it: from its family's folder's parent."""
        for root in (self.own_templates, self.templates_dir):
            if root is not None and path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)
