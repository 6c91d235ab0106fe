"""Mutation run over the actions, delivery, compose and contacts packages (mutmut 3; not in CI).

    .venv/bin/pip install -e '.[test,mutation]'
    .venv/bin/python bench/mutation.py                        # the four packages (resumes)
    .venv/bin/python bench/mutation.py alerts/delivery/retry.py alerts.compose   # only these
    .venv/bin/python bench/mutation.py --report               # figures of the last run only
    .venv/bin/python bench/mutation.py --fresh                # forget earlier results first

It prints the mutants generated, killed, survived, timed out, the kill ratio, and each
survivor as ``file:line`` with the mutation (``-`` the original line, ``+`` the mutant).

How mutmut 3 runs (configured in pyproject's ``[tool.mutmut]``): it copies ``alerts/`` into
``mutants/`` (with ``channels/``, ``templates/`` and what the tests read, ``also_copy``) and
rewrites every function of the four packages into a trampoline that calls the original or one
of its mutants, chosen by ``MUTANT_UNDER_TEST``. It then runs the selected tests once,
recording which tests reach which function (the "stats", kept in ``mutants/``), and for each
mutant forks and runs only those tests, fastest first, stopping at the first failure. A
mutant is killed when a test fails, survives when all pass, and times out past
``timeout_constant``/``timeout_multiplier`` (a hang is caught too, so it counts as detected).

Before the tests, ``mypy --strict`` checks the mutated copy (``type_check_command``): a mutant
it refuses is counted killed without running a test, as CI's mypy would refuse it.

Always on SQLite: ``ALERTS_TEST_DATABASE_URL`` is removed from the environment. Left out of the
test selection (pyproject says why for each): the tests that only drive child processes
(``tests/test_cli.py``, ``tests/test_cli_users.py``), the reliability, browser and channel
tests, sign-in rate limits, the layout check and two long runs. Other tests that start
``python -m alerts`` (the CLI face of the parity tests) still run, but their child imports the
unmutated package, so only their in-process steps can kill a mutant.

Cost, on this project's 2-core machine shared with other work: a run starts with about 8 min
of type checking and, the first time, 6 min of stats (one pass of the selected tests); then
from 2 s (killed by a fast test) to 30-60 s (a delivery that never ends, caught by a test's
own wait) per mutant. The four packages hold about 9,700 mutants (mypy settles some: 8 of
``retry.py``'s 54), so a full run takes many hours: run a module or a package at a time.

A run without arguments resumes: mutants that already have a result are not run again
(mutmut re-runs the functions whose source changed). Naming modules or packages re-runs
their mutants. ``.venv/bin/mutmut browse`` shows the results interactively;
``.venv/bin/mutmut show NAME`` one mutant's diff.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("alerts.actions", "alerts.delivery", "alerts.compose", "alerts.contacts")
MUTMUT = Path(sys.executable).parent / "mutmut"

# mutmut's exit-code vocabulary, folded into the words this report uses
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mutant:
    """One mutant and its result."""

    name: str  # alerts.delivery.retry.xǁRetryPolicyǁdecide__mutmut_3
    path: Path  # alerts/delivery/retry.py
    status: str  # killed, survived, no tests, timeout, suspicious, not checked, ...


def dotted(target: str) -> str:
    """``alerts/delivery/retry.py`` or ``alerts.delivery.retry`` → ``alerts.delivery.retry``."""
    name = target.removesuffix(".py").replace("/", ".").strip(".")
    if not name.startswith(PACKAGES):
        raise SystemExit(f"{target}: not in the mutated packages ({', '.join(PACKAGES)})")
    return name


def run_mutmut(patterns: list[str], *, max_children: int, log: Path) -> int:
    """``mutmut run`` in a child process with its output in ``log``; its exit code."""
    env = dict(os.environ)
    env.pop("ALERTS_TEST_DATABASE_URL", None)  # SQLite
    env.pop("PYTHONPATH", None)  # child processes of the tests import the unmutated package
    env["PATH"] = f"{MUTMUT.parent}{os.pathsep}{env.get('PATH', '')}"  # type_check_command's mypy
    (ROOT / "mutants").mkdir(exist_ok=True)
    cmd = [str(MUTMUT), "run", "--max-children", str(max_children), *patterns]
    with log.open("w") as out:
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def collect(prefixes: tuple[str, ...]) -> list[Mutant]:
    """Every mutant of the modules under ``prefixes`` and its last result."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code

    mutants = []
    for meta in sorted((ROOT / "mutants" / "alerts").rglob("*.py.meta")):
        path = meta.relative_to(ROOT / "mutants").with_suffix("")
        module = ".".join(path.with_suffix("").parts)
        if not (module + ".").startswith(tuple(p + "." for p in prefixes)):
            continue
        data = SourceFileMutationData(path=path)
        data.load()
        for name, code in data.exit_code_by_key.items():
            mutants.append(Mutant(name=name, path=path, status=status_by_exit_code[code]))
    return mutants


def def_lines(path: Path) -> dict[str, int]:
    """Line of each ``def`` of a module: ``name`` for functions, ``Class.name`` for methods."""
    tree = ast.parse(path.read_text())
    lines: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[node.name] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[f"{node.name}.{item.name}"] = item.lineno
    return lines


