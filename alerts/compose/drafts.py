"""Alerts from a template family and case data: audience, versions, the status table.

An alert's texts live in numbered versions (``AlertVersion``). Every edit makes a new
version, so history is kept and an approval always names exactly the text it approved: an
edit of an alert in review or approved sends it back to draft, to be approved again.
Submitting, approving and consent live in ``alerts.compose.approval``.

Every status change is a compare-and-set on (status, current_version): two people acting on
the same alert at once cannot both win, the second gets a Conflict. Every change appends an
audit entry in the same transaction. Functions add to the session and flush; the caller
commits, or rolls back on an error (nothing is then written).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from alerts.accounts.users import check
from alerts.core.channels import ALL
from alerts.core.errors import Conflict, NotFound, ValidationError
from alerts.core.msgids import N_
from alerts.core.states import AlertStatus, ContactKind
from alerts.core.text import check_line, check_text, one_line
from alerts.store import audit
from alerts.store.models import Alert, AlertVersion, User

#: Validates case data for a template family; returns the normalised data or raises ValidationError.
CaseValidator = Callable[[str, Mapping[str, Any]], dict[str, Any]]

MAX_TITLE = 300
MAX_LIST_NAME = 100
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_FAMILY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

A = AlertStatus

#: Every allowed alert status change (from -> set of to).
ALERT_TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    A.DRAFT: frozenset({A.IN_REVIEW, A.CLOSED}),
    A.IN_REVIEW: frozenset({A.DRAFT, A.APPROVED, A.CLOSED}),  # back to draft: withdrawn or edited
    A.APPROVED: frozenset({A.DRAFT, A.SCHEDULED, A.SENDING, A.CLOSED}),
    A.SCHEDULED: frozenset({A.APPROVED, A.SENDING, A.CLOSED}),  # -> approved: unscheduled
    A.SENDING: frozenset({A.SENT, A.CLOSED}),
    A.SENT: frozenset({A.SENDING, A.CLOSED}),  # -> sending: resend-failed
    A.CLOSED: frozenset(),
}

#: Statuses in which the case data, title and audience may still change.
EDITABLE: frozenset[AlertStatus] = frozenset({A.DRAFT, A.IN_REVIEW, A.APPROVED})


def _names(field: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValidationError(f"audience: {field} must be a list of names, not a string")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValidationError(f"audience: {field} must be a list of names, not {value!r}")
        if value not in out:
            out.append(value)
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Audience:
    """Who an alert goes to: lists and contact kinds, on which channels, in which languages.

    ``channels`` empty means every channel a contact accepts. Values are checked on creation.
    """

    lists: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)

    def __post_init__(self) -> None:
        for field in ("lists", "kinds", "channels", "languages"):
            object.__setattr__(self, field, _names(field, getattr(self, field)))
        for name in self.lists:
            if not name.strip() or len(name) > MAX_LIST_NAME:
                raise ValidationError(f"audience: {name!r} is not a valid list name")
            check_line(name, "audience: list name")
        kinds = [k.value for k in ContactKind]
        for kind in self.kinds:
            if kind not in kinds:
                raise ValidationError(f"audience: unknown kind {kind!r}; kinds are {', '.join(kinds)}")
        for channel in self.channels:
            if channel not in ALL:
                raise ValidationError(f"audience: unknown channel {channel!r}; channels are {', '.join(ALL)}")
        if not self.languages:
            raise ValidationError.said(N_("audience: at least one language is needed"))
        for language in self.languages:
            if not _LANGUAGE.match(language):
                raise ValidationError(
                    f"audience: language {language!r} is not a two-letter lowercase code such as 'en'"
                )
        if not self.lists and not self.kinds:
            raise ValidationError.said(N_("audience: name at least one list or contact kind"))

    @property
    def includes_public(self) -> bool:
        """Whether the audience names the public kind."""
        return ContactKind.PUBLIC.value in self.kinds

    def to_json(self) -> dict[str, list[str]]:
        """The form stored in ``Alert.audience``."""
        return {
            "lists": list(self.lists),
            "kinds": list(self.kinds),
            "channels": list(self.channels),
            "languages": list(self.languages),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Audience:
        """An audience from its stored or API form (missing keys take their defaults)."""
        unknown = sorted(set(data) - {"lists", "kinds", "channels", "languages"})
        if unknown:
            raise ValidationError(f"audience: unknown key {unknown[0]!r}")
        for key, value in data.items():
            if not isinstance(value, list | tuple):
                raise ValidationError(f"audience: {key} must be a list of names")
        return cls(**{key: tuple(value) for key, value in data.items()})


def _validate_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise ValidationError.said(N_("title: must not be empty"))
    if len(title) > MAX_TITLE:
        raise ValidationError.said(N_("title: longer than %(n)s characters"), n=MAX_TITLE)
    return check_line(title, "title")


def _text(value: object) -> str:
    if isinstance(value, Mapping):  # a per-language value: {"en": ..., "fr": ...}
        value = value.get("en") or next((v for v in value.values() if isinstance(v, str) and v.strip()), "")
    return value.strip() if isinstance(value, str) else ""


def default_title(family: str, data: Mapping[str, Any]) -> str:
    """A title from the case data: "<defender> (<country>)", or the family's name."""
    defender = data.get("defender")
    details: Mapping[str, Any] = defender if isinstance(defender, Mapping) else {}
    name = _text(details.get("name")) or _text(defender) or _text(data.get("defender_name"))
    country = _text(data.get("country")) or _text(details.get("country"))
    if not name:
        name = family.replace("-", " ").replace("_", " ").capitalize()
    title = f"{name} ({country})" if country else name
    return one_line(title)[:MAX_TITLE]


