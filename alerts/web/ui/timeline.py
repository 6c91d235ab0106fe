"""A case at a glance on the alert's page: its timeline — the alert and its versions, its
updates, responses from authorities, follow-ups fired and due, consent changes, and what
people did (the audit entries) — in one column, newest first (follow-ups still due on top).

Each entry's words are a ``Text`` (a msgid and its values) that the page shows in its language
(``alerts.web.i18n.shown``); what people wrote (a title, a note, a summary) stays as written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.core.msgids import N_, Text
from alerts.store.models import Alert, AuditEntry, Consent, Followup, Response
from alerts.web.i18n import FOLLOWUP_NAMES

#: Audit actions already told by another entry of the timeline (its version, consent, response).
_TOLD_ELSEWHERE = {"alert.consent", "alert.respond", "followup.add", "followup.cancel"}
#: What people did to the alert, as the timeline says it ("submitted for review by olga").
ACTIONS = {
    "alert.create": N_("written by %(who)s"),
    "alert.edit": N_("new version by %(who)s"),
    "alert.submit": N_("submitted for review by %(who)s"),
    "alert.approve": N_("approved by %(who)s"),
    "alert.send": N_("sent by %(who)s"),
    "alert.pause": N_("paused by %(who)s"),
    "alert.resume": N_("resumed by %(who)s"),
    "alert.close": N_("closed by %(who)s"),
    "alert.test": N_("test message sent by %(who)s"),
    "alert.resend_failed": N_("failed deliveries sent again by %(who)s"),
    "alert.schedule_failed": N_("scheduled send failed"),
    "alert.status": N_("status changed by %(who)s"),
}
OTHER_ACTION = N_("%(action)s by %(who)s")
CONSENT_SCOPES = {"public": N_("public"), "restricted": N_("restricted")}


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    kind: str  # due, followup, update, response, consent, action
    text: Text
    href: str | None = None


def _kind(followup: Followup) -> Text:
    return Text(FOLLOWUP_NAMES.get(followup.kind, followup.kind))


def _followup(f: Followup) -> Entry | None:
    """A follow-up fired or cancelled (None while it is due)."""
    values = {"kind": _kind(f), "note": f.note or "", "result": f.result or ""}
    if f.fired_at is not None:
        if f.note and f.result:
            return Entry(f.fired_at, "followup", Text(N_("%(kind)s fired: %(note)s (%(result)s)"), values))
        if f.note or f.result:
            said = N_("%(kind)s fired: %(note)s") if f.note else N_("%(kind)s fired (%(result)s)")
            return Entry(f.fired_at, "followup", Text(said, values))
        return Entry(f.fired_at, "followup", Text(N_("%(kind)s fired"), values))
    if f.cancelled_at is not None:
        said = N_("%(kind)s cancelled: %(note)s") if f.note else N_("%(kind)s cancelled")
        return Entry(f.cancelled_at, "followup", Text(said, values))
    return None


def timeline(
    *,
    history: Sequence[AuditEntry],
    names: Mapping[int, str],
    updates: Sequence[Alert],
    responses: Sequence[Response],
    followups: Sequence[Followup],
    consents: Sequence[Consent],
    office: str,
) -> list[Entry]:
    """Every event of the case, follow-ups still due first (soonest last), then newest first."""
    service = Text(N_("the service"))
    entries: list[Entry] = []
    for h in history:
        if h.action in _TOLD_ELSEWHERE:
            continue
        who: str | Text = names.get(h.user_id, service) if h.user_id is not None else service
        said = ACTIONS.get(h.action, OTHER_ACTION)
        entries.append(
            Entry(h.at, "action", Text(said, {"who": who, "action": h.action.removeprefix("alert.")}))
        )
    for u in updates:
        values = {"id": u.id, "state": u.status, "title": u.title}
        text = Text(N_("update #%(id)s (%(state)s): %(title)s"), values)
        entries.append(Entry(u.created_at, "update", text, f"{office}/alerts/{u.id}"))
    for r in responses:
        source: str | Text = (
            Text(N_("contact %(id)s"), {"id": r.contact_id})
            if r.contact_id
            else (r.sender or Text(N_("someone")))
        )
        text = Text(N_("response from %(source)s: %(summary)s"), {"source": source, "summary": r.summary})
        entries.append(Entry(r.responded_at, "response", text))
    for c in consents:
        scope = Text(CONSENT_SCOPES.get(c.scope, c.scope))
        values = {"scope": scope, "who": names.get(c.recorded_by, "?")}
        entries.append(
            Entry(c.recorded_at, "consent", Text(N_("consent %(scope)s, recorded by %(who)s"), values))
        )
    due: list[Entry] = []
    for f in followups:
        done = _followup(f)
        if done is not None:
            entries.append(done)
        else:
            said = N_("%(kind)s due: %(note)s") if f.note else N_("%(kind)s due")
            due.append(Entry(f.due_at, "due", Text(said, {"kind": _kind(f), "note": f.note or ""})))
    due.sort(key=lambda e: e.at, reverse=True)
    entries.sort(key=lambda e: e.at, reverse=True)
    return due + entries
