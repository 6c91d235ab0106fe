"""Public alerts as OASIS Common Alerting Protocol 1.2 XML (one ``<info>`` per language).

Element order follows the CAP 1.2 schema (sequences): ``identifier, sender, sent, status,
msgType, scope, note, references, info*``; in ``info``: ``language, category, event, urgency,
severity, certainty, senderName, headline, description, web``. ``event``, ``senderName`` and
``headline`` are in the block's language (the family's catalogue, the case's organisation, the
subject). An update of a public alert is ``msgType Update`` and references the original as
``sender,identifier,sent``.

When the defender's consent is withdrawn, the alert's document becomes a ``Cancel`` of it
(CAP §3.2.1 ``msgType``: "Cancel - Cancel the earlier message(s) identified in <references>"):
its own identifier, the time of the withdrawal, the reference, and nothing else — no ``info``,
so nothing of the withdrawn text. CAP consumers that cached the alert then drop it, where a
404 would leave them showing it.

Times are written as CAP §3.3.2 wants: no fractions, an explicit offset, never "Z", and UTC as
``-00:00``. Every text goes through ``alerts.core.text.for_xml``, so text stored before the
control-character rule cannot make the document unreadable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import urlsplit

from alerts.core import urls
from alerts.core.text import for_xml
from alerts.delivery.archive import PublicAlert, Withdrawn

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_TYPE = "application/cap+xml"
#: ``senderName`` when the case names no organisation.
DEFAULT_SENDER_NAME = "Urgent Alerts"
HEADLINE_LENGTH = 160  # CAP §3.2.2: "SHOULD be less than 160 characters"

#: Per template family: (urgency, severity, certainty), in CAP's vocabulary.
FAMILY_TERMS: dict[str, tuple[str, str, str]] = {
    "urgent-appeal": ("Immediate", "Severe", "Observed"),
    "update": ("Expected", "Severe", "Observed"),
    "closure": ("Past", "Minor", "Observed"),
}
DEFAULT_TERMS = ("Expected", "Severe", "Observed")
#: ``event`` when the family's catalogue has no ``cap_event``.
DEFAULT_EVENT = "Human rights defender at risk"


def cap_time(value: datetime) -> str:
    """CAP's date-time: no fractions, an explicit offset, UTC written ``-00:00`` (CAP §3.3.2)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def sender(public_url: str) -> str:
    """The sender: the service's host name (no spaces, commas or '<&')."""
    return urlsplit(public_url).hostname or "localhost"


def identifier(public_url: str, alert_id: int) -> str:
    """A stable identifier for one alert."""
    return f"{sender(public_url)}-alert-{alert_id}"


def reference(public_url: str, alert_id: int, published_at: datetime) -> str:
    """How another message names this alert's: ``sender,identifier,sent`` (CAP §3.2.1)."""
    return f"{sender(public_url)},{identifier(public_url, alert_id)},{cap_time(published_at)}"


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    el.text = for_xml(text)
    return el


def _head(public_url: str, *, ident: str, sent: datetime, msg_type: str) -> ET.Element:
    ET.register_namespace("", CAP_NS)
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", ident)
    _sub(root, "sender", sender(public_url))
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    return root


def _document(root: ET.Element) -> bytes:
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def cap_alert(alert: PublicAlert, *, public_url: str, original: PublicAlert | None = None) -> bytes:
    """The CAP 1.2 document of a public alert; ``original`` when it updates another public alert."""
    root = _head(
        public_url,
        ident=identifier(public_url, alert.id),
        sent=alert.published_at,
        msg_type="Update" if original is not None else "Alert",
    )
    if original is not None:
        _sub(root, "references", reference(public_url, original.id, original.published_at))
    urgency, severity, certainty = FAMILY_TERMS.get(alert.family, DEFAULT_TERMS)
    for text in alert.texts:
        info = ET.SubElement(root, f"{{{CAP_NS}}}info")
        _sub(info, "language", text.language)
        _sub(info, "category", "Safety")
        _sub(info, "event", text.event or DEFAULT_EVENT)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", certainty)
        _sub(info, "senderName", text.sender_name or DEFAULT_SENDER_NAME)
        _sub(info, "headline", (text.subject or alert.title)[:HEADLINE_LENGTH])
        _sub(info, "description", text.text)
        _sub(info, "web", urls.public_alert(public_url, alert.id, language=text.language))
    return _document(root)


def cap_cancel(withdrawn: Withdrawn, *, public_url: str) -> bytes:
    """The ``Cancel`` that replaces a withdrawn alert's document (see the module docstring)."""
    root = _head(
        public_url,
        ident=f"{identifier(public_url, withdrawn.id)}-cancel",
        sent=withdrawn.withdrawn_at,
        msg_type="Cancel",
    )
    _sub(root, "note", "Withdrawn by the sender.")
    _sub(root, "references", reference(public_url, withdrawn.id, withdrawn.published_at))
    return _document(root)
