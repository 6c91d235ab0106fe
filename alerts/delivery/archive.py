"""The public archive: which alerts are public, their public texts, and Atom 1.0 feeds.

An alert is public when it is marked public, the latest consent recorded for it has scope
``public``, it was published and is ``sent`` or ``closed``. Only its public form (the text
the public audience got, per approved language) is ever shown: never case notes, consent
notes, recipients or counts. A consent withdrawn later ("restricted") takes the alert out;
``withdrawn_public`` then says what a CAP ``Cancel`` may say of it: its id and times, nothing
of its content.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.compose import approval
from alerts.core import urls
from alerts.core.states import AlertStatus
from alerts.core.text import for_xml
from alerts.core.types import RenderedContent
from alerts.delivery.messages import AlertInfo, MessageBuilder
from alerts.delivery.publish import load_alert_info
from alerts.store.models import Alert, Consent

ATOM_NS = "http://www.w3.org/2005/Atom"
PUBLIC_STATUSES = (AlertStatus.SENT.value, AlertStatus.CLOSED.value)
#: The form of an alert the archive shows: what the public audience receives by email.
PUBLIC_AUDIENCE = "public"


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicText:
    """One language of a public alert."""

    language: str
    subject: str
    text: str
    event: str = ""  # CAP <event>, from the family's catalogue in this language
    sender_name: str = ""  # CAP <senderName>: the case's organisation in this language


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicAlert:
    """What the archive may show of an alert."""

    id: int
    title: str
    family: str
    parent_id: int | None
    published_at: datetime
    updated_at: datetime
    closed: bool
    texts: tuple[PublicText, ...]

    def text(self, language: str | None) -> PublicText:
        """The text in ``language``, else English, else the first."""
        by = {t.language: t for t in self.texts}
        return by.get(language or "") or by.get("en") or self.texts[0]


def _public_query() -> Select[Alert]:
    latest_scope = (
        select(Consent.scope)
        .where(Consent.alert_id == Alert.id)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
        .correlate(Alert)
        .scalar_subquery()
    )
    return select(Alert).where(
        Alert.is_public.is_(True),
        Alert.status.in_(PUBLIC_STATUSES),
        Alert.published_at.is_not(None),
        latest_scope == "public",
    )


async def public_ids(session: AsyncSession, *, limit: int = 50, offset: int = 0) -> list[int]:
    """Ids of public alerts, most recently published first."""
    query = _public_query().order_by(Alert.published_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    return [a.id for a in (await session.scalars(query)).all()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawn:
    """An alert the archive showed once and no longer may (consent withdrawn)."""

    id: int
    published_at: datetime
    withdrawn_at: datetime


def _latest_consent(column: Any) -> Any:
    return (
        select(column)
        .where(Consent.alert_id == Alert.id)
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
        .limit(1)
        .correlate(Alert)
        .scalar_subquery()
    )


def _withdrawn_query() -> Select[int, datetime, datetime]:
    """Alerts that went out public with public consent, whose latest consent is not public."""
    withdrawn_at = _latest_consent(Consent.recorded_at).label("withdrawn_at")
    once_public = select(Consent.id).where(Consent.alert_id == Alert.id, Consent.scope == "public").exists()
    return select(Alert.id, Alert.published_at, withdrawn_at).where(
        Alert.is_public.is_(True),
        Alert.status.in_((*PUBLIC_STATUSES, AlertStatus.SENDING.value)),
        Alert.published_at.is_not(None),
        _latest_consent(Consent.scope) != "public",
        once_public,
    )


async def withdrawn_public(session: AsyncSession, alert_id: int) -> Withdrawn | None:
    """The alert, when it went out public with public consent and its latest consent is no longer
    public; None otherwise (never public, still public, or no such alert)."""
    row = (await session.execute(_withdrawn_query().where(Alert.id == alert_id))).first()
    return None if row is None else Withdrawn(id=row[0], published_at=row[1], withdrawn_at=row[2])


async def withdrawn_alerts(session: AsyncSession, *, limit: int = 50) -> list[Withdrawn]:
    """The most recently withdrawn of those alerts, for the CAP index's ``Cancel`` entries."""
    query = _withdrawn_query().order_by(text("withdrawn_at DESC"), Alert.id.desc()).limit(limit)
    return [
        Withdrawn(id=r[0], published_at=r[1], withdrawn_at=r[2]) for r in (await session.execute(query)).all()
    ]


async def is_public(session: AsyncSession, alert_id: int) -> bool:
    """Whether the archive may show this alert."""
    return await session.scalar(_public_query().where(Alert.id == alert_id)) is not None


#: ``original`` of an update whose first alert is not public: a blank title (the templates then
#: leave out the line naming it) and no reference.
HIDDEN_TITLE = " "


async def _public_content(
    session: AsyncSession, builder: MessageBuilder, info: AlertInfo, language: str
) -> RenderedContent:
    """The public form of one language, naming the thread's first alert only if it is public too."""
    original = info.original
    if original is None or await is_public(session, int(original["id"])):
        return builder.content(info, audience=PUBLIC_AUDIENCE, channel="email", language=language)
    # rendered here, not through the builder's cache: the dispatcher's form names the original
    extra: dict[str, Any] = {
        "alert_title": info.title,
        "alert_url": urls.public_alert(builder.public_url, info.id),
        "original": {"title": HIDDEN_TITLE, "date": original["date"], "id": "-"},
    }
    if info.embargo_until is not None:
        extra["embargo_until"] = info.embargo_until.strftime("%Y-%m-%d %H:%M UTC")
    return builder.renderer.render(
        info.family, info.case_data, audience=PUBLIC_AUDIENCE, channel="email", language=language, extra=extra
    )


