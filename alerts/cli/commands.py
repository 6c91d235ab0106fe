"""The CLI's subcommands, one coroutine each: parse nothing, call the step modules, print."""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select

from alerts.accounts import users
from alerts.actions import alerts as alert_actions
from alerts.actions import contacts as contact_actions
from alerts.actions import followups as followup_actions
from alerts.actions import responses, sending
from alerts.app import open_app
from alerts.cli.acting import actor, quiet_app
from alerts.cli.textio import print_json, read_case_file
from alerts.compose import drafts
from alerts.core.clock import parse_when, utcnow
from alerts.core.config import Settings, require_secret
from alerts.core.errors import ValidationError
from alerts.core.ids import parse_number
from alerts.store.db import create_engine
from alerts.store.migrate import upgrade
from alerts.store.models import User


async def init(args: argparse.Namespace, settings: Settings) -> int:
    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    async with quiet_app(settings) as app, app.sessions.begin() as session:
        count = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        if count:
            print("database is up to date; users exist already", file=sys.stderr)
            return 0
        password = args.password or secrets.token_urlsafe(12)
        _, token = await users.create_user(
            session, name=args.admin, role="admin", password=password, with_token=True, now=utcnow()
        )
    print(f"database ready. First admin: {args.admin}")
    if not args.password:
        print(f"password (shown once): {password}")
    print(f"API token (shown once): {token}")
    return 0


async def contacts_import(args: argparse.Namespace, settings: Settings) -> int:
    source: BinaryIO | Path = sys.stdin.buffer if args.file == "-" else Path(args.file)
    if isinstance(source, Path) and not source.is_file():
        why = (
            "file not found"
            if not source.exists()
            else "not a file (give a CSV file, or - for standard input)"
        )
        raise ValidationError(f"{source}: {why}.")
    async with quiet_app(settings) as app:
        report = await contact_actions.import_file(
            app,
            await actor(app, args.as_user),
            source,
            list_name=args.list_name,
            progress=not args.no_progress and sys.stderr.isatty(),
            default_kind=args.default_kind,
        )
    # what was done and what to fix go to stderr (stdout stays empty for scripts); any refused
    # row makes the exit status 2
    print(report.summary(), file=sys.stderr)
    for err in report.refused:
        print(f"row {err.row}: {err.reason}", file=sys.stderr)
    return 2 if report.refused else 0  # DESIGN: an import with any refused row exits 2


