"""The layout rules that import-linter does not check (docs/ARCHITECTURE.md).

- No module imports another module's private names (a leading underscore), neither with
  ``from x import _name`` nor as ``x._name`` through an imported module: a name another module
  needs is public, or lives in a module both may import.
- No module is over ``MAX_LINES`` lines: split it along its seam.
- The import-linter contracts in pyproject.toml hold (``.ci/run`` runs ``lint-imports`` too).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("alerts", "channels")
#: About 400 (STYLE.md); a module past this has taken on a second concern.
MAX_LINES = 420


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name a ``from … import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(root: Path) -> list[str]:
    """``file:line: what`` for every private name one of our modules takes from another."""
    modules = dict(_modules(root))
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bound: dict[str, str] = {}  # local name -> one of our modules
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        bound[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, path, node)
                if source.split(".")[0] not in PACKAGES or source == module:
                    continue
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                    if _private(alias.name):
                        found.append(
                            f"{path.relative_to(root)}:{node.lineno}: from {source} import {alias.name}"
                        )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and bound[node.value.id] != module
                and _private(node.attr)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {bound[node.value.id]}.{node.attr}")
    return found


def long_modules(root: Path) -> list[str]:
    """``file: N lines`` for every module over ``MAX_LINES``."""
    out = []
    for _, path in _modules(root):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out.append(f"{path.relative_to(root)}: {lines} lines")
    return out


def test_no_module_imports_private_names_of_another() -> None:
    assert private_imports(ROOT) == []


def test_no_module_is_over_the_size_limit() -> None:
    assert long_modules(ROOT) == []


def test_the_checks_see_what_they_forbid(tmp_path: Path) -> None:
    pkg = tmp_path / "alerts" / "web"
    pkg.mkdir(parents=True)
    (tmp_path / "alerts" / "__init__.py").write_text("")
    (tmp_path / "channels").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pages.py").write_text("_base = 1\n_form = 2\nok = 3\n" + "x = 1\n" * MAX_LINES)
    (pkg / "archive.py").write_text(
        textwrap.dedent(
            """\
            from alerts.web.pages import _base, ok
            from .pages import _form
            from alerts.web import pages
            from alerts.web import pages as public
            import alerts.web.pages as p2
            print(pages._base, public._form, p2._form, pages.ok, pages.__name__)

            def _local() -> None:
                return _local()
            """
        )
    )
    assert private_imports(tmp_path) == [
        "alerts/web/archive.py:1: from alerts.web.pages import _base",
        "alerts/web/archive.py:2: from alerts.web.pages import _form",
        "alerts/web/archive.py:6: alerts.web.pages._base",
        "alerts/web/archive.py:6: alerts.web.pages._form",
        "alerts/web/archive.py:6: alerts.web.pages._form",
    ]
    assert long_modules(tmp_path) == [f"alerts/web/pages.py: {MAX_LINES + 3} lines"]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-logo", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
