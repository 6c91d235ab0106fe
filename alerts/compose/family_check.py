"""``alerts templates check DIR``: what a template family must pass before anyone uses it.

For each family in the folder (or the one family the folder is):

- its ``family.toml``, catalogues and templates load (syntax errors name file and line);
- every variable ``family.toml`` declares is used by a template, and every ``case.X`` a
  template uses is declared (a typo would render as an error on the day of an alert);
- its ``example.toml`` is valid case data and renders in every audience × channel × language,
  once with only the extra values the family requires and once with all of them, so both
  branches of an ``{% if extra.… %}`` run.

Every problem names the file (from the folder checked) and, where there is one, the line.
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, nodes

from alerts.compose.families import find_families
from alerts.compose.render import CHANNELS, FORMS, Renderer
from alerts.core.errors import AlertsError, ValidationError

#: "template '_base/email.txt.j2': " — which layout was rendering; the file and line say more.
_LAYOUT_PREFIX = re.compile(r"^template '[^']*': ")

#: The extra values a message carries at send time, as the checks fill them in.
SAMPLE_EXTRA: dict[str, Any] = {
    "alert_title": "Sample alert",
    "alert_url": "https://alerts.example.org/alerts/1",
    "embargo_until": "2030-01-01 09:00 UTC",
    "original": {"title": "The original alert", "date": date(2030, 1, 1), "id": 1},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a family, where it is."""

    file: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyReport:
    """A family's checks: how many forms rendered, and what was wrong."""

    name: str
    folder: Path
    renders: int
    problems: tuple[Problem, ...]


def check_folder(folder: Path, *, shipped: Path | None = None) -> list[FamilyReport]:
    """Check every family in ``folder`` (or ``folder`` itself when it holds a ``family.toml``).

    The families are checked as ``[paths] templates`` would use them: beside the shipped ones,
    with the shipped ``_base/`` layouts. Raises ``ValidationError`` when there is no family.
    """
    folder = folder.resolve()
    if (folder / "family.toml").is_file():
        root, names = folder.parent, [folder.name]
    else:
        root, names = folder, list(find_families(folder))
    if not names:
        raise ValidationError(
            f"{folder}: no template family here (a family is a folder with a family.toml)",
            details={"folder": str(folder)},
        )
    renderer = Renderer(shipped, own_templates=root)
    return [check_family(renderer, name) for name in names]


def check_all(renderer: Renderer) -> list[FamilyReport]:
    """Check every family ``renderer`` knows: the shipped ones and ``[paths] templates``."""
    return [check_family(renderer, name) for name in renderer.families()]


def check_family(renderer: Renderer, name: str) -> FamilyReport:
    """All the checks of one family (see the module docstring)."""
    folder = renderer.family_dir(name)
    shown = f"{folder.name}/"
    try:
        info = renderer.family(name)
    except AlertsError as exc:  # "closure/messages/fr.toml: missing b": the file leads the message
        file, sep, message = exc.message.partition(": ")
        found = Problem(file=file, message=message) if sep and file.startswith(shown) else None
        problem = found or Problem(file=shown, message=exc.message)
        return FamilyReport(name=name, folder=folder, renders=0, problems=(problem,))
    problems: list[Problem] = []
    used: set[str] = set()
    for path in sorted(folder.rglob("*.j2")):
        file = f"{folder.name}/{path.relative_to(folder)}"
        try:
            uses = list(_case_uses(path))
        except TemplateSyntaxError as exc:
            problems.append(Problem(file=file, line=exc.lineno, message=exc.message or "syntax error"))
            continue
        for variable, line in uses:
            used.add(variable)
            if variable not in info.variables:
                problems.append(
                    Problem(file=file, line=line, message=f"case.{variable} is not declared in family.toml")
                )
    for path in sorted((renderer.templates_dir / "_base").glob("*.j2")):
        used.update(variable for variable, _ in _case_uses(path))
    problems += [
        Problem(
            file=f"{folder.name}/family.toml",
            message=f"variable {variable!r} is declared but no template uses it",
        )
        for variable in info.variables
        if variable not in used
    ]
    try:
        example = renderer.example(name)
        renderer.validate_case(name, example)
    except AlertsError as exc:
        problems.append(Problem(file=f"{folder.name}/example.toml", message=exc.message))
        return FamilyReport(name=name, folder=folder, renders=0, problems=tuple(problems))
    renders, failures = _render_all(renderer, name, example, info.languages, info.requires)
    return FamilyReport(name=name, folder=folder, renders=renders, problems=tuple(problems + failures))


def _render_all(
    renderer: Renderer,
    name: str,
    example: dict[str, Any],
    languages: tuple[str, ...],
    requires: tuple[str, ...],
) -> tuple[int, list[Problem]]:
    """Render the example in every form; one problem per distinct failure (its first form)."""
    required_only = {key: SAMPLE_EXTRA[key] for key in requires}
    renders, seen, problems = 0, set[tuple[str, int | None, str]](), list[Problem]()
    for extra, audience, channel, language in itertools.product(
        (required_only, SAMPLE_EXTRA), [a.value for a in FORMS], CHANNELS, languages
    ):
        try:
            renderer.render(name, example, audience=audience, channel=channel, language=language, extra=extra)
            renders += 1
        except AlertsError as exc:
            file, line = _position(exc, renderer)
            message = _LAYOUT_PREFIX.sub("", exc.message) if line else exc.message
            if (file, line, message) not in seen:
                seen.add((file, line, message))
                form = f"{audience} × {channel} × {language}"
                if extra is not SAMPLE_EXTRA:
                    form += ", required extras only"
                problems.append(Problem(file=file, line=line, message=f"{message} ({form})"))
    return renders, problems


def _case_uses(path: Path) -> Iterator[tuple[str, int]]:
    """``case.X`` and ``case["X"]`` in a template: (X, line)."""
    tree = Environment().parse(path.read_text(encoding="utf-8"), path.name, str(path))
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "case":
            yield node.attr, node.lineno
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name == "case":
            if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
                yield item.arg.value, item.lineno


def _position(exc: BaseException, renderer: Renderer) -> tuple[str, int | None]:
    """The template file and line a render failure happened at (Jinja's frames carry them)."""
    cause: BaseException | None = exc
    while cause is not None:
        for frame in reversed(traceback.extract_tb(cause.__traceback__)):
            if frame.filename.endswith(".j2"):
                return renderer.shown(Path(frame.filename)), frame.lineno
        cause = cause.__cause__
    template = getattr(exc, "details", {}).get("template")
    return (str(template) if template else "?"), None
