"""``alerts serve`` / ``alerts worker`` start-up: the deployment warnings (public_url not https,
DKIM off), logged by every real start and left out of ``alerts demo``."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from alerts.core.config import Settings
from alerts.service import deployment_warnings, run_service

SECRET = "service-test-secret-0123456789"


def _settings(db_url: str) -> Settings:
    return Settings().replace("database", url=db_url).replace("server", secret_key=SECRET)


def test_an_https_url_and_dkim_leave_nothing_to_warn_about() -> None:
    settings = (
        Settings()
        .replace("server", public_url="https://alerts.example.org")
        .replace("email", dkim_selector="s1", dkim_domain="example.org", dkim_key_file="/etc/alerts/dkim.pem")
    )
    assert deployment_warnings(settings) == []
    plain = deployment_warnings(settings.replace("server", public_url="http://alerts.example.org"))
    assert [w.split(" ", 1)[0] for w in plain] == ["[server]"]
    assert "'http://alerts.example.org', not https" in plain[0] and "RFC 8058" in plain[0]
    no_key = deployment_warnings(settings.replace("email", dkim_key_file=""))
    assert len(no_key) == 1 and no_key[0].startswith("[email] DKIM signing is off")


@pytest.mark.parametrize("warn", [True, False])
async def test_start_up_logs_the_warnings_unless_told_not_to(
    db_url: str, caplog: pytest.LogCaptureFixture, warn: bool
) -> None:
    settings = _settings(db_url)  # the embedded defaults: http://127.0.0.1, no DKIM
    stop, ready = asyncio.Event(), asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="alerts.service"):
        service = asyncio.create_task(run_service(settings, web_ui=False, stop=stop, ready=ready, warn=warn))
        await asyncio.wait_for(ready.wait(), 30)
        stop.set()
        await asyncio.wait_for(service, 30)
    logged = [
        r.getMessage() for r in caplog.records if r.name == "alerts.service" and r.levelname == "WARNING"
    ]
    assert logged == (deployment_warnings(settings) if warn else [])
    assert len(deployment_warnings(settings)) == 2


async def test_while_it_runs_what_start_up_allocated_is_out_of_the_collectors_full_passes(
    db_url: str,
) -> None:
    """A full pass of the cyclic collector walked start-up's ~100,000 objects and stopped the
    loop for 60–73 ms every few seconds of a large send; they are frozen while the service
    runs and given back to the collector when it stops."""
    assert gc.get_freeze_count() == 0
    stop, ready = asyncio.Event(), asyncio.Event()
    service = asyncio.create_task(run_service(_settings(db_url), web_ui=False, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        frozen = gc.get_freeze_count()
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
    assert frozen > 10_000 and gc.get_freeze_count() == 0
