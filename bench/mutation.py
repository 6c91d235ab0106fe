"""Mutation run over the actions, delivery, compose and contacts packages (mutmut 3; not in CI).

    .venv/bin/pip install -e '.[test,mutation]'
    .venv/bin/python bench/mutation.py                        # the four packages (resumes)
    .venv/bin/python bench/mutation.py alerts/delivery/retry.py alerts.compose   # only these
    .venv/bin/python bench/mutation.py --report               # figures of the last run only
    .venv/bin/python bench/mutation.py --fresh                # forget earlier results first
    .venv/bin/python bench/mutation.py alerts.contacts --again survivors   # after adding tests
    .venv/bin/python bench/mutation.py --report --markdown bench/mutation-results.md
    .venv/bin/python bench/mutation.py --sample 0.1 --seed 1  # a random tenth of each package
    .venv/bin/python bench/mutation.py --sample 0.04 --seed 2 --unseen --again survivors  # untuned

On a machine shared with other work, run it as ``nice -n 19 ... --max-children 2``.

It prints, per package and in total, the mutants generated, killed, timed out, refused by the
type check, survived, without tests and not run yet, the detected ratio, and each survivor as
``file:line`` with the mutation (``-`` the original line, ``+`` the mutant) and the reason it
is left alive, from bench/mutation-reasons.toml (keyed by mutant name). ``--markdown FILE``
writes the same as a page (bench/mutation-results.md is kept in the repository).

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
from 2 s (killed by a fast test) to 10-60 s (a delivery that never ends, caught by a test's
own wait) per mutant. Measured again under `nice -n 19` while seven engineers ran tests (load
13 on 2 cores): 15 min of type checking (mostly mutmut mapping mypy's errors to mutants), the
stats pass about 30 min (it stops at the first failing test: a test that flakes under load
loses the whole pass), then about 0.3 mutants/s. The four packages hold 15,483 mutants
(stop 19: actions 2,533, delivery 6,661, compose 3,075, contacts 3,214), so a full run takes a
day or more of such a machine: run a package at a time, on an idle machine if there is one, or
a random sample (``--sample``; a tenth took about 25 min of type checking and stats and then
~1 mutant/s at nice 19 beside other work, down to ~0.1/s while a CI run took the cores).

``--sample FRACTION`` draws that fraction of each package's mutants at random (the same ones
for the same ``--seed``: the first draw is kept in ``bench/mutation-state/``, and editing a
function later re-runs its drawn mutants instead of redrawing the package), runs only those and
reports their figures with the 95% Wilson interval of each ratio. A random sample estimates
the whole run's ratio without its day of machine time (a tenth, about 1,500 mutants, gives an
interval of about ±1.5 points at 90%); each survivor of the sample is listed as in a full run.

A sample whose survivors were studied and given tests overstates the suite: ``--unseen`` leaves
out of a new draw (another ``--seed``) every mutant that another kept sample drew or that
the reasons file names, so its figure is that of mutants nobody has tuned the tests against
(with ``--again survivors``, survivors of older runs are run again against today's tests).

A run without arguments resumes: mutants that already have a result are not run again
(mutmut re-runs the functions whose source changed). mutmut itself re-runs every mutant it is
given by name, so for named modules or packages this script names only the mutants without a
result; ``--again survivors`` adds the survivors (to see a new test kill them), ``--again
all`` re-runs everything named (needed once after editing a mutated function).
mutmut maps tests to functions once (its stats) and adds only tests with new names later, so
a test edited to kill a survivor is never run against it: ``bench/mutation_confirm.py`` runs,
with mutmut's own trampoline, each test a survivor's reason names and records the kills.
``.venv/bin/mutmut browse`` shows the results interactively; ``.venv/bin/mutmut show NAME``
one mutant's diff.

Results outlive the machine: after each run the script copies each module's results (exit code
and time per mutant, the hash of each mutated function) and mutmut's stats into
``bench/mutation-state/`` (kept in the repository); on a clone without ``mutants/`` it puts them
back before mutmut starts. mutmut then keeps the result of every mutant whose function is
unchanged and runs the rest, so a day's run can be spread over several sessions.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("alerts.actions", "alerts.delivery", "alerts.compose", "alerts.contacts")
MUTMUT = Path(sys.executable).parent / "mutmut"
REASONS = ROOT / "bench" / "mutation-reasons.toml"
STATE = ROOT / "bench" / "mutation-state"  # results kept between machines (save_state)

# mutmut's exit-code vocabulary, folded into the words this report uses
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mutant:
    """One mutant and its result."""

    name: str  # alerts.delivery.retry.xǁRetryPolicyǁdecide__mutmut_3
    path: Path  # alerts/delivery/retry.py
    status: str  # killed, survived, no tests, timeout, suspicious, not checked, ...
    seconds: float = 0.0  # wall time of its test run (none when the type check settled it)

    @property
    def short(self) -> str:
        """``xǁRetryPolicyǁdecide__mutmut_3``: the name without its module."""
        return self.name.removeprefix(".".join(self.path.with_suffix("").parts) + ".")


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
    env["ALERTS_MUTATION_RUN"] = "1"  # tests/conftest.py: a render's time limit fit for trampolines
    (ROOT / "mutants").mkdir(exist_ok=True)
    cmd = [str(MUTMUT), "run", "--max-children", str(max_children), *patterns]
    with log.open("w") as out:
        return subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


STATS = "mutmut-stats.json"

# mutmut's own first step, without its type check and stats: copy alerts/ into mutants/ and
# write every mutant, so that a sample can be drawn from their names before anything runs.
_GENERATE = """
import os
from mutmut.__main__ import (copy_also_copy_files, copy_src_dir, create_mutants,
    set_mutant_under_test, setup_source_paths, store_lines_covered_by_tests)
