"""``alerts serve`` and ``alerts worker``: run the web app, dispatcher and scheduler until a
signal, then stop them in order (web first, dispatcher last so in-flight sends finish)."""

from __future__ import annotations

import asyncio
import logging
import signal
from email.utils import parseaddr

from aiohttp import web

from alerts.app import App, open_app
from alerts.core.config import Settings, listen_address, require_secret
from alerts.core.loop import loop_name, start_up_frozen
from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.wakeup import Wakeup
from alerts.followups.scheduler import start_scheduler

logger = logging.getLogger(__name__)


def deployment_warnings(settings: Settings) -> list[str]:
    """What a real deployment should fix before it mails anyone (``alerts demo`` runs without)."""
    warnings = []
    public_url = settings.server.public_url
    if not public_url.lower().startswith("https://"):
        warnings.append(
            f"[server] public_url is {public_url!r}, not https: one-click unsubscribe (RFC 8058) needs "
            "an https link, and links over http can be read and changed on the way"
        )
    email = settings.email
    if not (email.dkim_selector and email.dkim_domain and email.dkim_key_file):
        warnings.append(
            "[email] DKIM signing is off (dkim_selector, dkim_domain, dkim_key_file): Gmail and Yahoo "
            "ask bulk senders for DKIM, and honour one-click unsubscribe only on signed mail"
        )
    return warnings


def make_dispatcher(app: App, *, web_first: bool = False) -> Dispatcher:
    """The dispatcher for this process, from the app's settings; ``web_first``: its senders
    give way to the officers' reads of the web (``alerts serve``)."""
    return Dispatcher(
        sessions=app.sessions,
        reads=app.reads,
        channels=app.channels,
        builder=app.builder,
        settings=app.settings.dispatcher,
        concurrency=app.channel_concurrency(),
        webhook_url=app.settings.webhook.url,
        metrics=app.metrics,
        wakeup=Wakeup(app.engine, app.doorbell),
        give_way=app.give_way if web_first else None,
    )


async def start_metrics_listener(app: App) -> web.AppRunner | None:
    """A worker's ``[metrics] listen``: /metrics, /livez, /readyz, /healthz (None when off).

    A port already taken is logged as an error and the worker sends anyway: alerts going out
    matter more than their figures (and the scrape failing shows it).
    """
    if not app.settings.metrics.listen:
        return None
    from alerts.web.ops import make_listener_app

    host, port = listen_address(app.settings.metrics.listen)
    runner = web.AppRunner(make_listener_app(app), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        logger.error(
            "[metrics] listen %s: %s; this worker runs without metrics (give each worker its own "
            "port, e.g. ALERTS_METRICS_LISTEN=127.0.0.1:9102)",
            app.settings.metrics.listen,
            exc.strerror or exc,
        )
        await runner.cleanup()
        return None
    bound = runner.addresses[0]  # the real port when the setting asks for port 0
    logger.info(
        "metrics and probes on http://%s/metrics",
        f"{host}:{bound[1]}" if ":" not in host else f"[{host}]:{bound[1]}",
    )
    return runner


async def run_service(
    settings: Settings,
    *,
    web_ui: bool = True,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    extras: dict[str, object] | None = None,
    warn: bool = True,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop``); ``warn``: log ``deployment_warnings`` first."""
    require_secret(settings)
    for warning in deployment_warnings(settings) if warn else []:
        logger.warning("%s", warning)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    async with open_app(settings, migrate=True) as app:
        dispatcher = make_dispatcher(app, web_first=web_ui)
        app.extras["dispatcher"] = dispatcher
        app.extras.update(extras or {})
        runner: web.AppRunner | None = None
        if web_ui:
            from alerts.web import make_web_app

            runner = web.AppRunner(make_web_app(app), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, settings.server.host, settings.server.port)
            await site.start()
            logger.info("serving on http://%s:%s", settings.server.host, settings.server.port)
        else:
            runner = await start_metrics_listener(app)
        scheduler = None
        if web_ui:  # `alerts worker` only sends; the scheduler runs in `alerts serve`
            scheduler = await start_scheduler(app)
            app.extras["scheduler"] = scheduler
        bounce_server = None
        if settings.bounces.listen:
            from alerts.core.verp import Verp
            from alerts.delivery.lmtp import start_listener

            bounce_server = await start_listener(
                app.sessions,
                host=settings.bounces.host,
                port=settings.bounces.port,
                verp=Verp(settings.server.secret_key, settings.server.old_secret_keys),
                senders=[parseaddr(settings.email.from_)[1], parseaddr(settings.press.from_)[1]],
            )
            logger.info("bounce listener (LMTP) on %s:%s", settings.bounces.host, settings.bounces.port)
        dispatch_task = asyncio.create_task(dispatcher.run(stop), name="dispatcher")
        bot_task = None
        if settings.telegram.token and web_ui:
            from alerts.bot import run_bot

            bot_task = asyncio.create_task(run_bot(app, stop), name="telegram-bot")
        try:
            with start_up_frozen():
                if ready is not None:
                    ready.set()
                logger.info("dispatcher %s running on %s's event loop", dispatcher.worker, loop_name())
                await stop.wait()
        finally:
            logger.info("shutting down")
            if bot_task is not None:
                bot_task.cancel()
                await asyncio.gather(bot_task, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
            if scheduler is not None:
                await scheduler.stop()
            if bounce_server is not None:
                bounce_server.close()
            await dispatch_task
