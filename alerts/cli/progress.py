"""Live progress of an alert's fan-out on the terminal (``alert send --wait``)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection
from typing import Any

from tqdm import tqdm

from alerts.app import App
from alerts.compose import drafts
from alerts.delivery import tracking
from alerts.delivery.dispatch import Dispatcher


async def wait_with_progress(app: App, alert_id: int, *, poll: float = 0.25) -> int:
    """Send the alert from this process, showing a progress bar until every delivery is final.

    Exit status: 0 when every delivery ended sent/delivered/suppressed, 1 if any failed,
    3 when it cannot finish from here (the alert is paused, or has deliveries on a channel
    this process has not configured): it stops waiting and says why instead of hanging.
    """
    dispatcher = Dispatcher(
        sessions=app.sessions,
        reads=app.reads,
        channels=app.channels,
        builder=app.builder,
        settings=app.settings.dispatcher,
        concurrency=app.channel_concurrency(),
        alert_id=alert_id,
        publish_scheduled=False,
    )
    runner = asyncio.create_task(dispatcher.run_until_done(alert_id))
    async with app.reads() as session:
        doc = await tracking.stats(session, await drafts.get_alert(session, alert_id))
    bar = tqdm(
        total=doc["total"],
        unit="msg",
        desc=f"alert {alert_id}",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
    )
    try:
        while True:
            finished = runner.done()  # before the read: the last figures are those after the end
            async with app.reads() as session:
                alert = await drafts.get_alert(session, alert_id)
                # while it sends, a large alert's counts are shared a moment (live_counts), not
                # made afresh every poll; the last read counts every delivery
                doc = await tracking.stats(
                    session, alert, count=tracking.alert_figures if finished else app.counts.figures
                )
            bar.n = doc["total"] - doc["open"]
            bar.set_postfix_str(_summary(doc["channels"]), refresh=False)
            bar.refresh()
            if finished:
                break
            stuck = _why_stuck(doc, app.channels.keys())
            if stuck:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
                bar.close()
                print(
                    f"alerts: alert {alert_id}: {stuck}; stopped waiting ({_summary(doc['channels'])})",
                    file=sys.stderr,
                )
                return 3
            await asyncio.sleep(poll)
        await runner
    finally:
        bar.close()
    print(f"alert {alert_id}: {_summary(doc['channels'])}")
    failed = sum(states.get("failed", 0) for states in doc["channels"].values())
    return 1 if failed else 0


def _why_stuck(doc: dict[str, Any], configured: Collection[str]) -> str | None:
    """Why the open deliveries cannot finish from this process, if they cannot."""
    if doc["paused"]:
        return f"it is paused (alerts alert resume {doc['id']})"
    unsendable = [
        ch
        for ch, states in doc["channels"].items()
        if ch not in configured and any(states.get(s, 0) for s in ("queued", "deferred"))
    ]
    if unsendable:
        return f"deliveries on {', '.join(unsendable)} need that channel configured here"
    return None


def _summary(channels: dict[str, dict[str, int]]) -> str:
    totals: dict[str, int] = {}
    for states in channels.values():
        for state, n in states.items():
            if n:
                totals[state] = totals.get(state, 0) + n
    return ", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "nothing to send"
