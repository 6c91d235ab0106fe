"""``alerts demo``'s sample data (issue 11): a public, consented alert, so that the archive, the
feed and CAP show something the moment the demo starts; and it is seeded all or nothing: a
failure half-way leaves the database as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.cli.demo import seed
from alerts.compose.families import default_templates_dir
from alerts.core.config import Settings
from alerts.core.errors import ValidationError
from alerts.delivery.archive import public_alerts
from alerts.service import make_dispatcher
from alerts.store.db import create_engine
from alerts.store.models import Alert, Contact, User
from tests.web.conftest import site_settings


async def test_the_demo_seeds_a_public_consented_alert_the_archive_shows(db_url: str) -> None:
    async with CaptureServer() as capture:
        settings = site_settings(db_url).replace(
            "email", host="127.0.0.1", port=capture.port, security="none"
        )
        alert_id = await seed(settings)
        assert alert_id is not None
        assert await seed(settings) is None  # seeding twice adds nothing
        async with open_app(settings) as app:
            await make_dispatcher(app).run_until_done(alert_id, timeout=30)  # as the demo's service does
            async with app.sessions() as session:
                shown = await public_alerts(session, app.builder, limit=10)
        assert capture.messages(), "the sample alert reached nobody"
    assert [a.id for a in shown] == [alert_id]
    assert {t.language for t in shown[0].texts} == {"en", "fr", "es"}


async def counts(db_url: str) -> tuple[int, int, int]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return tuple(
                [
                    (await conn.execute(select(func.count()).select_from(m))).scalar_one()
                    for m in (User, Contact, Alert)
                ]
            )  # type: ignore[return-value]
    finally:
        await engine.dispose()


async def test_a_failed_seed_writes_nothing_and_the_next_one_seeds_everything(
    db_url: str, tmp_path: Path
) -> None:
    settings = (
        Settings().replace("database", url=db_url).replace("server", secret_key="demo-test-secret-0123456789")
    )
    ours = tmp_path / "ours" / "urgent-appeal"
    shutil.copytree(default_templates_dir() / "urgent-appeal", ours)
    example = ours / "example.toml"
    example.write_text(example.read_text().replace('defender = "', 'defender_name = "', 1))
    with pytest.raises(ValidationError, match="defender"):  # after the users and contacts were written
        await seed(settings.replace("paths", templates=str(tmp_path / "ours")))
    assert await counts(db_url) == (0, 0, 0)
    alert_id = await seed(settings)
    users, contacts, alerts = await counts(db_url)
    assert (users, alerts, alert_id) == (3, 1, 1) and contacts > 10
    assert await seed(settings) is None  # seeded once
    assert await counts(db_url) == (users, contacts, alerts)
