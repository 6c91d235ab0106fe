"""``alerts demo``: the whole service on embedded defaults, with sample data and a local
SMTP capture server, so a new user sees an alert go out within a minute."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts import users
from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.compose import approval, drafts
from alerts.compose.render import Renderer
from alerts.contacts.csv_import import import_csv
from alerts.core.channels import ChannelName
from alerts.core.clock import utcnow
from alerts.core.config import DEFAULT_SECRET, Settings
from alerts.delivery.publish import publish
from alerts.service import run_service
from alerts.store.models import Alert, Contact, User
from channels import configured_channels

logger = logging.getLogger(__name__)

DEMO_DATA = Path(__file__).parent / "demo_data"
LOGINS = {
    "officer": ("officer", "demo-officer"),
    "reviewer": ("reviewer", "demo-reviewer"),
    "admin": ("admin", "demo-admin"),
}


def demo_secret(path: Path) -> str:
    """A random secret for the demo, kept beside its database so links survive a restart."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


async def seed(settings: Settings) -> int | None:
    """Users, contacts and one sample alert, approved, public and sent (only on an empty database).

    All of it in one transaction: a demo that fails half-way (a template family missing from
    an install, a full disk) leaves the database as it found it, and the next run starts over.
    """
    async with open_app(settings, channels={}, migrate=True) as app:
        example = app.renderer.example("urgent-appeal")  # before anything is written
        async with app.engine.connect() as conn, conn.begin():
            # Every session below joins this one transaction; their commits are savepoints.
            sessions = async_sessionmaker(
                conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            return await _seed_in(sessions, app.renderer, example, settings)


async def _seed_in(
    sessions: async_sessionmaker[AsyncSession],
    renderer: Renderer,
    example: dict[str, Any],
    settings: Settings,
) -> int | None:
    async with sessions.begin() as session:
        if (await session.execute(select(func.count()).select_from(User))).scalar_one() == 0:
            for role, (name, password) in LOGINS.items():
                await users.create_user(
                    session, name=name, role=role, password=password, email=f"{name}@localhost", now=utcnow()
                )
    async with sessions() as session:
        have_contacts = (await session.execute(select(func.count()).select_from(Contact))).scalar_one()
    if not have_contacts:
        report = await import_csv(sessions, DEMO_DATA / "contacts.csv")
        logger.info("demo contacts: %s", report.summary())
    async with sessions.begin() as session:
        if (await session.execute(select(func.count()).select_from(Alert))).scalar_one():
            return None
        officer = await users.get_user(session, "officer")
        reviewer = await users.get_user(session, "reviewer")
        now = utcnow()
        alert = await drafts.create_alert(
            session,
            author=officer,
            family="urgent-appeal",
            case_data=example,
            audience=drafts.Audience(
                lists=("urgent-appeals", "press"),
                channels=(ChannelName.EMAIL.value, ChannelName.PRESS.value),
                languages=("en", "fr", "es"),
            ),
            is_public=True,  # the archive, the feeds and CAP show it: the demo has something public
            validate_case=renderer.validate_case,
            now=now,
        )
        await approval.record_consent(
            session, alert, user=officer, scope="public", note="demo: consent to publicity", now=now
        )
        await approval.submit(session, alert, user=officer, now=now)
        await approval.approve(session, alert, user=reviewer, now=now)
        await publish(session, alert, now=now, available=configured_channels(settings))
        return alert.id


async def run_demo(settings: Settings, *, port: int, smtp_port: int, database: str) -> None:
    """Seed, start the capture server and serve until interrupted."""
    settings = settings.replace("database", url=database)
    if settings.server.secret_key == DEFAULT_SECRET:
        settings = settings.replace("server", secret_key=demo_secret(Path(".alerts-demo-secret")))
    settings = settings.replace("server", port=port, public_url=f"http://127.0.0.1:{port}")
    settings = settings.replace(
        "email", host="127.0.0.1", port=smtp_port, security="none", username="", password=""
    )
    alert_id = await seed(settings)
    async with CaptureServer(host="127.0.0.1", port=smtp_port) as capture:
        ready = asyncio.Event()
        service = asyncio.create_task(
            run_service(settings, web_ui=True, ready=ready, extras={"capture": capture}, warn=False)
        )
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, service}, return_when=asyncio.FIRST_COMPLETED)
        if service.done():  # it failed before it was ready: show why
            waiter.cancel()
            await service
            return
        url = f"http://127.0.0.1:{port}"
        print(f"Urgent Alerts demo running at {url}")
        for role, (name, password) in LOGINS.items():
            print(f"  sign in as {role}: {name} / {password}")
        if alert_id is not None:
            print(f"  sample alert {alert_id} is being sent to the capture SMTP server on port {smtp_port}")
        print(f"  watch it: ALERTS_DATABASE_URL={database} alerts alert status {alert_id or 1}")
        print("Press Ctrl+C to stop.", flush=True)
        await service
