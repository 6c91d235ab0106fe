"""Confirm with mutmut's own mechanism the survivors a reason says a named test kills.

    .venv/bin/python bench/mutation_confirm.py [--jobs 2]

mutmut maps each mutated function to the tests that reach it once (its "stats") and later adds
only tests with new names: a test that was edited to kill a survivor (an assertion added) stays
unmapped, so a re-run runs the old list and the mutant survives again. For each survivor whose
reason in bench/mutation-reasons.toml reads "killed by tests/…::test…", this runs that test in
``mutants/`` as mutmut does (``MUTANT_UNDER_TEST`` selects the mutant in the trampolines):
without the mutant it must pass, with it it must fail. Then the mutant is recorded killed (exit
code 1) in its module's ``mutants/…meta``, as mutmut records one. Run ``bench/mutation.py
--report`` afterwards; the results are kept in bench/mutation-state by the next run's save (or
``save_state()``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
TEST_ID = re.compile(r"killed by (tests/[\w/]+\.py::\w+(?:\[[\w\-.]+\])?)")


def run_test(test: str, mutant: str) -> bool:
    """Whether ``test`` passes in mutants/ with ``mutant`` active (a name that does not exist
    leaves the original code)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", test],
        cwd=MUTANTS,
        env={**os.environ, "MUTANT_UNDER_TEST": mutant},
        capture_output=True,
        timeout=300,
    )
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    reasons = tomllib.loads((ROOT / "bench" / "mutation-reasons.toml").read_text())["reasons"]
    metas = {}
    todo: list[tuple[str, str, Path]] = []
    for meta in sorted((MUTANTS / "alerts").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        metas[meta] = data
        for name, code in data["exit_code_by_key"].items():
            found = TEST_ID.search(reasons.get(name, ""))
            # survived (0), or no test reached it when mutmut mapped them (33): a test added since may
            if code in (0, 33) and found and (MUTANTS / found.group(1).split("::")[0]).exists():
                todo.append((name, found.group(1), meta))
    print(f"{len(todo)} survivors name the test that kills them")
    baseline: dict[str, bool] = {}

    def check(job: tuple[str, str, Path]) -> tuple[str, str, Path, str]:
        name, test, meta = job
        if test not in baseline:
            baseline[test] = run_test(test, "none")
        if not baseline[test]:
            return name, test, meta, "the test fails without the mutant"
        return name, test, meta, "survives" if run_test(test, name) else "killed"

    confirmed = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, test, meta, verdict in pool.map(check, todo):
            print(f"{verdict:>34}  {name}  ({test})", flush=True)
            if verdict == "killed":
                metas[meta]["exit_code_by_key"][name] = 1
                confirmed += 1
    for meta, data in metas.items():
        meta.write_text(json.dumps(data, indent=4))
    print(f"confirmed killed: {confirmed} of {len(todo)}")


if __name__ == "__main__":
    main()
