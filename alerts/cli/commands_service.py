"""The CLI's commands that run the service or feed it: ``serve``, ``worker``, ``demo`` and
``bounces process``. The parser finds a handler here when ``alerts.cli.commands`` has none of
that name. Like every handler: parse nothing, call the step, print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alerts.app import open_app
from alerts.core.clock import utcnow
from alerts.core.config import Settings


async def bounces_process(args: argparse.Namespace, settings: Settings) -> int:
    """``alerts bounces process FILE|-``: apply a bounce report (to addresses we mailed only)."""
    from alerts.core.verp import Verp
    from alerts.delivery.bounce_scan import read_bounce
    from alerts.delivery.inbound import apply_bounce
    from alerts.delivery.lmtp import verp_delivery_in_headers

    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    bounce = read_bounce(raw)
    verp_id = verp_delivery_in_headers(raw, Verp(settings.server.secret_key, settings.server.old_secret_keys))
    async with open_app(settings, channels={}) as app, app.sessions.begin() as session:
        applied = await apply_bounce(session, bounce, now=utcnow(), verp_delivery_id=verp_id)
    print(f"{len(bounce.reports)} report(s): {applied.describe()}")
    return 1 if applied.early else 0


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    """``alerts serve``: web app, bot, dispatcher and scheduler until a signal."""
    from alerts.service import run_service

    if args.host:
        settings = settings.replace("server", host=args.host)
    if args.port:
        settings = settings.replace("server", port=args.port)
    await run_service(settings, web_ui=True)
    return 0


async def worker(args: argparse.Namespace, settings: Settings) -> int:
    """``alerts worker``: dispatcher and scheduler only."""
    from alerts.service import run_service

    if args.concurrency:
        settings = settings.replace("dispatcher", concurrency=args.concurrency)
    await run_service(settings, web_ui=False)
    return 0


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    """``alerts demo``: the whole service with sample data and a local mailbox."""
    from alerts.cli.demo import run_demo

    await run_demo(settings, port=args.port, smtp_port=args.smtp_port, database=args.database)
    return 0
