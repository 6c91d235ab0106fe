"""``alerts demo``'s sample data (issue 11): a public, consented alert, so that the archive, the
feed and CAP show something the moment the demo starts."""

from __future__ import annotations

from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.cli.demo import seed
from alerts.delivery.archive import public_alerts
from alerts.service import make_dispatcher
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
