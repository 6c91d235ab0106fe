"""The public XML outputs checked by peers nobody here wrote: the CAP documents against the OASIS
CAP 1.2 XML Schema, both Atom feeds against the RFC 4287 RELAX NG grammar (and its two
Schematron rules), and both feeds through feedparser — on alerts holding every awkward input:
control characters stored before the rule refused them, emoji and flags, right-to-left text,
and ``<script>``, ``]]>`` and ``&`` in every field. The schemas are in tests/data/schemas/."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree
from sqlalchemy import select, update

from alerts.compose import approval
from alerts.core.clock import utcnow
from alerts.core.states import AlertStatus
from alerts.delivery.archive import PublicAlert, PublicText
from alerts.delivery.publish import publish
from alerts.store.models import Alert, AlertVersion, Delivery, User
from tests.factories import RENDERER, add_contacts, approved_alert, make_users
from tests.web.conftest import Site

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
CAP_XSD = etree.XMLSchema(etree.parse(str(SCHEMAS / "CAP-v1.2.xsd")))
ATOM_RNG = etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))
NS = {"atom": "http://www.w3.org/2005/Atom", "cap": "urn:oasis:names:tc:emergency:cap:1.2"}
# The grammar's Schematron rules (RFC 4287 appendix B), which RELAX NG validation leaves out.
SCHEMATRON = {
    "//atom:feed": "atom:author or not(atom:entry[not(atom:author)])",
    "//atom:entry": "atom:link[@rel='alternate'] or atom:link[not(@rel)] or atom:content",
}

MARKUP = "<script>alert('x')</script> ]]> & &amp; \"q\" 'a'"
VISIBLE = "🇺🇦 👩🏽‍⚖️ 漢字 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200f"  # flags, ZWJ emoji, CJK, RTL
#: What an officer pasted before control characters were refused (Word's Shift+Enter, BEL,
#: ESC, noncharacters); in case data (JSON), SQLite also kept a NUL and a lone surrogate, which
#: PostgreSQL refuses.
STORED = "\x0b\x07\x1b\x08\ufffe\uffff\x85\u2028"
STORED_SQLITE = "\x00\ud800"


def _awkward(value: Any, spec_type: str, extra: str) -> Any:
    """``value`` with awkward text added to every string a person typed (urls stay urls)."""
    if isinstance(value, dict):
        return {key: _awkward(item, spec_type, extra) for key, item in value.items()}
    if isinstance(value, list):
        return [_awkward(item, spec_type, extra) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or spec_type in ("date", "contact"):
        return value
    if spec_type == "url":
        return value + "?q=%3Cscript%3E&x=]]%3E"
    return f"{value} {MARKUP} {VISIBLE}{extra}"


def _awkward_case(family: str, extra: str) -> dict[str, Any]:
    variables = RENDERER.family(family).variables
    case = RENDERER.example(family)
    out = {}
    for key, value in case.items():
        spec_type = variables[key].type
        if spec_type == "authorities":
            out[key] = [
                {k: v if k == "language" else _awkward(v, "string", extra) for k, v in a.items()}
                for a in value
            ]
        else:
            out[key] = _awkward(value, spec_type, extra)
    return out


async def _awkward_alert(site: Site, *, parent_id: int | None = None, withdraw: bool = False) -> int:
    """A public, sent alert (en, fr, ar… as approved) whose stored title and case data hold the awkward text."""
    async with site.app.sessions.begin() as session:
        officer = await session.scalar(select(User).where(User.name == "olga"))
        reviewer = await session.scalar(select(User).where(User.name == "rafael"))
        if officer is None or reviewer is None:
            officer, reviewer = await make_users(session)
        family = "update" if parent_id else "urgent-appeal"
        alert = await approved_alert(
            session,
            author=officer,
            reviewer=reviewer,
            lists=(),
            kinds=("public",),
            languages=("en", "fr", "es"),
            parent_id=parent_id,
            family=family,
        )
        alert.is_public = True
        extra = STORED + (STORED_SQLITE if session.bind.dialect.name == "sqlite" else "")
        # stored as an older version would have stored it: straight into the rows, no rule applied
        await session.execute(
            update(AlertVersion)
            .where(AlertVersion.alert_id == alert.id)
            .values(case_data=_awkward_case(family, extra))
        )
        await session.execute(
            update(Alert).where(Alert.id == alert.id).values(title=f"{MARKUP} {VISIBLE}{STORED}")
        )
        await approval.record_consent(session, alert, user=reviewer, scope="public", now=utcnow())
        await publish(session, alert, now=utcnow())
        await session.execute(update(Delivery).where(Delivery.alert_id == alert.id).values(state="sent"))
        await approval.set_status(session, alert, AlertStatus.SENT, user=None, now=utcnow())
        if withdraw:
            await approval.record_consent(session, alert, user=reviewer, scope="restricted", now=utcnow())
        return alert.id


async def _get(site: Site, path: str, content_type: str) -> bytes:
    async with site.http.get(site.base + path) as r:
        assert r.status == 200, (path, await r.text())
        assert r.content_type == content_type
        return await r.read()


def _valid(schema: etree.XMLSchema | etree.RelaxNG, body: bytes) -> etree._Element:
    document = etree.fromstring(body)  # raises on anything not well-formed
    assert schema.validate(document), [str(e) for e in schema.error_log]
    return document


@pytest.fixture
async def awkward(site: Site) -> dict[str, int]:
    async with site.app.sessions.begin() as session:
        await add_contacts(session, 1, kind="public")
    first = await _awkward_alert(site)
    update_ = await _awkward_alert(site, parent_id=first)
    withdrawn = await _awkward_alert(site, withdraw=True)
    return {"first": first, "update": update_, "withdrawn": withdrawn}


async def test_cap_documents_are_valid_cap_1_2(site: Site, awkward: dict[str, int]) -> None:
    first, update_, withdrawn = awkward["first"], awkward["update"], awkward["withdrawn"]
    documents = {
        name: _valid(CAP_XSD, await _get(site, f"/alerts/{alert_id}.cap.xml", "application/cap+xml"))
        for name, alert_id in awkward.items()
    }
    alert = documents["first"]
    assert alert.findtext("cap:sent", namespaces=NS).endswith("-00:00")  # CAP §3.3.2
    infos = alert.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["en", "fr", "es"]
    events = [i.findtext("cap:event", namespaces=NS) for i in infos]
    assert events == [
        "Human rights defender at risk",
        "Défenseur·e des droits humains en danger",
        "Persona defensora de derechos humanos en riesgo",
    ]
    assert len({i.findtext("cap:headline", namespaces=NS) for i in infos}) == 3  # each in its language
    for info in infos:
        description = info.findtext("cap:description", namespaces=NS) or ""
        assert "<script>" in description and "]]>" in description and VISIBLE.strip() in description
        assert "\x0b" not in description and "\x07" not in description and "\ufffe" not in description
        assert MARKUP in (info.findtext("cap:senderName", namespaces=NS) or "")  # the case's organisation
    assert documents["update"].findtext("cap:msgType", namespaces=NS) == "Update"
    sent_first = alert.findtext("cap:sent", namespaces=NS)
    assert documents["update"].findtext("cap:references", namespaces=NS) == (
        f"alerts.test,alerts.test-alert-{first},{sent_first}"
    )
    cancel = documents["withdrawn"]
    assert cancel.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert (cancel.findtext("cap:references", namespaces=NS) or "").startswith(
        f"alerts.test,alerts.test-alert-{withdrawn},"
    )
    text = etree.tostring(cancel, encoding="unicode")
    assert "Marenco" not in text and "script" not in text and cancel.find("cap:info", NS) is None
    assert update_ != first


@pytest.mark.parametrize(("path", "canonical", "link_type"), [
    ("/feed.atom", "http://alerts.test/alerts/{id}", "text/html"),
    ("/feed.atom?lang=fr", "http://alerts.test/alerts/{id}", "text/html"),
    ("/alerts/cap.atom", "http://alerts.test/alerts/{id}.cap.xml", "application/cap+xml"),
])  # fmt: skip
async def test_feeds_are_valid_atom_and_read_right_by_feedparser(
    site: Site, awkward: dict[str, int], path: str, canonical: str, link_type: str
) -> None:
    body = await _get(site, path, "application/atom+xml")
    feed = _valid(ATOM_RNG, body)
    for context, test in SCHEMATRON.items():
        for element in feed.xpath(context, namespaces=NS):
            assert element.xpath(f"boolean({test})", namespaces=NS), (context, test)
    shown = [awkward["update"], awkward["first"]]  # newest first; the withdrawn one is gone…
    cancelled = [awkward["withdrawn"]] if "cap" in path else []  # …but for its Cancel, in the CAP index
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [entry.link for entry in parsed.entries] == [canonical.format(id=i) for i in shown + cancelled]
    for entry, alert_id in zip(parsed.entries, shown + cancelled, strict=True):
        alternates = [link for link in entry.links if link.rel == "alternate"]
        assert [(link.href, link.type) for link in alternates] == [(canonical.format(id=alert_id), link_type)]
        assert entry.links[0].rel == "alternate"  # the canonical link comes first
        languages = {link.hreflang: link.href for link in entry.links if link.rel == "related"}
        if alert_id in cancelled:
            assert languages == {} and entry.title == "Withdrawn"
            assert "Marenco" not in str(entry) and "script" not in str(entry)
            continue
        assert languages == {
            lang: f"http://alerts.test/alerts/{alert_id}?lang={lang}" for lang in ("en", "fr", "es")
        }
        assert "<script>" in entry.title and VISIBLE.strip() in entry.content[0].value


def two_language_alert(at: datetime) -> PublicAlert:
    """Alert 7, published at ``at``, with an English and a French text."""
    return PublicAlert(
        id=7,
        title="t",
        family="urgent-appeal",
        parent_id=None,
        published_at=at,
        updated_at=at,
        closed=False,
        texts=(
            PublicText(language="en", subject="s", text="x"),
            PublicText(language="fr", subject="s", text="x"),
        ),
    )


def test_a_feed_names_itself_its_page_and_each_languages_page_and_cap_declares_its_encoding() -> None:
    from datetime import datetime

    from alerts.delivery.archive import atom_feed
    from alerts.delivery.cap import cap_alert

    at = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    alert = two_language_alert(at)
    body = atom_feed([alert], base_url="https://a.test/", self_path="/alerts/feed.atom", title="T", now=at)
    feed = etree.fromstring(body)
    assert feed.findtext("atom:id", namespaces=NS) == "https://a.test/alerts/feed.atom"
    links = [dict(link.attrib) for link in feed.findall("atom:link", NS)]
    assert links == [
        {"rel": "self", "href": "https://a.test/alerts/feed.atom", "type": "application/atom+xml"},
        {"rel": "alternate", "href": "https://a.test/alerts", "type": "text/html"},
    ]
    related = feed.findall("atom:entry/atom:link[@rel='related']", NS)
    assert [(link.get("hreflang"), link.get("type")) for link in related] == [
        ("en", "text/html"),
        ("fr", "text/html"),
    ]
    assert cap_alert(alert, public_url="https://a.test").startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_a_feed_in_a_language_shows_each_entry_in_it_marked_as_such_and_names_its_author() -> None:
    """``?lang=fr``: the French subject and text, ``xml:lang="fr"``; a language the alert lacks, or
    none, shows the English; the feed's author is the service."""
    from alerts.delivery.archive import atom_feed

    at = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    alert = PublicAlert(
        id=7,
        title="t",
        family="urgent-appeal",
        parent_id=None,
        published_at=at,
        updated_at=at,
        closed=False,
        texts=(
            PublicText(language="fr", subject="Sujet", text="En français"),
            PublicText(language="en", subject="Subject", text="In English"),
        ),
    )
    shown = {}
    for language in ("fr", "de", None):
        body = atom_feed(
            [alert], base_url="https://a.test/", self_path="/feed.atom", title="T", now=at, language=language
        )
        feed = etree.fromstring(body)
        assert feed.findtext("atom:author/atom:name", namespaces=NS) == "Urgent Alerts"
        (content,) = feed.findall("atom:entry/atom:content", NS)
        title = feed.findtext("atom:entry/atom:title", namespaces=NS)
        shown[language] = (title, content.text, content.get("{http://www.w3.org/XML/1998/namespace}lang"))
    assert shown == {
        "fr": ("Sujet", "En français", "fr"),
        "de": ("Subject", "In English", "en"),
        None: ("Subject", "In English", "en"),
    }