async def public_alert(session: AsyncSession, builder: MessageBuilder, alert_id: int) -> PublicAlert | None:
    """The public form of an alert, or None when it is not public (or does not exist); ``builder``
    renders it (the App's ``builder``)."""
    alert = await session.scalar(_public_query().where(Alert.id == alert_id))
    if alert is None or alert.published_at is None:
        return None
    languages = await approval.approved_languages(session, alert) or ["en"]
    info = await load_alert_info(session, alert.id)
    texts = []
    for language in languages:
        content = await _public_content(session, builder, info, language)
        case = builder.renderer.case_values(info.family, info.case_data, content.language)
        texts.append(
            PublicText(
                language=language,
                subject=content.subject,
                text=content.text,
                event=str(builder.renderer.words(info.family, content.language).get("cap_event", "")),
                sender_name=str(case.get("organisation") or ""),
            )
        )
    parent_id = (
        alert.parent_id if alert.parent_id is not None and await is_public(session, alert.parent_id) else None
    )
    return PublicAlert(
        id=alert.id,
        title=alert.title,
        family=alert.family,
        parent_id=parent_id,
        published_at=alert.published_at,
        updated_at=alert.closed_at or alert.completed_at or alert.published_at,
        closed=alert.status == AlertStatus.CLOSED.value,
        texts=tuple(texts),
    )


async def public_alerts(
    session: AsyncSession, builder: MessageBuilder, *, limit: int = 50, offset: int = 0
) -> list[PublicAlert]:
    """The newest public alerts, in their public form."""
    out = []
    for alert_id in await public_ids(session, limit=limit, offset=offset):
        found = await public_alert(session, builder, alert_id)
        if found is not None:
            out.append(found)
    return out


def rfc3339(value: datetime) -> str:
    """An aware time as Atom writes it."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", {key: for_xml(value) for key, value in attrs.items()})
    if text is not None:
        el.text = for_xml(text)
    return el


def atom_feed(
    alerts: list[PublicAlert],
    *,
    base_url: str,
    self_path: str,
    title: str,
    now: datetime,
    canonical: Callable[[str, int], str] = urls.public_alert,
    canonical_type: str = "text/html",
    language: str | None = None,
    cancelled: Sequence[Withdrawn] = (),
) -> bytes:
    """An Atom 1.0 document of ``alerts`` (built with ElementTree, text made XML-safe by
    ``for_xml``: nothing unescaped, no character XML cannot carry).

    Each entry's id is its ``canonical`` link, the one ``rel="alternate"`` link, first; each
    language's page follows as a ``rel="related"`` link with ``hreflang``. Feed readers pick
    "the" link of an entry differently (feedparser takes the last ``alternate`` of an HTML
    type, or the id when there is none; others the first), so a single alternate is the only
    way every reader opens the same, canonical one (RFC 4287 §4.2.7.2).

    ``cancelled`` (the CAP index): withdrawn alerts, each an entry linking its document, now a
    CAP ``Cancel``, so that consumers polling the index learn of it; nothing of its text.
    """
    ET.register_namespace("", ATOM_NS)
    base = base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", f"{base}{self_path}")
    _sub(feed, "title", title)
    changes = [a.updated_at for a in alerts] + [c.withdrawn_at for c in cancelled]
    _sub(feed, "updated", rfc3339(max(changes, default=now)))
    _sub(feed, "link", rel="self", href=f"{base}{self_path}", type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=f"{base}/alerts", type="text/html")
    author = _sub(feed, "author")
    _sub(author, "name", "Urgent Alerts")
    _sub(feed, "generator", "Urgent Alerts")
    for a in alerts:
        text = a.text(language)
        link = canonical(base, a.id)
        entry = _sub(feed, "entry")
        _sub(entry, "id", link)
        _sub(entry, "title", text.subject or a.title)
        _sub(entry, "published", rfc3339(a.published_at))
        _sub(entry, "updated", rfc3339(a.updated_at))
        _sub(entry, "link", rel="alternate", href=link, type=canonical_type)
        for t in a.texts:
            _sub(
                entry,
                "link",
                rel="related",
                href=urls.public_alert(base, a.id, language=t.language),
                type="text/html",
                hreflang=t.language,
            )
        summary = _sub(entry, "content", text.text, type="text")
        summary.set("{http://www.w3.org/XML/1998/namespace}lang", text.language)
    for withdrawn in cancelled:
        link = canonical(base, withdrawn.id)
        entry = _sub(feed, "entry")
        _sub(entry, "id", link)
        _sub(entry, "title", "Withdrawn")
        _sub(entry, "updated", rfc3339(withdrawn.withdrawn_at))
        _sub(entry, "link", rel="alternate", href=link, type=canonical_type)
        _sub(entry, "content", "This alert was withdrawn by its sender.", type="text")
    out: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return out