def _storable(value: object, path: str) -> Any:
    """``value`` as it is stored: JSON types only, text under the multi-line text policy
    (``alerts.core.text``: Word's Shift+Enter U+000B and other line breaks become newlines,
    other control characters are refused naming the path)."""
    if isinstance(value, str):
        return check_text(value, f"case data: {path or 'top level'}")
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"case data: {path or 'top level'} has a non-text key {key!r}")
            check_line(key, f"case data: {path or 'top level'} key")
            out[key] = _storable(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list | tuple):
        return [_storable(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ValidationError(f"case data: {path} holds a {type(value).__name__}, which cannot be stored")


def _validated_case(
    validate_case: CaseValidator, family: str, case_data: Mapping[str, Any]
) -> dict[str, Any]:
    data: dict[str, Any] = _storable(validate_case(family, case_data), "")
    return data


async def move(
    session: AsyncSession,
    alert: Alert,
    to: AlertStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> None:
    """Set ``alert``'s status (and ``values``) if nobody changed it since it was read; Conflict otherwise.

    Low level: checks neither the transition table nor permissions (see approval.set_status).
    """
    changes = {"status": to.value, "updated_at": now, **(values or {})}
    stmt = (
        update(Alert)
        .where(
            Alert.id == alert.id,
            Alert.status == alert.status,
            Alert.current_version == alert.current_version,
        )
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(stmt))
    if result.rowcount != 1:
        raise changed_meanwhile(alert.id)
    for key, value in changes.items():
        set_committed_value(alert, key, value)


def changed_meanwhile(alert_id: int) -> Conflict:
    """The refusal of a change that lost a race with another person's (reload and try again)."""
    return Conflict.said(
        N_("alert %(alert)s was changed by someone else meanwhile; reload it and try again"), alert=alert_id
    )


async def create_alert(
    session: AsyncSession,
    *,
    author: User,
    family: str,
    case_data: Mapping[str, Any],
    title: str | None = None,
    audience: Audience,
    is_public: bool | None = None,
    validate_case: CaseValidator,
    now: datetime,
) -> Alert:
    """A new draft alert with version 1; ``is_public`` defaults to whether the public is addressed."""
    check(author, "alert.create")
    if not _FAMILY.match(family):
        raise ValidationError(f"template family: {family!r} is not a valid family name")
    data = _validated_case(validate_case, family, case_data)
    title = _validate_title(title) if title is not None else default_title(family, data)
    public = audience.includes_public if is_public is None else is_public
    version = AlertVersion(number=1, case_data=data, created_by=author.id, created_at=now)
    alert = Alert(
        title=title,
        family=family,
        status=A.DRAFT.value,
        author_id=author.id,
        audience=audience.to_json(),
        languages=list(audience.languages),
        current_version=1,
        is_public=public,
        created_at=now,
        updated_at=now,
        versions=[version],
    )
    session.add(alert)
    await session.flush()
    await audit.record(
        session,
        user_id=author.id,
        action="alert.create",
        object_type="alert",
        object_id=alert.id,
        details={"family": family, "version": 1, "languages": alert.languages, "is_public": public},
        now=now,
    )
    return alert


async def get_alert(session: AsyncSession, alert_id: int) -> Alert:
    """The alert with this id, freshly read; NotFound otherwise."""
    # its versions in the same round trip (a selectin load would be a second one)
    alert = await session.get(Alert, alert_id, populate_existing=True, options=[joinedload(Alert.versions)])
    if alert is None:
        raise NotFound.said(N_("alert %(alert)s does not exist"), alert=alert_id)
    return alert


async def require_open_case(session: AsyncSession, parent_id: int | None) -> None:
    """Conflict when ``parent_id`` or an alert it updates (its case, up the thread) is closed:
    closing a case ends it, so no update of it is drafted or sent any more."""
    seen: set[int] = set()
    while parent_id is not None and parent_id not in seen:  # a (corrupt) cycle ends
        seen.add(parent_id)
        parent = await get_alert(session, parent_id)
        if parent.status == AlertStatus.CLOSED:
            raise Conflict.said(
                N_("alert %(alert)s is closed: its case gets no more updates."),
                details={"alert": parent.id, "status": parent.status},
                alert=parent.id,
            )
        parent_id = parent.parent_id


async def current_version(session: AsyncSession, alert: Alert) -> AlertVersion:
    """The version of ``alert`` that would be approved and sent."""
    version = await session.scalar(
        select(AlertVersion).where(
            AlertVersion.alert_id == alert.id, AlertVersion.number == alert.current_version
        )
    )
    if version is None:
        raise NotFound(f"alert {alert.id}: version {alert.current_version} does not exist")
    return version


def _check_editable(alert: Alert) -> None:
    status = AlertStatus(alert.status)
    if status is A.SCHEDULED:
        raise Conflict.said(N_("alert %(alert)s is scheduled: unschedule it before editing"), alert=alert.id)
    if status is A.CLOSED:
        raise Conflict.said(N_("alert %(alert)s is closed: it can no longer be edited"), alert=alert.id)
    if status not in EDITABLE:
        raise Conflict.said(
            N_("alert %(alert)s is %(state)s: it can no longer be edited; send an update instead"),
            alert=alert.id,
            state=str(status),
        )


async def edit_alert(
    session: AsyncSession,
    alert: Alert,
    *,
    user: User,
    case_data: Mapping[str, Any] | None = None,
    title: str | None = None,
    audience: Audience | None = None,
    validate_case: CaseValidator,
    now: datetime,
) -> AlertVersion:
    """Change an alert: always a new version; an alert in review or approved goes back to draft."""
    check(user, "alert.edit")
    _check_editable(alert)
    if case_data is None and title is None and audience is None:
        raise ValidationError(f"alert {alert.id}: nothing to change (give case data, a title or an audience)")
    previous = await current_version(session, alert)
    data = (
        dict(previous.case_data)
        if case_data is None
        else _validated_case(validate_case, alert.family, case_data)
    )
    new_title = alert.title if title is None else _validate_title(title)
    old_status = AlertStatus(alert.status)
    # what really changed (a form sends every field, the CLI and the API only what they change)
    changed = [
        name
        for name, differs in (
            ("case_data", data != previous.case_data),
            ("title", new_title != alert.title),
            ("audience", audience is not None and audience.to_json() != alert.audience),
        )
        if differs
    ]
    version = AlertVersion(
        alert=alert, number=previous.number + 1, case_data=data, created_by=user.id, created_at=now
    )
    session.add(version)
    await move(session, alert, A.DRAFT, now=now, values={"current_version": version.number})
    alert.title = new_title
    if audience is not None:
        alert.audience = audience.to_json()
        alert.languages = list(audience.languages)
        if audience.includes_public:
            alert.is_public = True  # never quietly private once the public is addressed
    await session.flush()
    await audit.record(
        session,
        user_id=user.id,
        action="alert.edit",
        object_type="alert",
        object_id=alert.id,
        details={
            "version": version.number,
            "changed": changed,
            "from": old_status.value,
            "to": A.DRAFT.value,
        },
        now=now,
    )
    return version
