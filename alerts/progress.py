"""Live progress of an alert's fan-out on the terminal (``alert send --wait``)."""

from __future__ import annotations

import asyncio
import sys

from tqdm import tqdm

from alerts import drafts, tracking
from alerts.app import App
from alerts.dispatch import Dispatcher


async def wait_with_progress(app: App, alert_id: int, *, poll: float = 0.25) -> int:
    """Send the alert from this process, showing a progress bar until every delivery is final.

    Exit status: 0 when every delivery ended sent/delivered/suppressed, 1 if any failed.
    """
    dispatcher = Dispatcher(
        sessions=app.sessions,
        channels=app.channels,
        builder=app.builder,
        settings=app.settings.dispatcher,
        concurrency=app.channel_concurrency(),
        alert_id=alert_id,
        publish_scheduled=False,
    )
    runner = asyncio.create_task(dispatcher.run_until_done(alert_id))
    async with app.sessions() as session:
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
            async with app.sessions() as session:
                doc = await tracking.stats(session, await drafts.get_alert(session, alert_id))
            bar.n = doc["total"] - doc["open"]
            bar.set_postfix_str(_summary(doc["channels"]), refresh=False)
            bar.refresh()
            if runner.done():
                break
            await asyncio.sleep(poll)
        await runner
    finally:
        bar.close()
    print(f"alert {alert_id}: {_summary(doc['channels'])}")
    failed = sum(states.get("failed", 0) for states in doc["channels"].values())
    return 1 if failed else 0


def _summary(channels: dict[str, dict[str, int]]) -> str:
    totals: dict[str, int] = {}
    for states in channels.values():
        for state, n in states.items():
            if n:
                totals[state] = totals.get(state, 0) + n
    return ", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "nothing to send"
