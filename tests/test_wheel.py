"""A normal install runs: the wheel built from the sources, installed into a fresh venv (no
editable finder, nothing of this checkout on its path), then ``alerts demo`` from an empty
folder until it serves ``/healthz``, and ``alerts templates check`` on a family of our own.

The fresh venv borrows the dependencies already installed for the tests (a ``.pth`` line to
their site-packages: paths only, so the checkout's editable finder there is not loaded), which
keeps the test offline and quick; the package itself comes from the wheel alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.own_family import FAMILY, write_own_family

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "alerts", "channels", "templates")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a clean copy of the sources (as `pip install .` builds it)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(folder / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [built] = (folder / "dist").glob("urgent_alerts-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its bin/ folder."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return folder / "bin"


def clean_env() -> dict[str, str]:
    """The environment without this checkout: no ALERTS_* settings, no PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ALERTS_") and k != "PYTHONPATH"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wheel_holds_the_templates_every_migration_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {str(p.relative_to(ROOT)) for p in (ROOT / "templates").rglob("*") if p.is_file()}
    assert templates and {f"alerts/{name}" for name in templates} <= names
    migrations = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "alerts" / "store" / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "alerts/store/migrations/script.py.mako" in migrations and migrations <= names
    assert any(name.endswith((".dist-info/licenses/LICENSE", ".dist-info/LICENSE")) for name in names)


def test_the_installed_package_is_the_wheel_not_this_checkout(venv: Path, tmp_path: Path) -> None:
    found = subprocess.run(
        [venv / "python", "-c", "import alerts.compose.render as r; print(r.__file__); print(r.default_templates_dir())"],
        cwd=tmp_path, env=clean_env(), check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    prefix = str(venv.parent)
    assert (
        found[0].startswith(prefix) and found[1].startswith(prefix) and found[1].endswith("alerts/templates")
    )


@pytest.fixture
def demo(venv: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    folder = tmp_path / "empty"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [venv / "alerts", "demo", "--port", str(port), "--smtp-port", str(free_port())],
        cwd=folder, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield process, port, folder
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_demo_runs_from_an_empty_folder(
    demo: tuple[subprocess.Popen[str], int, Path], venv: Path
) -> None:
    process, port, folder = demo
    status = None
    async with aiohttp.ClientSession() as session:
        for _ in range(600):  # up to 60 s on a busy machine
            if process.poll() is not None:
                break
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    status = response.status
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    assert status == 200, process.stderr.read() if process.poll() is not None else "no /healthz within 60 s"
    status_json = subprocess.run(
        [venv / "alerts", "alert", "status", "1", "--json"], cwd=folder, check=True, capture_output=True, text=True,
        env={**clean_env(), "ALERTS_DATABASE_URL": "sqlite+aiosqlite:///alerts-demo.db"},
    ).stdout  # fmt: skip
    sample = json.loads(status_json)
    assert sample["id"] == 1 and set(sample["channels"]) == {"email", "press"}  # seeded whole
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"Urgent Alerts demo running at http://127.0.0.1:{port}" in out
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("alerts-demo.db-")) == [
        ".alerts-demo-secret",
        "alerts-demo.db",
    ]


def test_templates_check_and_list_on_a_family_of_our_own(venv: Path, tmp_path: Path) -> None:
    family = write_own_family(tmp_path / "ours")
    run = subprocess.run(
        [venv / "alerts", "templates", "check", "ours"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert (run.returncode, run.stdout) == (0, f"{FAMILY}: ok (80 forms rendered)\n"), run.stderr
    (tmp_path / "alerts.toml").write_text('[paths]\ntemplates = "ours"\n')
    listed = subprocess.run(
        [venv / "alerts", "templates", "list"], cwd=tmp_path, env=clean_env(), check=True, capture_output=True, text=True
    ).stdout  # fmt: skip
    assert [line.split()[:2] for line in listed.splitlines()] == [
        ["closure", "shipped"], [FAMILY, "own"], ["update", "shipped"], ["urgent-appeal", "shipped"],
    ]  # fmt: skip
    (family / "body.html.j2").write_text("<p>{{ case.messge }}</p>\n")
    run = subprocess.run(
        [venv / "alerts", "templates", "check", str(family)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert f"  {FAMILY}/body.html.j2:1: case.messge is not declared in family.toml" in run.stdout.splitlines()


def test_the_licence_file_is_the_licence_pyproject_declares() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "AGPL-3.0-or-later"
    assert text.split()[:6] == ["GNU", "AFFERO", "GENERAL", "PUBLIC", "LICENSE", "Version"]
    assert (
        "Version 3, 19 November 2007" in text
        and "13. Remote Network Interaction; Use with the GNU General" in text
    )
