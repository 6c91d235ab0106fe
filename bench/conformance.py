"""The API's full schemathesis run against a real ``alerts serve`` (the README's command).

    .venv/bin/python -m bench.conformance                    # every phase: 50 examples, 5 min stateful
    .venv/bin/python -m bench.conformance --phases stateful --stateful-seconds 600
    .venv/bin/python -m bench.conformance -- --include-tag alerts  # after --: more `st run` options

It sets up a fresh service in a temporary folder (SQLite, or ``--database URL``) with email
going to a local SMTP sink (``bench/smtp_sink.py``), an admin that the run acts as
(``conformance-run``, a name schemathesis will not make up, so it never rotates its own token),
a second reviewer (``conformance-review``) who approves what the admin wrote, and one contact of
each kind, so that an alert addressed to any kind has someone to reach. Then it runs schemathesis
over every operation: every check, positive and negative data, and the stateful phase through
the document's links, with the two tokens given per operation by ``bench/conformance_hooks.py``
(a scenario can create, submit, approve and send one alert). Two schemathesis runs on the same
service: the unit phases, then the stateful one for a time budget. It prints their reports,
then each run's size and duration; the exit status is the worse of theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from alerts.contacts.fields import KINDS
from bench.conformance_hooks import REVIEWER_TOKEN, RUNNER_TOKEN

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = ROOT / "tests" / "web" / "schemathesis.toml"
RUNNER, REVIEWER = "conformance-run", "conformance-review"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run ``alerts ARGS`` and return its stdout (stderr shown if it fails)."""
    done = subprocess.run([str(BIN / "alerts"), *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"alerts {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def _api(base: str, token: str, method: str, path: str, body: object) -> object:
    request = urllib.request.Request(
        f"{base}/api/v1{path}",
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def _wait_for(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"alerts serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s")


def _service_env(folder: Path, database: str | None, smtp_port: int) -> dict[str, str]:
    """The service's settings: embedded defaults (no alerts.toml in ``folder``) and these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTS_")}
    env.update(
        ALERTS_DATABASE_URL=database or f"sqlite+aiosqlite:///{folder / 'conformance.db'}",
        ALERTS_SERVER_SECRET_KEY=secrets.token_urlsafe(32),
        ALERTS_EMAIL_HOST="127.0.0.1",
        ALERTS_EMAIL_PORT=str(smtp_port),
    )
    return env


UNIT_PHASES = "examples,coverage,fuzzing"


def st_command(url: str, args: argparse.Namespace, phases: str) -> list[str]:
    """The schemathesis command line: every check, positive and negative data."""
    command = [
        str(BIN / "st"),
        "--config-file",
        str(CONFIG),
        "run",
        url,
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        phases,
        # One worker: schemathesis' workers are threads, and CPython 3.11.7's ast module is not
        # thread-safe (gh-106905: "AST constructor recursion depth mismatch" in hypothesis).
        "--workers",
        "1",
        "--suppress-health-check",
        "too_slow",
        "--no-color",
    ]
    # The unit phases run a number of examples an operation; the stateful phase, which stops
    # early on its own (a few dozen scenarios), repeats scenarios for a time budget instead.
    if phases == "stateful":
        command += ["--max-examples", str(args.examples), "--max-time", str(args.stateful_seconds)]
    else:
        command += ["--max-examples", str(args.examples)]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    return command + args.st_args


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run schemathesis, echoing its report: (exit status, report, seconds)."""
    started = time.monotonic()
    run = subprocess.Popen(["nice", *command], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    report = []
    for line in run.stdout:
        print(line, end="", flush=True)
        report.append(line)
    return run.wait(), "".join(report), time.monotonic() - started


def _summary(phases: str, code: int, report: str, seconds: float) -> str:
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", report)
    cases = re.search(r"Test cases:\s*\n\s*(\d+) generated", report)
    scenarios = re.search(r"Scenarios:\s+(\d+)", report)
    return (
        f"conformance {phases}: {seconds / 60:.1f} min, {cases.group(1) if cases else '?'} test cases"
        + (f", {scenarios.group(1)} scenarios" if scenarios else "")
        + (f", links {links.group(1)} of {links.group(3)} followed" if links else "")
        + f", st exit status {code}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=50, help="--max-examples per operation (default 50)")
    parser.add_argument(
        "--phases",
        default=f"{UNIT_PHASES},stateful",
        help="examples,coverage,fuzzing,stateful (default: all)",
    )
    parser.add_argument(
        "--stateful-seconds", type=int, default=300, help="the stateful phase's time budget (default 300)"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--database", help="database URL (default: SQLite in a temporary folder)")
    parser.add_argument("st_args", nargs="*", help="more `st run` options, after --")
    args = parser.parse_args()
    wanted = args.phases.split(",")
    passes = [",".join(p for p in wanted if p != "stateful")] if set(wanted) - {"stateful"} else []
    passes += ["stateful"] if "stateful" in wanted else []

    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        folder = Path(tmp)
        sink = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "smtp_sink.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sink.stdout is not None
        ready = sink.stdout.readline().split()
        env = _service_env(folder, args.database, int(ready[1]))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = None
        summaries, worst = [], 0
        try:
            out = _cli(env, folder, "init", "--admin", RUNNER)
            runner = re.search(r"^API token \(shown once\): (\S+)$", out, re.M)
            assert runner is not None, "alerts init printed no API token"
            reviewer = _cli(
                env, folder, "users", "add", REVIEWER, "--role", "reviewer", "--no-password", "--token"
            )
            server = subprocess.Popen(
                ["nice", str(BIN / "alerts"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(folder / "serve.log", "w"),
            )
            _wait_for(f"{base}/api/v1/openapi.json", server)
            for kind in KINDS:
                contact = {"name": f"Conformance {kind}", "email": f"{kind}@example.org", "kind": kind}
                _api(base, runner.group(1), "POST", "/contacts", contact)
            st_env = {
                **env,
                "SCHEMATHESIS_HOOKS": "bench.conformance_hooks",
                "PYTHONPATH": str(ROOT),
                RUNNER_TOKEN: runner.group(1),
                REVIEWER_TOKEN: reviewer.strip(),
            }
            for phases in passes:
                code, report, seconds = _run(st_command(f"{base}/api/v1/openapi.json", args, phases), st_env)
                summaries.append(_summary(phases, code, report, seconds))
                worst = max(worst, code)
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            sink.terminate()
            sink.wait(30)
    print("\n" + "\n".join(summaries))
    return worst


if __name__ == "__main__":
    sys.exit(main())
