"""App: everything a running service holds, opened and closed in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alerts.compose.render import Renderer
from alerts.contacts.subscriptions import Signer
from alerts.core.config import Settings
from alerts.core.metrics import Metrics
from alerts.core.signing import Signing
from alerts.core.verp import Verp
from alerts.delivery.audience_reports import AudienceReports
from alerts.delivery.gauges import QueueGauges
from alerts.delivery.give_way import GiveWay
from alerts.delivery.links import TrackingLinks
from alerts.delivery.live_counts import LiveCounts
from alerts.delivery.messages import MessageBuilder, message_domain
from alerts.delivery.over_time import Charts
from alerts.delivery.wakeup import Doorbell
from alerts.store.db import create_engine, make_read_sessionmaker, make_sessionmaker
from channels import build_channels
from channels.base import Channel


@dataclass
class App:
    """The open service: settings, database, renderer, channels (no global state)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    renderer: Renderer
    channels: dict[str, Channel]
    builder: MessageBuilder
    reads: async_sessionmaker[AsyncSession]  # pure reads (polls, metrics, live counts): no write lock
    signing: Signing  # every signed token: sessions, links, tracking (current and old keys)
    metrics: Metrics = field(default_factory=Metrics)  # this process's figures for /metrics
    extras: dict[str, Any] = field(default_factory=dict)  # dispatcher, scheduler, capture…
    doorbell: Doorbell = field(default_factory=Doorbell)  # rung after a commit that queued sends
    gauges: QueueGauges = field(init=False)  # the database's figures, cached for a few seconds
    charts: Charts = field(init=False)  # alerts' events over time, read as they come
    counts: LiveCounts = field(init=False)  # large sends' counts, shared by every reader
    reports: AudienceReports = field(init=False)  # who an alert would reach, shared by who asks
    give_way: GiveWay = field(init=False)  # officers' reads before the senders (``alerts serve``)

    def __post_init__(self) -> None:
        self.gauges = QueueGauges(self.metrics, self.reads)
        self.counts = LiveCounts(self.reads)
        self.charts = Charts(reads=self.reads)
        self.reports = AudienceReports()
        self.give_way = GiveWay(holds=self.metrics.senders_held)

    def channel_concurrency(self) -> dict[str, int]:
        """Senders per channel (see ``channel_concurrency``)."""
        return channel_concurrency(self.settings)


def channel_concurrency(s: Settings) -> dict[str, int]:
    """Senders per channel: two per pooled SMTP connection, the bot's cap for Telegram.

    Two senders share each SMTP connection so that one builds its next message and records
    its outcome while the other holds the connection: with one sender each, every connection
    sat idle between messages and a fan-out was bound by round-trip latency, not by the relay.
    """
    return {
        "email": 2 * s.email.pool_size,
        "press": max(2, s.email.pool_size // 4),
        "telegram": s.telegram.concurrency,
        "webhook": 4,
        "memory": s.dispatcher.concurrency,
    }


@asynccontextmanager
async def open_app(
    settings: Settings,
    *,
    channels: Mapping[str, Channel] | None = None,
    migrate: bool = False,
) -> AsyncIterator[App]:
    """Open the engine, renderer and channels; close them in reverse order."""
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    try:
        if migrate:
            from alerts.store.migrate import upgrade  # alembic: only for those that migrate

            await upgrade(engine)
        own = settings.paths.templates
        renderer = Renderer(own_templates=Path(own) if own else None)
        signing = Signing(settings.server.secret_key, settings.server.old_secret_keys)
        chans = dict(channels) if channels is not None else build_channels(settings)
        builder = MessageBuilder(
            renderer,
            public_url=settings.server.public_url,
            domain=message_domain(settings.email.from_),
            link_token=Signer(signing).link_token,
            tracking=TrackingLinks(
                signing,
                public_url=settings.server.public_url,
                opens=settings.tracking.opens,
                clicks=settings.tracking.clicks,
            ),
            verp=Verp(settings.server.secret_key, settings.server.old_secret_keys)
            if settings.bounces.verp
            else None,
        )
        opened: list[Channel] = []
        try:
            for ch in chans.values():
                await ch.open()
                opened.append(ch)
            app = App(
                settings=settings,
                engine=engine,
                sessions=make_sessionmaker(engine),
                reads=make_read_sessionmaker(engine),
                renderer=renderer,
                channels=chans,
                builder=builder,
                signing=signing,
            )
            try:
                yield app
            finally:
                await app.counts.close()  # before the engine their counts and charts read from
                await app.charts.close()
                await app.reports.close()
        finally:
            for ch in reversed(opened):
                await ch.close()
    finally:
        await engine.dispose()