HUNK = re.compile(r"^@@ -(\d+)")


def locate(mutant: Mutant, lines_by_path: dict[Path, dict[str, int]]) -> tuple[int, list[str]]:
    """The source line of a mutant's first change, and its changed lines (``-``/``+``)."""
    import libcst
    from mutmut.mutation.diff_apply import (
        read_functions_from_index,
        read_mutant_function,
        read_mutants_module,
        read_original_function,
    )
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    functions = read_functions_from_index(mutant.name, mutant.path)
    if functions is None:
        module = read_mutants_module(mutant.path)
        functions = (read_original_function(module, mutant.name), read_mutant_function(module, mutant.name))
    original, mutated = (libcst.Module([f]).code.strip().splitlines() for f in functions)
    diff = list(difflib.unified_diff(original, mutated, lineterm="", n=0))
    changed = [line for line in diff[2:] if line[:1] in "-+"]
    # The diff numbers the function's own text from 1; the def line anchors it in the file.
    first = next((int(m.group(1)) for m in map(HUNK.match, diff) if m), 0)
    def_at = next((i for i, t in enumerate(original, 1) if t.lstrip().startswith(("def ", "async def "))), 1)
    if mutant.path not in lines_by_path:
        lines_by_path[mutant.path] = def_lines(ROOT / mutant.path)
    function, class_name = orig_function_and_class_names_from_key(mutant.name)
    def_line = lines_by_path[mutant.path].get(f"{class_name}.{function}" if class_name else function, 0)
    return (def_line + first - def_at if def_line and first else def_line), changed


def report(mutants: list[Mutant], *, elapsed: float | None) -> float:
    """Print the figures and the survivors; the kill ratio."""
    counts = Counter(m.status for m in mutants)
    checked = len(mutants) - counts["not checked"] - counts["skipped"]
    detected = sum(counts[s] for s in DETECTED)
    ratio = detected / checked if checked else 0.0
    print()
    print("== mutation run: " + ", ".join(sorted({".".join(m.path.parts[:2]) for m in mutants})))
    print(f"mutants generated  {len(mutants)}")
    print(f"killed             {counts['killed'] + counts['caught by type check']}")
    print(f"survived           {counts['survived']}")
    print(f"no tests           {counts['no tests']}  (no selected test reaches the function)")
    print(f"timed out          {counts['timeout']}")
    if counts["suspicious"] or counts["segfault"]:
        print(f"suspicious/crash   {counts['suspicious'] + counts['segfault']}")
    if counts["not checked"]:
        print(f"not checked yet    {counts['not checked']}")
    print(f"kill ratio         {ratio:.1%}  (killed + timed out, of {checked} checked)")
    by_package: dict[str, Counter[str]] = {}
    for m in mutants:
        by_package.setdefault(".".join(m.path.parts[:2]), Counter())[m.status] += 1
    for package, c in sorted(by_package.items()):
        total = sum(c.values()) - c["not checked"] - c["skipped"]
        found = sum(c[s] for s in DETECTED)
        print(f"  {package:<18} {found:>5}/{total:<5} {found / total if total else 0:.1%}")
    if elapsed is not None:
        print(f"time               {elapsed / 60:.1f} min")
    survivors = [m for m in mutants if m.status not in DETECTED | {"not checked", "skipped"}]
    if survivors:
        print(f"\n== survivors ({len(survivors)})")
    lines_by_path: dict[Path, dict[str, int]] = {}
    for m in sorted(survivors, key=lambda m: (str(m.path), m.name)):
        line, changed = locate(m, lines_by_path)
        tag = "" if m.status == "survived" else f" [{m.status}]"
        print(f"{m.path}:{line}{tag}  {m.name.rpartition('.')[2]}")
        for text in changed:
            print(f"    {text[0]} {text[1:].strip()}")
    return ratio


def main() -> None:
    """Parse the arguments, run mutmut, print the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help="modules or packages (path or dotted); default: all four")
    parser.add_argument("--report", action="store_true", help="only print the figures of the last run")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ (results and stats) first")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 below this kill ratio (0-1)")
    args = parser.parse_args()
    if not MUTMUT.exists():
        raise SystemExit("mutmut is not installed: .venv/bin/pip install -e '.[test,mutation]'")
    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the current directory
    sys.path.insert(0, str(ROOT))
    targets = [dotted(t) for t in args.targets]
    elapsed = None
    if args.fresh and not args.report:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    if not args.report:
        log = ROOT / "mutants" / "mutmut-run.log"
        log.parent.mkdir(exist_ok=True)
        print(f"mutmut run {' '.join(targets) or '(the four packages)'}; its output: {log.relative_to(ROOT)}")
        started = time.monotonic()
        code = run_mutmut([f"{t}.*" for t in targets], max_children=args.max_children, log=log)
        elapsed = time.monotonic() - started
        if code != 0:
            print(log.read_text()[-3000:])
            raise SystemExit(f"mutmut exited {code}")
    mutants = collect(tuple(targets) or PACKAGES)
    if not mutants:
        raise SystemExit("no mutants: run without --report first")
    ratio = report(mutants, elapsed=elapsed)
    if ratio < args.min_ratio:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
