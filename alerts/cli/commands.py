"""The CLI's subcommands, one coroutine each: parse nothing, call the step modules, print."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.accounts import users
from alerts.actions import contacts as contact_actions
from alerts.app import App, open_app
from alerts.cli.parser import print_json, read_case_file
from alerts.cli.users import (  # noqa: F401  (the users handlers, found by name by parser.main)
    users_active,
    users_add,
    users_list,
    users_passwd,
    users_token,
)
from alerts.compose import approval, drafts
from alerts.compose.attachments import attach
from alerts.contacts import directory as contacts
from alerts.core.clock import parse_when, utcnow
from alerts.core.config import Settings, require_secret
from alerts.core.errors import NotFound, ValidationError
from alerts.delivery import tracking
from alerts.delivery.controls import cancel_pending, resend_failed, set_paused, test_send
from alerts.delivery.publish import load_alert_info, publish, schedule
from alerts.store.db import create_engine
from alerts.store.migrate import upgrade
from alerts.store.models import User
from channels import configured_channels


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[App]:
    async with open_app(settings, channels={}) as app:
        yield app


async def _user(session: AsyncSession, name: str | None) -> User:
    """The named user, or (no name) the first admin."""
    if name:
        return await users.get_user(session, name)
    admin = (
        (await session.execute(select(User).where(User.role == "admin").order_by(User.id))).scalars().first()
    )
    if admin is None:
        raise NotFound("no admin user exists: run `alerts init` first, or pass --as USER.")
    return admin


async def init(args: argparse.Namespace, settings: Settings) -> int:
    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    async with _app(settings) as app, app.sessions.begin() as session:
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


async def _actor(app: App, name: str | None) -> User:
    async with app.sessions() as session:
        return await _user(session, name)


async def contacts_import(args: argparse.Namespace, settings: Settings) -> int:
    if not args.file.exists():
        raise ValidationError(f"{args.file}: file not found.")
    async with _app(settings) as app:
        report = await contact_actions.import_file(
            app,
            await _actor(app, args.as_user),
            args.file,
            list_name=args.list_name,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    print(report.summary())
    for err in report.refused:
        print(f"row {err.row}: {err.reason}")
    return 2 if report.refused else 0  # DESIGN: an import with any refused row exits 2


async def contacts_export(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app:
        print_json(await contact_actions.export(app, await _actor(app, args.as_user), args.contact))
    return 0


async def contacts_erase(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app:
        report = await contact_actions.erase(app, await _actor(app, args.as_user), args.contact)
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
    async with _app(settings) as app, app.sessions.begin() as session:
        author = await _user(session, args.as_user)
        alert = await drafts.create_alert(
            session,
            author=author,
            family=args.template,
            case_data=case,
            title=args.title,
            audience=audience,
            is_public=args.public,
            validate_case=app.renderer.validate_case,
            now=utcnow(),
        )
        if args.parent is not None:
            await drafts.get_alert(session, args.parent)
            alert.parent_id = args.parent
        if args.embargo:
            alert.embargo_until = parse_when(args.embargo, field="--embargo")
        alert.fallback_email = args.fallback_email
        await session.flush()
        await attach(session, alert, args.attach, now=utcnow())
        alert_id = alert.id
    print(alert_id)
    return 0


async def alert_preview(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions() as session:
        info = await load_alert_info(session, args.id)
        content = app.builder.content(
            info, audience=args.audience, channel=args.channel, language=args.language
        )
    if content.subject:
        print(f"Subject: {content.subject}\n")
    print(content.text)
    return 0


async def alert_consent(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, args.id)
        user = await users.get_user(session, args.recorded_by)
        await approval.record_consent(
            session, alert, user=user, scope=args.scope, note=args.note, now=utcnow()
        )
    print(f"alert {args.id}: consent ({args.scope}) recorded", file=sys.stderr)
    return 0


async def alert_submit(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, args.id)
        reviewers = await approval.submit(
            session, alert, user=await _user(session, args.as_user), now=utcnow()
        )
    print(f"alert {args.id} is in review; {len(reviewers)} reviewer(s) to notify", file=sys.stderr)
    return 0


async def alert_approve(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, args.id)
        user = await users.get_user(session, args.as_user)
        pending = await approval.approve(
            session,
            alert,
            user=user,
            languages=args.languages,
            require_second_approver=settings.workflow.require_second_approver,
            now=utcnow(),
        )
    print(
        f"alert {args.id}: " + (f"still to approve: {', '.join(pending)}" if pending else "approved"),
        file=sys.stderr,
    )
    return 0


async def alert_test(args: argparse.Namespace, settings: Settings) -> int:
    require_secret(settings)
    async with open_app(settings) as app:
        channel = app.channels.get(args.channel)
        if channel is None:
            raise ValidationError(f"--channel: {args.channel} is not configured.")
        async with app.sessions() as session:
            info = await load_alert_info(session, args.id)
        outcome = await test_send(
            channel,
            app.builder,
            info,
            address=args.to,
            audience=args.audience,
            language=args.language,
            channel_name=args.channel,
        )
    print(f"test message: {outcome.kind}" + (f" ({outcome.detail})" if outcome.detail else ""))
    return 0 if outcome.kind == "sent" else 1


async def alert_send(args: argparse.Namespace, settings: Settings) -> int:
    now = utcnow()
    if args.wait:  # this process will sign unsubscribe links
        require_secret(settings)
    async with open_app(settings, channels=None if args.wait else {}) as app:
        async with app.sessions.begin() as session:
            alert = await drafts.get_alert(session, args.id)
            if args.at:
                await schedule(session, alert, at=parse_when(args.at, field="--at"), now=now)
                print(
                    f"alert {args.id} scheduled for {alert.send_at.isoformat() if alert.send_at else args.at}"
                )
                return 0
            created = await publish(
                session,
                alert,
                now=now,
                webhook_url=settings.webhook.url,
                available=configured_channels(settings),
            )
        print(f"alert {args.id}: {created} deliveries queued", file=sys.stderr)
        if not args.wait:
            return 0
        from alerts.cli.progress import wait_with_progress

        return await wait_with_progress(app, args.id)


async def alert_control(args: argparse.Namespace, settings: Settings) -> int:
    now = utcnow()
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, args.id)
        user = await _user(session, args.as_user)
        if args.action in ("pause", "resume"):
            await set_paused(session, alert, args.action == "pause", user=user, now=now)
            print(f"alert {args.id} {'paused' if args.action == 'pause' else 'resumed'}", file=sys.stderr)
        elif args.action == "resend-failed":
            n = await resend_failed(session, alert, user=user, now=now)
            print(f"alert {args.id}: {n} failed deliveries queued again", file=sys.stderr)
        else:
            await approval.close_alert(session, alert, user=user, now=now)
            withdrawn = await cancel_pending(session, alert, now=now)
            print(f"alert {args.id} closed; {withdrawn} unsent deliveries withdrawn", file=sys.stderr)
    return 0


async def alert_status(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions() as session:
        alert = await drafts.get_alert(session, args.id)
        doc = await tracking.stats(session, alert)
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


async def alert_respond(args: argparse.Namespace, settings: Settings) -> int:
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, args.id)
        contact = await contacts.get_contact(session, args.contact)
        user = await _user(session, args.as_user)
        await tracking.record_response(
            session, alert, contact_id=contact.id, summary=args.summary, recorded_by=user.id, now=utcnow()
        )
    print(f"alert {args.id}: response recorded", file=sys.stderr)
    return 0


async def bounces_process(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.delivery.bounces import parse_dsn
    from alerts.delivery.inbound import apply_reports

    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    reports = parse_dsn(raw)
    async with _app(settings) as app, app.sessions.begin() as session:
        applied = await apply_reports(session, reports, now=utcnow())
    print(f"{len(reports)} report(s): {applied} hard bounce(s) applied")
    return 0


async def serve(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.service import run_service

    if args.host:
        settings = settings.replace("server", host=args.host)
    if args.port:
        settings = settings.replace("server", port=args.port)
    await run_service(settings, web_ui=True)
    return 0


async def worker(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.service import run_service

    if args.concurrency:
        settings = settings.replace("dispatcher", concurrency=args.concurrency)
    await run_service(settings, web_ui=False)
    return 0


async def demo(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.cli.demo import run_demo

    await run_demo(settings, port=args.port, smtp_port=args.smtp_port, database=args.database)
    return 0


# -- follow-ups -----------------------------------------------------------------------------


async def followup_add(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from alerts.followups.manage import add_followup, parse_duration

    now = utcnow()
    due = parse_when(args.at, field="--at") if args.at else now + parse_duration(args.in_)
    data = read_case_file(args.data) if args.data is not None else None
    if args.alert != "-" and not args.alert.isdigit():
        raise ValidationError(f"ALERT_ID: {args.alert!r} is not an alert id (or '-' for a digest).")
    async with _app(settings) as app, app.sessions.begin() as session:
        alert = await drafts.get_alert(session, int(args.alert)) if args.alert != "-" else None
        f = await add_followup(
            session,
            alert=alert,
            kind=args.kind,
            due_at=due,
            note=args.note,
            data=data,
            condition=args.condition,
            kinds=args.kind_filter,
            user=await _user(session, args.as_user),
            now=now,
            validate_case=app.renderer.validate_case,
        )
        fid, due_at, extra = f.id, f.due_at, dict(f.data or {})
    local = due_at.astimezone(ZoneInfo(settings.scheduler.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    print(f"follow-up {fid}: {args.kind} due {local}", file=sys.stderr)
    if "update_alert_id" in extra:
        print(
            f"update draft: alert {extra['update_alert_id']} — submit and approve it before it is due",
            file=sys.stderr,
        )
    print(fid)
    return 0


async def followup_list(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from alerts.followups.manage import list_followups, to_json

    tz = ZoneInfo(settings.scheduler.timezone)
    async with _app(settings) as app, app.sessions() as session:
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
    from alerts.followups.manage import cancel_followup

    async with _app(settings) as app, app.sessions.begin() as session:
        f = await cancel_followup(session, args.id, user=await _user(session, args.as_user), now=utcnow())
        kind = f.kind
    print(
        f"follow-up {args.id} ({kind}) cancelled"
        + (": the alert is no longer scheduled" if kind == "send" else ""),
        file=sys.stderr,
    )
    return 0
