"""The CLI's read commands: ``alert list``, ``alert audience``, ``alert preview`` and
``alert status``. Each prints lines for people, or with ``--json`` one JSON document for scripts.

``alert status`` is what a person runs again and again during a send: it imports only the
database layer (this module is the first ``find_handler`` reads), and the other commands
import the actions layer and the App when they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from alerts.cli.textio import print_json
from alerts.compose import drafts
from alerts.core.config import Settings
from alerts.delivery import tracking

if TYPE_CHECKING:
    from alerts.delivery.audience_report import AudienceReport


async def alert_list(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.actions import overview
    from alerts.cli.acting import actor, quiet_app

    async with quiet_app(settings) as app:
        listed = await overview.list_alerts(
            app, await actor(app, args.as_user), status=args.state, limit=args.limit, offset=0
        )
    if args.json:
        print_json([a.to_json() for a in listed])
        return 0
    for a in listed:
        flags = "".join((" paused" if a.paused else "", " public" if a.is_public else ""))
        update = f"\tupdate of {a.parent_id}" if a.parent_id else ""
        print(
            f"{a.id}\t{a.status}{flags}\t{a.created_at:%Y-%m-%d}\t{a.family}\t"
            f"{','.join(a.languages)}\t{a.title}{update}"
        )
    if not listed:
        print("no alerts" + (f" in state {args.state}" if args.state else ""), file=sys.stderr)
    return 0


async def alert_audience(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.actions import overview
    from alerts.cli.acting import actor, quiet_app

    async with quiet_app(settings) as app:
        report = await overview.audience(app, await actor(app, args.as_user), args.id)
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(audience_lines(report)))
    return 0


def audience_lines(report: AudienceReport) -> list[str]:
    """The audience report as an officer reads it in a terminal."""
    from alerts.delivery.audience_report import LIST_LIMIT

    on, languages = ", ".join(report.channels) or "no channel", ", ".join(report.languages)
    lines = [f"alert {report.alert_id}: {report.deliveries} deliveries on {on} in {languages}"]
    for g in report.reached:
        lines.append(f"  {g.count:>7}  {g.kind:<10} {g.channel:<9} {g.language}")
    if report.webhook:
        lines.append(f"  {1:>7}  {'webhook':<10} {'webhook':<9} {report.languages[0]}")
    for f in report.fallbacks:
        lines.append(f"  language: {f.count} reading {f.wanted} get {f.shown} (no {f.wanted} text)")
    for channel in report.not_configured:
        lines.append(f"  channel {channel} is not configured here: a send is refused until it is")
    if report.left_out_counts:
        lines.append(f"left out: {report.left_out_total}")
        for reason, n in report.left_out_counts.items():
            lines.append(f"  {n:>7}  {report.why(reason)}")
        for c in report.left_out:
            org = f" ({c.organisation})" if c.organisation else ""
            lines.append(f"  contact {c.contact_id}\t{c.kind}\t{c.name}{org}\t{report.why(c.reason)}")
        if report.left_out_total > len(report.left_out):
            lines.append(f"  … the first {LIST_LIMIT} listed; --json has the same, the counts cover all")
    return lines


async def alert_preview(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.cli.acting import quiet_app
    from alerts.delivery.publish import load_alert_info

    async with quiet_app(settings) as app, app.reads() as session:
        info = await load_alert_info(session, args.id)
        content = app.builder.content(
            info, audience=args.audience, channel=args.channel, language=args.language
        )
    if content.language != args.language:
        print(
            f"alert {args.id} has no {args.language} text for this template: showing {content.language}",
            file=sys.stderr,
        )
    if args.json:
        print_json(
            {
                "id": args.id,
                "channel": content.channel,
                "audience": content.audience,
                "language": content.language,
                "subject": content.subject,
                "text": content.text,
                "html": content.html,
            }
        )
        return 0
    if content.subject:
        print(f"Subject: {content.subject}\n")
    print(content.text)
    return 0


async def alert_status(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.store.db import create_engine, make_read_sessionmaker

    engine = create_engine(settings.database.url, echo=settings.database.echo)  # no App: the database only
    try:
        async with make_read_sessionmaker(engine)() as session:
            alert = await drafts.get_alert(session, args.id)
            doc = await tracking.stats(session, alert)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps({"id": doc["id"], "state": doc["state"], "channels": doc["channels"]}))
        return 0
    print(
        f"alert {doc['id']}: {doc['state']}{' (paused)' if doc['paused'] else ''}; "
        f"{doc['total']} deliveries, {doc['open']} open"
    )
    for channel, states in doc["channels"].items():
        shown = ", ".join(f"{s} {n}" for s, n in states.items() if n)
        print(f"  {channel}: {shown or 'none'}")
    if doc["responses"]:
        print(f"  responses recorded: {doc['responses']}")
    return 0
