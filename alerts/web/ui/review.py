"""The review screen's evidence, shown before the decision: every language side by side, each
channel as its recipient sees it (an email with its subject and HTML; a Telegram message as
Telegram shows it, with no subject), for one kind of reader at a time; and what changed since
the last approved version, as a diff of the case data."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.core.channels import ChannelName
from alerts.core.errors import AlertsError
from alerts.delivery.messages import AlertInfo, MessageBuilder
from alerts.store.models import Alert, AlertVersion, Approval
from alerts.web.ui import casetoml

#: The channels shown, in this order (the webhook carries the email form; press has its own).
SHOWN = (ChannelName.EMAIL.value, ChannelName.PRESS.value, ChannelName.TELEGRAM.value)
#: How a Telegram message looks in a chat: its HTML (the Bot API's subset) in a bubble.
_BUBBLE = (
    '<!doctype html><meta charset="utf-8"><body style="margin:0;background:#dfe7ef;'
    'font:15px/1.4 system-ui,sans-serif"><div style="margin:8px;padding:8px 10px;background:#fff;'
    'border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;max-width:34rem">{}</div>'
)


@dataclass(frozen=True, slots=True)
class Shown:
    """One channel in one language, as its recipient sees it."""

    language: str
    subject: str | None  # None for Telegram, which has no subject
    frame: str | None  # a document for a sandboxed frame (the HTML), or None
    text: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Review:
    audience: str
    audiences: tuple[str, ...]
    channels: tuple[tuple[str, tuple[Shown, ...]], ...]  # (channel, one Shown per language)
    diff: tuple[tuple[str, str], ...]  # (css class, line) against the last approved version
    approved_version: int | None


def _show(builder: MessageBuilder, info: AlertInfo, *, audience: str, channel: str, language: str) -> Shown:
    try:
        content = builder.content(info, audience=audience, channel=channel, language=language)
    except AlertsError as exc:
        return Shown(language=language, subject=None, frame=None, text="", error=exc.message)
    if channel == ChannelName.TELEGRAM:
        return Shown(language=language, subject=None, frame=_BUBBLE.format(content.text), text=content.text)
    return Shown(language=language, subject=content.subject, frame=content.html, text=content.text)


async def _last_approved(session: AsyncSession, alert: Alert, current: int) -> AlertVersion | None:
    query = (
        select(AlertVersion)
        .join(Approval, Approval.version_id == AlertVersion.id)
        .where(AlertVersion.alert_id == alert.id, AlertVersion.number < current)
        .order_by(AlertVersion.number.desc())
        .limit(1)
    )
    return (await session.scalars(query)).first()


def case_diff(old: dict[str, object], new: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """The case data's TOML, old against new, as (class, line): ``add``, ``del``, ``hunk``."""
    lines = difflib.unified_diff(
        casetoml.dumps(old).splitlines(), casetoml.dumps(new).splitlines(), lineterm="", n=2
    )
    out: list[tuple[str, str]] = []
    for line in list(lines)[2:]:  # the ---/+++ file lines say nothing here
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
    return tuple(out)


async def review(
    session: AsyncSession,
    builder: MessageBuilder,
    alert: Alert,
    info: AlertInfo,
    *,
    channels: Sequence[str],
    audiences: Sequence[str],
    audience: str | None,
) -> Review:
    """What a reviewer reads before deciding (``audience``: the kind of reader shown)."""
    kinds = tuple(audiences) or ("authority",)
    chosen = audience if audience in kinds else kinds[0]
    shown_channels = [c for c in SHOWN if c in channels] or [ChannelName.EMAIL.value]
    grid = tuple(
        (
            channel,
            tuple(
                _show(builder, info, audience=chosen, channel=channel, language=language)
                for language in alert.languages
            ),
        )
        for channel in shown_channels
    )
    before = await _last_approved(session, alert, info.version)
    diff = case_diff(before.case_data, info.case_data) if before is not None else ()
    return Review(
        audience=chosen,
        audiences=kinds,
        channels=grid,
        diff=diff,
        approved_version=before.number if before is not None else None,
    )
