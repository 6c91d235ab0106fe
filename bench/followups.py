"""Follow-up firing latency: 1,000 reminders due in the same minute.

Latency is measured from a follow-up's due time to the moment the local SMTP capture server
receives its message (the receive time is recorded in the SMTP handler), through the real
scheduler, the claim, the real email channel and a real SMTP transaction.

    .venv/bin/python -m bench.followups [--n 1000] [--database URL]

Without --database it uses a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from alerts.accounts import users
from alerts.app import open_app
from alerts.cli.capture import CaptureServer
from alerts.compose import drafts
from alerts.core.clock import utcnow
from alerts.core.config import Settings
from alerts.followups.scheduler import start_scheduler
from alerts.store.db import create_engine
from alerts.store.migrate import upgrade
from alerts.store.models import Followup
from channels.email import EmailChannel
from tests.factories import RENDERER

_ID = re.compile(rb"Message-ID: <followup-(\d+)\.")


async def run(n: int, database: str) -> None:
    engine = create_engine(database)
    await upgrade(engine)
    await engine.dispose()
    async with CaptureServer(limit=n + 10) as smtp:
        settings = (
            Settings()
            .replace("database", url=database)
            .replace("email", host="127.0.0.1", port=smtp.port, pool_size=8)
        )
        async with open_app(settings, channels={"email": EmailChannel(settings.email)}) as app:
            async with app.sessions.begin() as session:
                officer, _ = await users.create_user(
                    session,
                    name=f"bench{time.time_ns()}",
                    role="officer",
                    email="officer@example.org",
                    now=utcnow(),
                )
                case = RENDERER.example("urgent-appeal")
                alert = await drafts.create_alert(
                    session,
                    author=officer,
                    family="urgent-appeal",
                    case_data=case,
                    audience=drafts.Audience(kinds=("authority",)),
                    validate_case=RENDERER.validate_case,
                    now=utcnow(),
                )
                start = utcnow() + timedelta(seconds=5)
                # spread over one minute, in the order they were added
                rows = [
                    {
                        "alert_id": alert.id,
                        "kind": "reminder",
                        "note": f"bench {i}",
                        "due_at": start + timedelta(seconds=60 * i / n),
                        "created_by": officer.id,
                        "created_at": utcnow(),
                    }
                    for i in range(n)
                ]
                returning = insert(Followup).returning(Followup.id, Followup.due_at)
                ids = (await session.execute(returning, rows)).all()
            due = dict(ids)
            t = time.perf_counter()
            scheduler = await start_scheduler(app)
            print(f"{n} jobs rebuilt from the table in {time.perf_counter() - t:.2f} s; first due in 5 s")
            deadline = time.monotonic() + 120
            while smtp.handler.count < n and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await scheduler.stop()
        latencies = []
        for message in smtp.messages():
            match = _ID.search(message.raw)
            if match:
                latencies.append((message.received_at - due[int(match.group(1))]).total_seconds())
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"fired {len(latencies)} of {n} (scheduler counted {scheduler.fired}); latency due → SMTP receipt: "
        f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(args.n, url))


if __name__ == "__main__":
    main()
