"""A case at a glance on the alert's page: its timeline — the alert and its versions, its
updates, responses from authorities, follow-ups fired and due, consent changes, and what
people did (the audit entries) — in one column, newest first (follow-ups still due on top)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.store.models import Alert, AuditEntry, Consent, Followup, Response

#: Audit actions already told by another entry of the timeline (its version, consent, response).
_TOLD_ELSEWHERE = {"alert.consent", "alert.respond", "followup.add", "followup.cancel"}


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    kind: str  # due, followup, update, response, consent, action
    text: str
    href: str | None = None


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
    entries: list[Entry] = []
    for h in history:
        if h.action in _TOLD_ELSEWHERE:
            continue
        who = names.get(h.user_id, "the service") if h.user_id is not None else "the service"
        entries.append(Entry(h.at, "action", f"{h.action.removeprefix('alert.')} by {who}"))
    for u in updates:
        entries.append(
            Entry(
                u.created_at, "update", f"update #{u.id} ({u.status}): {u.title}", f"{office}/alerts/{u.id}"
            )
        )
    for r in responses:
        source = f"contact {r.contact_id}" if r.contact_id else (r.sender or "someone")
        entries.append(Entry(r.responded_at, "response", f"response from {source}: {r.summary}"))
    for c in consents:
        by = names.get(c.recorded_by, "?")
        entries.append(Entry(c.recorded_at, "consent", f"consent {c.scope}, recorded by {by}"))
    due: list[Entry] = []
    for f in followups:
        note = f": {f.note}" if f.note else ""
        if f.fired_at is not None:
            entries.append(
                Entry(
                    f.fired_at, "followup", f"{f.kind} fired{note}" + (f" ({f.result})" if f.result else "")
                )
            )
        elif f.cancelled_at is not None:
            entries.append(Entry(f.cancelled_at, "followup", f"{f.kind} cancelled{note}"))
        else:
            due.append(Entry(f.due_at, "due", f"{f.kind} due{note}"))
    due.sort(key=lambda e: e.at, reverse=True)
    entries.sort(key=lambda e: e.at, reverse=True)
    return due + entries