async def contacts_export(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        print_json(await contact_actions.export(app, await actor(app, args.as_user), args.contact))
    return 0


async def contacts_erase(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        report = await contact_actions.erase(app, await actor(app, args.as_user), args.contact)
    print(f"erased contact {report.contact_id}")
    return 0


async def alert_create(args: argparse.Namespace, settings: Settings) -> int:
    case = read_case_file(args.data)
    audience = drafts.Audience(
        lists=tuple(args.lists),
        kinds=tuple(args.kinds),
        channels=tuple(args.channels),
        languages=tuple(args.languages or ["en"]),
    )
    embargo = parse_when(args.embargo, field="--embargo") if args.embargo else None
    async with quiet_app(settings) as app:
        created = await alert_actions.create(
            app,
            await actor(app, args.as_user),
            family=args.template,
            case_data=case,
            audience=audience,
            title=args.title,
            is_public=args.public,
            parent_id=args.parent,
            embargo_until=embargo,
            fallback_email=args.fallback_email,
            attachments=args.attach,
        )
    print(created.alert_id)
    return 0


async def alert_edit(args: argparse.Namespace, settings: Settings) -> int:
    case = read_case_file(args.data) if args.data is not None else None
    async with quiet_app(settings) as app:
        done = await alert_actions.edit(
            app, await actor(app, args.as_user), args.id, case_data=case, title=args.title
        )
    print(f"alert {done.alert_id}: version {done.version}, {done.status}", file=sys.stderr)
    return 0


async def alert_consent(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        done = await alert_actions.record_consent(
            app, await actor(app, args.as_user), args.id, scope=args.scope, note=args.note
        )
    withdrawn = f"; {done.withdrawn} unsent public deliveries withdrawn" if done.withdrawn else ""
    print(f"alert {done.alert_id}: consent ({done.scope}) recorded{withdrawn}", file=sys.stderr)
    return 0


async def alert_submit(args: argparse.Namespace, settings: Settings) -> int:
    async with open_app(settings) as app:  # with its channels: the reviewers are told at once
        done = await alert_actions.submit(app, await actor(app, args.as_user), args.id)
    print(
        f"alert {done.alert_id} is in review; {len(done.notified)} of {len(done.reviewers)} "
        "reviewer(s) notified",
        file=sys.stderr,
    )
    return 0


async def alert_approve(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        async with app.reads() as session:
            user = await users.get_user(session, args.as_user)
        done = await alert_actions.approve(app, user, args.id, languages=args.languages)
    remaining = f"still to approve: {', '.join(done.remaining)}" if done.remaining else "approved"
    print(f"alert {done.alert_id}: {remaining}", file=sys.stderr)
    return 0


async def alert_test(args: argparse.Namespace, settings: Settings) -> int:
    require_secret(settings)
    async with open_app(settings) as app:
        done = await sending.test_send(
            app,
            await actor(app, args.as_user),
            args.id,
            address=args.to,
            channel=args.channel,
            audience=args.audience,
            language=args.language,
        )
    outcome = done.outcome
    print(f"test message: {outcome.kind}" + (f" ({outcome.detail})" if outcome.detail else ""))
    return 0 if outcome.kind == "sent" else 1


async def alert_send(args: argparse.Namespace, settings: Settings) -> int:
    if args.wait:  # this process will sign unsubscribe links
        require_secret(settings)
    at = parse_when(args.at, field="--at") if args.at else None
    async with open_app(settings, channels=None if args.wait else {}) as app:
        done = await sending.send(app, await actor(app, args.as_user), args.id, at=at)
        if at is not None:
            print(
                f"alert {done.alert_id} scheduled for {done.send_at.isoformat() if done.send_at else args.at}"
            )
            return 0
        print(f"alert {done.alert_id}: {done.queued} deliveries queued", file=sys.stderr)
        if not args.wait:
            return 0
        from alerts.cli.progress import wait_with_progress

        return await wait_with_progress(app, args.id)


async def alert_control(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        who = await actor(app, args.as_user)
        if args.action in ("pause", "resume"):
            paused = await sending.set_paused(app, who, args.id, paused=args.action == "pause")
            print(f"alert {paused.alert_id} {'paused' if paused.paused else 'resumed'}", file=sys.stderr)
        elif args.action == "resend-failed":
            resent = await sending.resend_failed(app, who, args.id)
            print(
                f"alert {resent.alert_id}: {resent.requeued} failed deliveries queued again", file=sys.stderr
            )
        else:
            closed = await alert_actions.close(app, who, args.id)
            print(closed_line(closed), file=sys.stderr)
    return 0


def closed_line(closed: alert_actions.Closed) -> str:
    """What ``alert close`` says it did."""
    if closed.already_closed:
        return f"alert {closed.alert_id} is already closed; nothing changed"
    return (
        f"alert {closed.alert_id} closed; {closed.withdrawn} unsent deliveries withdrawn; "
        f"{len(closed.followups)} pending follow-up(s) cancelled"
        + (f" ({', '.join(map(str, closed.followups))})" if closed.followups else "")
        + f"; {len(closed.updates)} drafted update(s) withdrawn"
        + (f" (alert {', '.join(map(str, closed.updates))})" if closed.updates else "")
    )


async def alert_respond(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        done = await responses.respond(
            app, await actor(app, args.as_user), args.id, sender=args.contact, summary=args.summary
        )
    source = f"contact {done.contact_id}" if done.contact_id is not None else "a sender who is not a contact"
    print(f"alert {done.alert_id}: response {done.response_id} recorded, from {source}", file=sys.stderr)
    return 0


# -- follow-ups -----------------------------------------------------------------------------


async def followup_add(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from alerts.followups.manage import parse_duration

    due = parse_when(args.at, field="--at") if args.at else utcnow() + parse_duration(args.in_)
    data = read_case_file(args.data) if args.data is not None else None
    alert = None if args.alert == "-" else parse_number(args.alert, "ALERT_ID", minimum=1)
    async with quiet_app(settings) as app:
        done = await followup_actions.add(
            app,
            await actor(app, args.as_user),
            alert,
            kind=args.kind,
            due_at=due,
            note=args.note,
            data=data,
            condition=args.condition,
            kinds=args.kind_filter,
        )
    local = done.due_at.astimezone(ZoneInfo(settings.scheduler.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    print(f"follow-up {done.followup_id}: {done.kind} due {local}", file=sys.stderr)
    if done.update_alert_id is not None:
        print(
            f"update draft: alert {done.update_alert_id} — submit and approve it before it is due",
            file=sys.stderr,
        )
    print(done.followup_id)
    return 0


async def followup_list(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from alerts.followups.manage import list_followups, to_json

    tz = ZoneInfo(settings.scheduler.timezone)
    async with quiet_app(settings) as app, app.reads() as session:
        rows = [
            to_json(f, tz) for f in await list_followups(session, alert_id=args.alert, include_done=args.all)
        ]
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        due = datetime.fromisoformat(r["due_local"]).strftime("%Y-%m-%d %H:%M %Z")
        target = f"alert {r['alert_id']}" if r["alert_id"] is not None else "all cases"
        line = f"{r['id']}\t{due}\t{r['kind']}\t{target}\t{r['status']}"
        if r["condition"]:
            line += f"\tif {r['condition'].replace('_', '-')}"
        if r["note"]:
            line += f"\t{r['note']}"
        if r["result"] and r["status"] != "pending":
            line += f"\t[{r['result']}]"
        print(line)
    return 0


async def followup_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async with quiet_app(settings) as app:
        done = await followup_actions.cancel(app, await actor(app, args.as_user), args.id)
    print(
        f"follow-up {done.followup_id} ({done.kind}) cancelled"
        + (": the alert is no longer scheduled" if done.kind == "send" else ""),
        file=sys.stderr,
    )
    return 0