def test_cap_writes_its_namespace_as_the_default_links_each_language_and_says_why_it_cancels() -> None:
    """As the CAP 1.2 examples do (``<alert xmlns="urn:oasis:…">``, which readers that match
    element names as text expect); each ``info`` links the page in its own language; a Cancel
    says in words that the sender withdrew the alert."""
    from datetime import datetime

    from alerts.delivery.archive import Withdrawn
    from alerts.delivery.cap import cap_alert, cap_cancel

    at = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    alert = two_language_alert(at)
    body = cap_alert(alert, public_url="https://a.test")
    assert b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' in body
    infos = etree.fromstring(body).findall("cap:info", NS)
    assert [i.findtext("cap:web", namespaces=NS) for i in infos] == [
        "https://a.test/alerts/7?lang=en",
        "https://a.test/alerts/7?lang=fr",
    ]
    cancel = cap_cancel(Withdrawn(id=7, published_at=at, withdrawn_at=at), public_url="https://a.test")
    assert b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' in cancel
    assert etree.fromstring(cancel).findtext("cap:note", namespaces=NS) == "Withdrawn by the sender."


def test_the_cap_index_says_in_words_that_a_withdrawn_alert_was_withdrawn_and_nothing_of_it() -> None:
    """A Cancel's entry in the CAP index: titled "Withdrawn", its content one sentence naming
    the sender as who withdrew it; none of the alert's text."""
    from alerts.delivery.archive import Withdrawn, atom_feed

    at = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    body = atom_feed(
        [],
        base_url="https://a.test/",
        self_path="/alerts/cap.atom",
        title="T",
        now=at,
        cancelled=[Withdrawn(id=7, published_at=at, withdrawn_at=at)],
    )
    (entry,) = etree.fromstring(body).findall("atom:entry", NS)
    assert entry.findtext("atom:title", namespaces=NS) == "Withdrawn"
    content = entry.find("atom:content", NS)
    assert content is not None
    assert (content.get("type"), content.text) == ("text", "This alert was withdrawn by its sender.")