set_mutant_under_test("mutant_generation")
os.makedirs("mutants", exist_ok=True)
copy_src_dir(); copy_also_copy_files(); setup_source_paths(); store_lines_covered_by_tests()
print(create_mutants(%d))
"""


def refresh_data_files() -> int:
    """Copy the package's files that are not Python (catalogues, templates) over stale copies.

    mutmut copies ``alerts/`` into ``mutants/`` once and never again for a file that exists, so
    a message catalogue edited since the last run would stay old there, and the tests that read
    it would fail the stats pass. Returns the number of files refreshed.
    """
    refreshed = 0
    for source in (ROOT / "alerts").rglob("*"):
        if source.is_dir() or source.suffix in (".py", ".pyc") or "__pycache__" in source.parts:
            continue
        target = ROOT / "mutants" / source.relative_to(ROOT)
        if target.exists() and target.read_bytes() != source.read_bytes():
            shutil.copy2(source, target)
            refreshed += 1
    return refreshed


def generate(max_children: int) -> None:
    """Write every mutant into ``mutants/`` (mutmut skips the modules already written)."""
    env = dict(os.environ, PYTHONPATH="")
    code = subprocess.run(
        [sys.executable, "-c", _GENERATE % max_children], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if code.returncode != 0:
        raise SystemExit(f"generating the mutants failed:\n{code.stdout[-2000:]}{code.stderr[-2000:]}")


def function_of(name: str) -> str:
    """The mutated function a mutant belongs to: its name without ``__mutmut_N``."""
    return name.rpartition("__mutmut_")[0]


def drawn(seed: int, name: str, fraction: float) -> bool:
    """Whether a mutant of a function added after the first draw joins the sample: a hash of the
    seed and its name, below ``fraction`` (the same answer on every machine)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def sample(mutants: list[Mutant], fraction: float, seed: int) -> list[Mutant]:
    """A random ``fraction`` of each package's mutants (at least one), the same for the same seed.

    The first draw of a package takes ``fraction`` of its mutants at random; it is kept in
    ``STATE`` (the names drawn and the functions the package had), so that a change to one
    function does not redraw the whole package: a later run takes the same names while they
    exist (the mutants of an edited function keep their names and are run again, as mutmut
    runs an edited function again), drops the names that are gone, and draws each mutant of a
    function added since on its own (``drawn``).
    """
    kept_path = STATE / f"sample-{fraction:g}-seed{seed}.json"
    kept: dict[str, dict[str, list[str]]] = json.loads(kept_path.read_text()) if kept_path.exists() else {}
    chosen: list[Mutant] = []
    by_package: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_package.setdefault(".".join(m.path.parts[:2]), []).append(m)
    for package, members in sorted(by_package.items()):
        if package in kept:
            names, known = set(kept[package]["names"]), set(kept[package]["functions"])
            chosen += [
                m
                for m in members
                if m.name in names or (function_of(m.name) not in known and drawn(seed, m.name, fraction))
            ]
            continue
        members.sort(key=lambda m: m.name)
        k = max(1, math.ceil(len(members) * fraction))
        picked = random.Random(f"{seed}:{package}").sample(members, k)
        kept[package] = {
            "functions": sorted({function_of(m.name) for m in members}),
            "names": sorted(m.name for m in picked),
        }
        chosen += picked
    STATE.mkdir(parents=True, exist_ok=True)
    kept_path.write_text(json.dumps(kept, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    return chosen


def seen(fraction: float, seed: int) -> set[str]:
    """The mutants someone has looked at: drawn by a kept sample other than this one, or named
    in the reasons file (every survivor of an earlier run that was studied has an entry)."""
    this = STATE / f"sample-{fraction:g}-seed{seed}.json"
    names = set(reasons())
    for kept in STATE.glob("sample-*.json"):
        if kept != this:
            names.update(n for package in json.loads(kept.read_text()).values() for n in package["names"])
    return names


def unseen(chosen: set[str], fraction: float, seed: int) -> set[str]:
    """The mutants of ``chosen`` nobody had seen when this draw was first run: kept in
    ``STATE`` then, as the reasons written for its survivors since would otherwise make them
    "seen" and drop them from their own figure."""
    kept_path = STATE / f"sample-{fraction:g}-seed{seed}-unseen.json"
    if kept_path.exists():
        return chosen & set(json.loads(kept_path.read_text()))
    names = chosen - seen(fraction, seed)
    STATE.mkdir(parents=True, exist_ok=True)
    kept_path.write_text(json.dumps(sorted(names), indent=0, ensure_ascii=False) + "\n")
    return names


def wilson(detected: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a ratio measured on a random sample of ``n``."""
    if n == 0:
        return (0.0, 1.0)
    p = detected / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def keep_earlier(kept: dict[str, Any], target: Path) -> int:
    """Put back, into ``kept`` (a module's results about to be saved to ``target``), the earlier
    result of each mutant that has none now while its function is unchanged: mutmut forgets the
    results of the mutants it is given before it runs them, so a run stopped part-way (``--again
    survivors`` on a shared machine) would otherwise lose what the last one measured. Returns
    how many were put back."""
    if not target.exists():
        return 0
    earlier = json.loads(target.read_text())
    hashes, old_hashes = kept["hash_by_function_name"], earlier.get("hash_by_function_name", {})
    codes, durations = kept["exit_code_by_key"], kept["durations_by_key"]
    back = 0
    for name, code in earlier.get("exit_code_by_key", {}).items():
        function = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]  # as hash_by_function_name names it
        if code is None or codes.get(name, 0) is not None or hashes.get(function) != old_hashes.get(function):
            continue
        codes[name] = code
        if name in earlier.get("durations_by_key", {}):
            durations[name] = earlier["durations_by_key"][name]
        back += 1
    return back


def save_state() -> int:
    """Copy each module's results and mutmut's stats from ``mutants/`` into ``STATE``.

    What is kept is what mutmut needs to resume: per module, the exit code and time of each
    mutant and the hash of each mutated function (type-check messages are left out: mutmut
    only needs the exit code). Returns the number of modules saved.
    """
    saved = 0
    for meta in sorted((ROOT / "mutants" / "alerts").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        kept = {
            "exit_code_by_key": data["exit_code_by_key"],
            "hash_by_function_name": data.get("hash_by_function_name", {}),
            "durations_by_key": {k: round(v, 2) for k, v in data.get("durations_by_key", {}).items()},
        }
        target = STATE / meta.relative_to(ROOT / "mutants")
        keep_earlier(kept, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(kept, indent=0, sort_keys=True) + "\n")
        saved += 1
    stats = ROOT / "mutants" / STATS
    if stats.exists():
        shutil.copyfile(stats, STATE / STATS)
    return saved


def restore_state() -> int:
    """Put ``STATE`` back into a ``mutants/`` that does not exist yet; the modules restored."""
    if (ROOT / "mutants").exists() or not STATE.exists():
        return 0
    restored = 0
    for kept in sorted(STATE.rglob("*.py.meta")):
        data = json.loads(kept.read_text())
        data.setdefault("type_check_error_by_key", {})
        data.setdefault("estimated_durations_by_key", {})
        target = ROOT / "mutants" / kept.relative_to(STATE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))
        restored += 1
    if (STATE / STATS).exists():
        shutil.copyfile(STATE / STATS, ROOT / "mutants" / STATS)
    return restored


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
        for attempt in range(5):  # a running mutmut rewrites the file after each mutant
            try:
                data.load()
                break
            except json.JSONDecodeError:
                time.sleep(0.2 * (attempt + 1))
        else:
            raise SystemExit(f"{meta}: unreadable")
        for name, code in data.exit_code_by_key.items():
            seconds = data.durations_by_key.get(name, 0.0) if code not in (None, 33, 37) else 0.0
            mutants.append(Mutant(name=name, path=path, status=status_by_exit_code[code], seconds=seconds))
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


COLUMNS = (
    ("generated", ()),
    ("killed", ("killed",)),
    ("timed out", ("timeout", "segfault")),
    ("type check", ("caught by type check",)),
    ("survived", ("survived",)),
    ("no tests", ("no tests",)),
    ("other", ("suspicious", "check was interrupted by user")),
    ("not run yet", ("not checked", "skipped")),
)


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts of one package (or all of them) and what they add up to."""

    counts: Counter[str]
    seconds: float  # wall time of the mutants that ran tests

    def column(self, statuses: tuple[str, ...]) -> int:
        return sum(self.counts[s] for s in statuses) if statuses else sum(self.counts.values())

    @property
    def checked(self) -> int:
        return self.column(()) - self.column(("not checked", "skipped"))

    @property
    def detected(self) -> int:
        return sum(self.counts[s] for s in DETECTED)

    @property
    def ratio(self) -> float:
        return self.detected / self.checked if self.checked else 0.0

    @property
    def interval(self) -> str:
        """The 95% interval of the ratio, for a random sample: ``88.1–91.9%``."""
        low, high = wilson(self.detected, self.checked)
        return f"{low:.1%}–{high:.1%}"

    def remaining_hours(self, children: int) -> float | None:
        """The time the mutants not run yet would take, at the mean of those that ran."""
        ran = self.checked - self.counts["caught by type check"] - self.counts["no tests"]
        left = self.counts["not checked"]
        if not left:
            return 0.0
        return (self.seconds / ran) * left / children / 3600 if ran else None


def figures(mutants: list[Mutant]) -> dict[str, Figures]:
    """Figures per package (``alerts.delivery``) and for all (``total``)."""
    counts: dict[str, Counter[str]] = {}
    seconds: dict[str, float] = {}
    for m in mutants:
        for key in (".".join(m.path.parts[:2]), "total"):
            counts.setdefault(key, Counter())[m.status] += 1
            seconds[key] = seconds.get(key, 0.0) + m.seconds
    return {
        key: Figures(c, seconds[key]) for key, c in sorted(counts.items(), key=lambda kv: kv[0] == "total")
    }


def survivors(mutants: list[Mutant]) -> list[tuple[Mutant, int, list[str]]]:
    """The undetected mutants that ran, each with its line and its changed lines."""
    lines_by_path: dict[Path, dict[str, int]] = {}
    found = [m for m in mutants if m.status not in DETECTED | {"not checked", "skipped"}]
    return [(m, *locate(m, lines_by_path)) for m in sorted(found, key=lambda m: (str(m.path), m.name))]


def reasons() -> dict[str, str]:
    """Why each known survivor survives (bench/mutation-reasons.toml), by mutant name."""
    if not REASONS.exists():
        return {}
    return {str(k): str(v) for k, v in tomllib.loads(REASONS.read_text())["reasons"].items()}


#: How a reason begins, for the survivors' summary (first match wins).
REASON_KINDS = (
    ("equivalent on SQLite (PostgreSQL kills it)", ("equivalent on sqlite", "postgresql-only")),
    ("equivalent", ("equivalent",)),
    ("killed by a test written since", ("killed by",)),
    ("log wording only", ("log wording",)),
)


def reason_kinds(found: list[Mutant], why: dict[str, str]) -> Counter[str]:
    """The survivors counted by the kind of their reason (``no reason yet``, ``other``)."""
    kinds: Counter[str] = Counter()
    for m in found:
        text = why.get(m.name, "").lower()
        kind = next(
            (k for k, start in REASON_KINDS if text.startswith(start)), "other" if text else "no reason yet"
        )
        kinds[kind] += 1
    return kinds


def summary(mutants: list[Mutant]) -> list[str]:
    """The survivors by kind of reason, and the mutation score without the equivalent mutants
    (detected / (run - equivalent): no test can kill a mutant that behaves as the original)."""
    found = [m for m in mutants if m.status not in DETECTED | {"not checked", "skipped"}]
    kinds = reason_kinds(found, reasons())
    total = figures(mutants)["total"]
    equivalent = kinds["equivalent"]
    lines = ["survivors by reason: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common())]
    if total.checked > equivalent:
        score = total.detected / (total.checked - equivalent)
        low, high = wilson(total.detected, total.checked - equivalent)
        lines.append(
            f"without the {equivalent} equivalent mutants: {total.detected} of {total.checked - equivalent} "
            f"detected, {score:.1%} ({low:.1%}–{high:.1%})"
        )
    return lines


def report(mutants: list[Mutant], *, elapsed: float | None, sampled: bool = False) -> float:
    """Print the figures and the survivors; the detected ratio of all."""
    by_package = figures(mutants)
    print("\n== mutation run: " + ", ".join(k for k in by_package if k != "total"))
    print(
        f"{'':<18}"
        + "".join(f"{name:>12}" for name, _ in COLUMNS)
        + f"{'detected':>10}"
        + (f"{'95% interval':>16}" if sampled else "")
    )
    for package, f in by_package.items():
        cells = "".join(f"{f.column(statuses):>12}" for _, statuses in COLUMNS)
        print(f"{package:<18}{cells}{f.ratio:>10.1%}" + (f"{f.interval:>16}" if sampled else ""))
    if elapsed is not None:
        print(f"time               {elapsed / 60:.1f} min")
    print("\n".join(summary(mutants)))
    found = survivors(mutants)
    if found:
        print(f"\n== survivors ({len(found)})")
    why = reasons()
    for m, line, changed in found:
        tag = "" if m.status == "survived" else f" [{m.status}]"
        print(f"{m.path}:{line}{tag}  {m.short}  {why.get(m.name, '(no reason written yet)')}")
        for text in changed:
            print(f"    {text[0]} {text[1:].strip()}")
    return by_package["total"].ratio


def markdown(mutants: list[Mutant], *, children: int, note: str = "", sampled: bool = False) -> str:
    """bench/mutation-results.md: the figures per package and in total, each survivor and why."""
    by_package = figures(mutants)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Mutation run: actions, delivery, compose, contacts",
        "",
        f"Written by `bench/mutation.py --markdown` at {when}, on commit {commit.stdout.strip() or '?'} "
        "(mutmut 3, SQLite, the test selection of pyproject's `[tool.mutmut]`). Detected = killed + "
        "timed out + refused by `mypy --strict`, of the mutants that have a result; a package with "
        "mutants not run yet is not finished, and its ratio is of those run so far (fastest tests first).",
        "",
        *([note, ""] if note else []),
        "| package | "
        + " | ".join(name for name, _ in COLUMNS)
        + " | detected |"
        + (" 95% interval |" if sampled else ""),
        "|---|" + "---:|" * (len(COLUMNS) + 1 + sampled),
    ]
    for package, f in by_package.items():
        name = f"**{package}**" if package == "total" else f"`{package}`"
        out.append(
            f"| {name} | "
            + " | ".join(str(f.column(s)) for _, s in COLUMNS)
            + f" | {f.ratio:.1%} |"
            + (f" {f.interval} |" if sampled else "")
        )
    out += ["", *(f"- {line}" for line in summary(mutants))]
    pending = {p: f for p, f in by_package.items() if p != "total" and f.counts["not checked"]}
    if pending:
        out += [
            "",
            "Not run yet (estimate: the mean wall time of the mutants that ran, "
            f"{children} at a time, on the shared 2-core machine):",
            "",
        ]
        for package, f in pending.items():
            hours = f.remaining_hours(children)
            guess = f"about {hours:.1f} h" if hours is not None else "unknown (none ran yet)"
            out.append(f"- `{package}`: {f.counts['not checked']} mutants, {guess}")
    found = survivors(mutants)
    why = reasons()
    out += ["", f"## Survivors ({len(found)})", ""]
    if found:
        out += [
            "Each as `file:line`, the mutant's name, why it is left alive (bench/mutation-reasons.toml), "
            "and the change (`-` original, `+` mutant).",
            "",
        ]
    for m, line, changed in found:
        tag = "" if m.status == "survived" else f" ({m.status})"
        out.append(f"- `{m.path}:{line}` `{m.short}`{tag}: {why.get(m.name, 'no reason written yet')}")
        out += ["  ```diff", *(f"  {t[0]} {t[1:].strip()}" for t in changed), "  ```"]
    return "\n".join(out) + "\n"


def to_run(targets: list[str], *, again: str, chosen: set[str] | None = None) -> list[str] | None:
    """The names or patterns to hand mutmut; ``None`` when nothing is left to run.

    mutmut re-runs every mutant it is given by name, so for named targets (or a sample,
    ``chosen``) only the mutants without a result (or, with ``again``, those with that result
    too) are named.
    """
    patterns = [f"{t}.*" for t in targets]
    if chosen is None and (again == "all" or not (ROOT / "mutants").exists()):
        return patterns
    if chosen is None and not targets and again == "none":
        return []  # mutmut resumes by itself, and re-runs functions whose source changed
    mutants = collect(tuple(targets) or PACKAGES)
    if chosen is not None:
        mutants = [m for m in mutants if m.name in chosen]
    elif not mutants:
        return patterns
    wanted = {"not checked"} | ({"survived", "no tests", "suspicious"} if again == "survivors" else set())
    if again == "all":
        wanted = {m.status for m in mutants}
    names = [m.name for m in mutants if m.status in wanted]
    return names or None


def main() -> None:
    """Parse the arguments, run mutmut, print the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help="modules or packages (path or dotted); default: all four")
    parser.add_argument("--report", action="store_true", help="only print the figures of the last run")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ (results and stats) first")
    parser.add_argument(
        "--again",
        choices=("none", "survivors", "all"),
        default="none",
        help="re-run the targets' survivors (after adding tests), or all their mutants",
    )
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--note", default="", help="a paragraph for the page: how this run differed")
    parser.add_argument("--min-ratio", type=float, default=0.0, help="exit 1 below this detected ratio (0-1)")
    parser.add_argument(
        "--sample",
        type=float,
        metavar="FRACTION",
        help="run and report a random FRACTION (0-1] of each package's mutants, with a 95%% interval",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="which sample: the same seed draws the same mutants"
    )
    parser.add_argument(
        "--unseen",
        action="store_true",
        help="with --sample: leave out the mutants anyone has seen (drawn by another sample, or "
        "given a reason), so that tests written against them do not flatter the figure",
    )
    args = parser.parse_args()
    if args.sample is not None and not 0 < args.sample <= 1:
        parser.error(f"--sample: {args.sample} is not a fraction in (0, 1]")
    if not MUTMUT.exists():
        raise SystemExit("mutmut is not installed: .venv/bin/pip install -e '.[test,mutation]'")
    markdown_path = args.markdown.resolve() if args.markdown else None
    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the current directory
    sys.path.insert(0, str(ROOT))
    targets = [dotted(t) for t in args.targets]
    elapsed = None
    if args.fresh and not args.report:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    if not args.report and (restored := restore_state()):
        print(f"restored the results of {restored} modules from {STATE.relative_to(ROOT)}")
    chosen: set[str] | None = None
    if args.sample is not None:
        if not args.report:
            generate(args.max_children)
        chosen = {m.name for m in sample(collect(tuple(targets) or PACKAGES), args.sample, args.seed)}
        print(f"a sample of {len(chosen)} mutants ({args.sample:.0%} of each package, seed {args.seed})")
        if args.unseen:
            chosen = unseen(chosen, args.sample, args.seed)
            print(f"{len(chosen)} of them never seen (drawn by no other sample, given no reason)")
    if not args.report and (ROOT / "mutants").exists() and (refreshed := refresh_data_files()):
        print(f"refreshed {refreshed} files that are not Python in mutants/")
    names = None if args.report else to_run(targets, again=args.again, chosen=chosen)
    if names is not None:
        log = ROOT / "mutants" / "mutmut-run.log"
        log.parent.mkdir(exist_ok=True)
        print(
            f"mutmut run {' '.join(targets) or '(the four packages)'}: {len(names) or 'all'} names; "
            f"its output: {log.relative_to(ROOT)}"
        )
        started = time.monotonic()
        code = run_mutmut(names, max_children=args.max_children, log=log)
        elapsed = time.monotonic() - started
        print(f"kept the results of {save_state()} modules in {STATE.relative_to(ROOT)}")
        if code != 0:
            print(log.read_text()[-3000:])
            raise SystemExit(f"mutmut exited {code}")
    elif not args.report:
        print(f"{' '.join(targets)}: every mutant has a result (--again survivors|all to re-run)")
    mutants = collect(tuple(targets) or PACKAGES)
    if chosen is not None:
        mutants = [m for m in mutants if m.name in chosen]
    if not mutants:
        raise SystemExit("no mutants: run without --report first")
    sampled = chosen is not None
    ratio = report(mutants, elapsed=elapsed, sampled=sampled)
    if markdown_path:
        markdown_path.write_text(
            markdown(mutants, children=args.max_children, note=args.note, sampled=sampled)
        )
        print(f"\nwrote {markdown_path}")
    if ratio < args.min_ratio:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
