"""Public alerts as OASIS Common Alerting Protocol 1.2 XML (one ``<info>`` per language).

Element order follows the CAP 1.2 schema (sequences): ``identifier, sender, sent, status,
msgType, scope, references, info*``; in ``info``: ``language, category, event, urgency,
severity, certainty, senderName, headline, description, web``. An update of a public alert
is ``msgType Update`` and references the original as ``sender,identifier,sent``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import urlsplit

from alerts.core import urls
from alerts.delivery.archive import PublicAlert

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_TYPE = "application/cap+xml"

#: Per template family: (event, urgency, severity, certainty), in CAP's vocabulary.
FAMILY_TERMS: dict[str, tuple[str, str, str, str]] = {
    "urgent-appeal": ("Human rights defender at risk", "Immediate", "Severe", "Observed"),
    "update": ("Human rights defender at risk: update", "Expected", "Severe", "Observed"),
    "closure": ("Human rights defender case closed", "Past", "Minor", "Observed"),
}
DEFAULT_TERMS = ("Human rights defender at risk", "Expected", "Severe", "Observed")


def cap_time(value: datetime) -> str:
    """CAP's date-time: no fractions, an explicit offset (never "Z")."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def sender(public_url: str) -> str:
    """The sender: the service's host name (no spaces, commas or '<&')."""
    return urlsplit(public_url).hostname or "localhost"


def identifier(public_url: str, alert_id: int) -> str:
    """A stable identifier for one alert."""
    return f"{sender(public_url)}-alert-{alert_id}"


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    el.text = text
    return el


def cap_alert(
    alert: PublicAlert,
    *,
    public_url: str,
    original: PublicAlert | None = None,
    sender_name: str = "Urgent Alerts",
) -> bytes:
    """The CAP 1.2 document of a public alert; ``original`` when it updates another public alert."""
    ET.register_namespace("", CAP_NS)
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", identifier(public_url, alert.id))
    _sub(root, "sender", sender(public_url))
    _sub(root, "sent", cap_time(alert.published_at))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", "Update" if original is not None else "Alert")
    _sub(root, "scope", "Public")
    if original is not None:
        ref = f"{sender(public_url)},{identifier(public_url, original.id)},{cap_time(original.published_at)}"
        _sub(root, "references", ref)
    event, urgency, severity, certainty = FAMILY_TERMS.get(alert.family, DEFAULT_TERMS)
    for text in alert.texts:
        info = ET.SubElement(root, f"{{{CAP_NS}}}info")
        _sub(info, "language", text.language)
        _sub(info, "category", "Safety")
        _sub(info, "event", event)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity)
        _sub(info, "certainty", certainty)
        _sub(info, "senderName", sender_name)
        _sub(info, "headline", (text.subject or alert.title)[:160])
        _sub(info, "description", text.text)
        _sub(info, "web", urls.public_alert(public_url, alert.id, language=text.language))
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out
