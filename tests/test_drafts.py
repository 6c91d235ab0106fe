"""Drafts: audience validation, alert creation, versions on every edit, refusals that write nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.accounts.users import create_user
from alerts.compose.approval import (
    approve,
    approved_languages,
    close_alert,
    ready_to_send,
    set_status,
    submit,
)
from alerts.compose.drafts import (
    MAX_LIST_NAME,
    MAX_TITLE,
    Audience,
    create_alert,
    current_version,
    default_title,
    edit_alert,
    get_alert,
    require_open_case,
)
from alerts.core.errors import ApprovalRequired, Conflict, NotFound, PermissionDenied, ValidationError
from alerts.core.states import AlertStatus
from alerts.store import audit
from alerts.store.models import Alert, AlertVersion, Approval, AuditEntry, Consent, User

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CASE = {"defender": "Ana Pérez", "country": "Honduras", "summary": "Arrested at dawn."}
AUDIENCE = Audience(kinds=("authority", "media"), languages=("en", "es"))


def validate_case(family: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A small real validator: the family must exist and two variables are required."""
    if family != "urgent-appeal":
        raise ValidationError(f"template family {family!r} does not exist")
    for name in ("defender", "country"):
        if not data.get(name):
            raise ValidationError(f"case data: variable {name!r} is missing")
    return dict(data)


@dataclass
class People:
    officer: User
    other_officer: User
    reviewer: User
    admin: User
    viewer: User


async def make_people(session: AsyncSession) -> People:
    """One user of every role, committed."""
    made = {}
    for name, role in [("olga", "officer"), ("omar", "officer"), ("rita", "reviewer"), ("root", "admin"),
                       ("vic", "viewer")]:  # fmt: skip
        made[name], _ = await create_user(session, name=name, role=role, now=NOW)
    await session.commit()
    return People(made["olga"], made["omar"], made["rita"], made["root"], made["vic"])


async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Row counts of every workflow table and each alert's status, read in a fresh session."""
    async with sessions() as s:
        counts = {
            model.__tablename__: await s.scalar(select(func.count()).select_from(model))
            for model in (User, Alert, AlertVersion, Approval, Consent, AuditEntry)
        }
        statuses = {row[0]: row[1] for row in await s.execute(select(Alert.id, Alert.status))}
        versions = {row[0]: row[1] for row in await s.execute(select(Alert.id, Alert.current_version))}
    return {"counts": counts, "statuses": statuses, "versions": versions}


async def new_alert(session: AsyncSession, author: User, audience: Audience = AUDIENCE, **kw: Any) -> Alert:
    alert = await create_alert(
        session, author=author, family="urgent-appeal", case_data=CASE, audience=audience,
        validate_case=validate_case, now=NOW, **kw,
    )  # fmt: skip
    await session.commit()
    return alert


@pytest.fixture
async def people(session: AsyncSession) -> People:
    return await make_people(session)


# -- Audience -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"kinds": ("police",)},
            "audience: unknown kind 'police'; kinds are authority, media, press, partner, public",
        ),
        (
            {"channels": ("sms",)},
            "audience: unknown channel 'sms'; channels are email, press, telegram, webhook",
        ),
        ({"languages": ("EN",)}, "audience: language 'EN' is not a two-letter lowercase code such as 'en'"),
        ({"languages": ("eng",)}, "audience: language 'eng' is not a two-letter lowercase code such as 'en'"),
        ({"languages": ()}, "audience: at least one language is needed"),
        ({"kinds": ()}, "audience: name at least one list or contact kind"),
        ({"kinds": "media"}, "audience: kinds must be a list of names, not a string"),
        ({"lists": (" ",)}, "audience: ' ' is not a valid list name"),
    ],
)
def test_bad_audience_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        Audience(**({"kinds": ("media",)} | fields))
    assert err.value.message == message


def test_audience_round_trips_through_json_and_drops_repeats() -> None:
    audience = Audience(lists=("press-hn", "press-hn"), kinds=("public",), channels=("email",))
    assert audience.to_json() == {"lists": ["press-hn"], "kinds": ["public"], "channels": ["email"],
                                  "languages": ["en"]}  # fmt: skip
    assert Audience.from_json(audience.to_json()) == audience
    assert Audience.from_json({"lists": ["partners"]}).languages == ("en",)
    with pytest.raises(ValidationError) as err:
        Audience.from_json({"lists": ["x"], "kind": ["media"]})
    assert err.value.message == "audience: unknown key 'kind'"
    with pytest.raises(ValidationError) as err:
        Audience.from_json({"lists": "x"})
    assert err.value.message == "audience: lists must be a list of names"


# -- create ---------------------------------------------------------------------------------


async def test_create_alert_makes_version_one_and_an_audit_entry(
    session: AsyncSession, people: People
) -> None:
    alert = await new_alert(session, people.officer)
    assert (alert.status, alert.title, alert.family, alert.languages) == (
        "draft", "Ana Pérez (Honduras)", "urgent-appeal", ["en", "es"])  # fmt: skip
    assert (alert.is_public, alert.current_version, alert.author_id) == (False, 1, people.officer.id)
    assert alert.audience == {
        "lists": [],
        "kinds": ["authority", "media"],
        "channels": [],
        "languages": ["en", "es"],
    }
    version = await current_version(session, alert)
    assert (version.number, version.case_data, version.created_by) == (1, CASE, people.officer.id)
    [entry] = await audit.list_entries(session, object_type="alert", object_id=alert.id)
    assert (entry.action, entry.user_id, entry.at) == ("alert.create", people.officer.id, NOW)
    assert entry.details == {
        "family": "urgent-appeal",
        "version": 1,
        "languages": ["en", "es"],
        "is_public": False,
    }
    assert (await get_alert(session, alert.id)).id == alert.id


async def test_public_kind_makes_the_alert_public_unless_told_otherwise(
    session: AsyncSession, people: People
) -> None:
    public = Audience(kinds=("public",))
    assert (await new_alert(session, people.officer, public)).is_public is True
    assert (await new_alert(session, people.officer, public, is_public=False)).is_public is False
    assert (await new_alert(session, people.officer, title=" Ana ")).title == "Ana"


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"case_data": {"defender": "Ana"}}, ValidationError, "case data: variable 'country' is missing"),
        ({"family": "../etc"}, ValidationError, "template family: '../etc' is not a valid family name"),
        ({"family": "nope"}, ValidationError, "template family 'nope' does not exist"),
        ({"title": "  "}, ValidationError, "title: must not be empty"),
        ({"title": "x" * 301}, ValidationError, "title: longer than 300 characters"),
        ({"case_data": CASE | {"born": date(1990, 1, 2)}}, ValidationError,
         "case data: born holds a date, which cannot be stored"),
        ({"case_data": CASE | {"defender": {"name": "Ana\x00"}}}, ValidationError,
         "case data: defender.name: control character U+0000 at position 4 is not allowed"),
        ({"case_data": CASE | {"events": ["ok", "held \u202eincommunicado"]}}, ValidationError,
         "case data: events[1]: control character U+202E at position 6 is not allowed"),
        ({"title": "Ana\rBcc: x"}, ValidationError,
         "title: control character U+000D at position 4 is not allowed"),
        ({"author": "viewer"}, PermissionDenied,
         "user 'vic' (viewer) may not alert.create; allowed roles: admin, officer"),
    ],
)  # fmt: skip
async def test_refused_create_writes_nothing(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People,
    kw: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    before = await snapshot(sessions)
    args: dict[str, Any] = {"family": "urgent-appeal", "case_data": CASE} | kw
    args["author"] = people.viewer if kw.get("author") == "viewer" else people.officer
    with pytest.raises(error) as err:
        await create_alert(session, audience=AUDIENCE, validate_case=validate_case, now=NOW, **args)
    assert str(err.value) == message
    await session.rollback()
    assert await snapshot(sessions) == before


@pytest.mark.parametrize(
    ("data", "title"),
    [
        ({"defender": "Ana", "country": {"fr": "Honduras", "en": "Honduras (en)"}}, "Ana (Honduras (en))"),
        ({"defender": {"name": "Ana", "country": "Peru"}}, "Ana (Peru)"),
        ({"defender_name": "Ana", "country": {"es": "Perú"}}, "Ana (Perú)"),
        ({"summary": "x"}, "Urgent appeal"),
    ],
)
def test_default_title(data: dict[str, Any], title: str) -> None:
    assert default_title("urgent-appeal", data) == title


async def test_case_data_is_stored_with_plain_newlines(session: AsyncSession, people: People) -> None:
    # Word's manual line break (Shift+Enter) is U+000B, which XML feeds and some mail software
    # cannot carry: stored as a newline, like CR LF and the Unicode separators
    pasted = CASE | {"summary": "Arrested at dawn.\x0bHeld since.\r\nNo lawyer.\u2029", "tags": ["a\x0cb"]}
    alert = await new_alert(session, people.officer)
    version = await edit_alert(
        session, alert, user=people.officer, case_data=pasted, validate_case=validate_case, now=NOW
    )
    assert version.case_data["summary"] == "Arrested at dawn.\nHeld since.\nNo lawyer.\n"
    assert version.case_data["tags"] == ["a\nb"]


def test_default_title_folds_control_characters() -> None:
    assert default_title("urgent-appeal", {"defender": "Ana\x0bPérez", "country": "Peru\u202e"}) == (
        "Ana Pérez (Peru )"
    )


async def test_unknown_alert(session: AsyncSession) -> None:
    with pytest.raises(NotFound) as err:
        await get_alert(session, 99)
    assert err.value.message == "alert 99 does not exist"


# -- edit -----------------------------------------------------------------------------------


async def test_every_edit_makes_a_new_version(session: AsyncSession, people: People) -> None:
    alert = await new_alert(session, people.officer)
    v2 = await edit_alert(session, alert, user=people.other_officer, case_data=CASE | {"summary": "Charged."},
                          validate_case=validate_case, now=NOW)  # fmt: skip
    v3 = await edit_alert(
        session, alert, user=people.officer, title="Ana Pérez", validate_case=validate_case, now=NOW
    )
    await session.commit()
    assert (v2.number, v2.created_by, v2.case_data["summary"]) == (2, people.other_officer.id, "Charged.")
    assert (v3.number, v3.case_data, alert.title) == (3, v2.case_data, "Ana Pérez")
    assert (alert.current_version, alert.status) == (3, "draft")
    assert [v.number for v in (await get_alert(session, alert.id)).versions] == [1, 2, 3]
    actions = [e.action for e in await audit.list_entries(session, object_type="alert", object_id=alert.id)]
    assert actions == ["alert.edit", "alert.edit", "alert.create"]


async def test_editing_an_approved_alert_resets_its_approval(session: AsyncSession, people: People) -> None:
    alert = await new_alert(session, people.officer)
    await submit(session, alert, user=people.officer, now=NOW)
    await approve(session, alert, user=people.reviewer, now=NOW)
    await session.commit()
    assert alert.status == "approved"

    new_audience = Audience(kinds=("authority", "public"), languages=("en", "fr"))
    version = await edit_alert(session, alert, user=people.officer, audience=new_audience,
                               validate_case=validate_case, now=NOW)  # fmt: skip
    await session.commit()
    fresh = await get_alert(session, alert.id)
    assert (fresh.status, fresh.current_version, version.case_data) == ("draft", 2, CASE)
    assert (fresh.languages, fresh.is_public) == (["en", "fr"], True)
    assert await approved_languages(session, fresh) == []
    with pytest.raises(ApprovalRequired) as err:
        await ready_to_send(session, fresh)
    assert err.value.message == f"alert {alert.id} is draft: it must be approved before sending"
    [entry] = await audit.list_entries(session, object_type="alert", object_id=alert.id, limit=1)
    assert entry.details == {"version": 2, "changed": ["audience"], "from": "approved", "to": "draft"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ([AlertStatus.SCHEDULED], "alert {id} is scheduled: unschedule it before editing"),
        ([AlertStatus.SENDING], "alert {id} is sending: it can no longer be edited; send an update instead"),
        ([AlertStatus.SENDING, AlertStatus.SENT],
         "alert {id} is sent: it can no longer be edited; send an update instead"),
        ([AlertStatus.CLOSED], "alert {id} is closed: it can no longer be edited"),
    ],
)  # fmt: skip
async def test_edit_refused_once_scheduled_or_sent(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People,
    path: list[AlertStatus], message: str,
) -> None:  # fmt: skip
    alert = await new_alert(session, people.officer)
    await submit(session, alert, user=people.officer, now=NOW)
    await approve(session, alert, user=people.reviewer, now=NOW)
    for status in path:
        send_at = datetime(2025, 3, 2, tzinfo=UTC)
        await set_status(session, alert, status, user=people.officer, send_at=send_at, now=NOW)
    await session.commit()
    before = await snapshot(sessions)
    with pytest.raises(Conflict) as err:
        await edit_alert(
            session, alert, user=people.officer, case_data=CASE, validate_case=validate_case, now=NOW
        )
    assert err.value.message == message.format(id=alert.id)
    await session.rollback()
    assert await snapshot(sessions) == before


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({}, ValidationError, "alert {id}: nothing to change (give case data, a title or an audience)"),
        ({"case_data": {"defender": "Ana"}}, ValidationError, "case data: variable 'country' is missing"),
        ({"user": "reviewer", "title": "x"}, PermissionDenied,
         "user 'rita' (reviewer) may not alert.edit; allowed roles: admin, officer"),
    ],
)  # fmt: skip
async def test_refused_edit_writes_nothing(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People,
    kw: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    alert = await new_alert(session, people.officer)
    await submit(session, alert, user=people.officer, now=NOW)
    await session.commit()
    alert_id = alert.id
    before = await snapshot(sessions)
    kw = dict(kw)  # the parameters are shared by every run of this test in one process
    user = people.reviewer if kw.pop("user", None) else people.officer
    with pytest.raises(error) as err:
        await edit_alert(session, alert, user=user, validate_case=validate_case, now=NOW, **kw)
    assert str(err.value) == message.format(id=alert.id)
    await session.rollback()
    assert await snapshot(sessions) == before
    assert before["statuses"] == {alert_id: "in_review"}


async def test_a_stale_alert_loses_to_a_concurrent_change(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    alert = await new_alert(session, people.officer)
    async with sessions() as other:
        mine = await get_alert(other, alert.id)
        await edit_alert(other, mine, user=people.other_officer, title="Changed", validate_case=validate_case,
                         now=NOW)  # fmt: skip
        await other.commit()
    before = await snapshot(sessions)
    with pytest.raises(Conflict) as err:
        await submit(session, alert, user=people.officer, now=NOW)  # still thinks version 1 is current
    assert (
        err.value.message
        == f"alert {alert.id} was changed by someone else meanwhile; reload it and try again"
    )
    await session.rollback()
    assert await snapshot(sessions) == before


async def test_the_real_renderer_validates_the_example_case(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    from alerts.compose.render import Renderer

    renderer = Renderer()
    example = renderer.example("urgent-appeal")
    audience = Audience(lists=("urgent-appeals",), languages=("en", "fr", "es"))
    alert = await create_alert(
        session, author=people.officer, family="urgent-appeal", case_data=example, audience=audience,
        validate_case=renderer.validate_case, now=NOW,
    )  # fmt: skip
    await session.commit()
    version = await current_version(session, alert)
    assert (alert.title, version.case_data["date"]) == ("Lucía Marenco (Calvera)", "2025-03-12")  # JSON-ready
    await session.commit()  # end the read: on SQLite every transaction holds the write lock

    before = await snapshot(sessions)
    with pytest.raises(ValidationError) as err:
        await edit_alert(session, alert, user=people.officer, case_data=example | {"defendant": "x"},
                         validate_case=renderer.validate_case, now=NOW)  # fmt: skip
    assert err.value.message == "case data: unknown variable 'defendant' (did you mean 'defender'?)"
    await session.rollback()
    assert await snapshot(sessions) == before


async def test_the_create_action_refuses_a_channel_with_no_config_in_these_words_and_keeps_title_and_public(
    db_url: str,
) -> None:
    from alerts.actions import alerts as alert_actions
    from alerts.app import open_app
    from alerts.core.config import Settings
    from tests.factories import RENDERER

    async with open_app(Settings().replace("database", url=db_url), channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
        for channels, said in (
            (
                ("email", "webhook"),
                "webhook is not configured on this service (see [webhook] in the config); "
                "remove it from the alert or configure it.",
            ),
            (
                ("telegram", "webhook"),
                "telegram, webhook are not configured on this service (see [telegram] in the config); "
                "remove them from the alert or configure them.",
            ),
        ):
            with pytest.raises(ValidationError) as err:
                await alert_actions.create(
                    app,
                    officer,
                    family="urgent-appeal",
                    case_data=RENDERER.example("urgent-appeal"),
                    audience=Audience(lists=("urgent-appeals",), channels=channels),
                )
            assert err.value.message == f"channels: {said}"
            missing = [c for c in channels if c != "email"]
            assert err.value.details == {"field": "channels", "channels": missing}
        async with app.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Alert)) == 0
        created = await alert_actions.create(
            app,
            officer,
            family="urgent-appeal",
            case_data=RENDERER.example("urgent-appeal"),
            audience=Audience(lists=("urgent-appeals",), channels=("email",)),
            title="Ana Pérez arrested",
            is_public=True,  # a public page, though the public is not addressed
        )
        async with app.sessions() as session:
            alert = await session.get(Alert, created.alert_id)
            assert alert is not None
            assert (alert.title, alert.is_public, alert.status, created.attachments) == (
                "Ana Pérez arrested", True, "draft", 0,
            )  # fmt: skip


async def test_the_submit_action_refuses_a_draft_whose_channel_was_unconfigured_since_it_was_written(
    db_url: str,
) -> None:
    """Written while the service had a webhook, submitted after it was taken out of the config:
    the refusal names the channel in the create action's words, and the draft stays a draft."""
    from alerts.actions import alerts as alert_actions
    from alerts.app import open_app
    from alerts.core.config import Settings
    from tests.factories import RENDERER

    settings = Settings().replace("database", url=db_url)
    with_webhook = settings.replace("webhook", url="https://hooks.example.org/in")
    async with open_app(with_webhook, channels={}) as app:
        async with app.sessions.begin() as session:
            officer, _ = await create_user(session, name="olga", role="officer", now=NOW)
            await create_user(session, name="rita", role="reviewer", now=NOW)
        created = await alert_actions.create(
            app,
            officer,
            family="urgent-appeal",
            case_data=RENDERER.example("urgent-appeal"),
            audience=Audience(lists=("urgent-appeals",), channels=("email", "webhook")),
        )
    async with open_app(settings, channels={}) as app:
        with pytest.raises(ValidationError) as err:
            await alert_actions.submit(app, officer, created.alert_id)
        async with app.sessions() as session:
            alert = await session.get(Alert, created.alert_id)
            submits = await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "alert.submit")
            )
    assert err.value.message == (
        "channels: webhook is not configured on this service (see [webhook] in the config); "
        "remove it from the alert or configure it."
    )
    assert err.value.details == {"field": "channels", "channels": ["webhook"]}
    assert alert is not None and (alert.status, submits) == ("draft", 0)


def test_list_names_are_at_most_max_list_name_characters_on_one_line() -> None:
    longest = "x" * MAX_LIST_NAME
    assert Audience(lists=(longest,)).lists == (longest,)
    refusals = {
        ("x" * (MAX_LIST_NAME + 1),): f"audience: {'x' * (MAX_LIST_NAME + 1)!r} is not a valid list name",
        ("press\nhn",): "audience: list name: control character U+000A at position 6 is not allowed",
        ("press", 5): "audience: lists must be a list of names, not 5",
    }
    for lists, message in refusals.items():
        with pytest.raises(ValidationError) as err:
            Audience(lists=lists)  # type: ignore[arg-type]
        assert err.value.message == message


@pytest.mark.parametrize(
    ("case_data", "message"),
    [
        ({1: "x"}, "case data: top level has a non-text key 1"),
        ({"defender": {2: "Ana"}}, "case data: defender has a non-text key 2"),
        ({"events": [{"when": {3: "x"}}]}, "case data: events[0].when has a non-text key 3"),
        ({"a\x00b": "x"}, "case data: top level key: control character U+0000 at position 2 is not allowed"),
        ({"defender": {"na\u202eme": "Ana"}},
         "case data: defender key: control character U+202E at position 3 is not allowed"),
    ],
)  # fmt: skip
async def test_case_data_keys_are_refused_naming_where_they_are(
    session: AsyncSession, people: People, case_data: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        await create_alert(session, author=people.officer, family="urgent-appeal", case_data=CASE | case_data,
                           audience=AUDIENCE, validate_case=validate_case, now=NOW)  # fmt: skip
    assert err.value.message == message


async def test_titles_and_family_names_at_their_length_limits(session: AsyncSession, people: People) -> None:
    longest = "T" * MAX_TITLE
    assert (await new_alert(session, people.officer, title=f"  {longest} ")).title == longest
    named = default_title("urgent-appeal", {"defender": "A" * 400, "country": "Peru"})
    assert named == "A" * MAX_TITLE  # cut at the limit, never refused
    family = "a" * 64  # passes the name check, then the validator looks it up
    with pytest.raises(ValidationError) as err:
        await create_alert(session, author=people.officer, family=family, case_data=CASE, audience=AUDIENCE,
                           validate_case=validate_case, now=NOW)  # fmt: skip
    assert err.value.message == f"template family {family!r} does not exist"
    for bad in ("a" * 65, "Urgent", "-urgent", "urgent appeal", ""):
        with pytest.raises(ValidationError) as err:
            await create_alert(session, author=people.officer, family=bad, case_data=CASE, audience=AUDIENCE,
                               validate_case=validate_case, now=NOW)  # fmt: skip
        assert err.value.message == f"template family: {bad!r} is not a valid family name"


async def test_an_update_anywhere_down_a_closed_case_is_refused_naming_the_closed_alert(
    session: AsyncSession, people: People
) -> None:
    case = await new_alert(session, people.officer)
    update = await new_alert(session, people.officer)
    again = await new_alert(session, people.officer)
    update.parent_id, again.parent_id = case.id, update.id
    await session.commit()
    await require_open_case(session, again.id)  # the case is open: nothing to say
    await close_alert(session, case, user=people.officer, now=NOW)
    await session.commit()
    with pytest.raises(Conflict) as err:
        await require_open_case(session, again.id)
    assert err.value.message == f"alert {case.id} is closed: its case gets no more updates."
    assert err.value.details == {"alert": case.id, "status": "closed"}
    await require_open_case(session, None)  # a new case has no thread above it


async def test_a_thread_that_loops_back_on_itself_ends(session: AsyncSession, people: People) -> None:
    first = await new_alert(session, people.officer)
    second = await new_alert(session, people.officer)
    first.parent_id, second.parent_id = second.id, first.id  # corrupt: each updates the other
    await session.commit()
    await require_open_case(session, first.id)  # returns: each alert is read once


async def test_an_edits_version_is_dated_when_the_edit_was_made(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    """The version history shows each version's date: the time of the edit that made it."""
    alert = await new_alert(session, people.officer)
    later = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
    await edit_alert(
        session, alert, user=people.officer, title="Ana Pérez", validate_case=validate_case, now=later
    )
    await session.commit()
    async with sessions() as s:
        rows = await s.execute(
            select(AlertVersion.number, AlertVersion.created_at)
            .where(AlertVersion.alert_id == alert.id)
            .order_by(AlertVersion.number)
        )
    assert [tuple(r) for r in rows] == [(1, NOW), (2, later)]


async def test_case_data_keeps_its_numbers_yes_no_answers_and_empty_values(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    """Case data is JSON: a number, a true/false and a null are stored as they were given."""
    data = CASE | {
        "age": 34,
        "sentence_years": 2.5,
        "in_custody": True,
        "lawyer": None,
        "hearings": [1, False],
    }
    alert = await create_alert(
        session, author=people.officer, family="urgent-appeal", case_data=data, audience=AUDIENCE,
        validate_case=validate_case, now=NOW,
    )  # fmt: skip
    await session.commit()
    async with sessions() as s:
        stored = await s.scalar(select(AlertVersion.case_data).where(AlertVersion.alert_id == alert.id))
    assert stored == data


async def test_a_new_alert_was_last_changed_when_it_was_created(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], people: People
) -> None:
    """The dashboard's "last changed" of a new draft is the time it was created (the clock given)."""
    alert = await new_alert(session, people.officer)
    async with sessions() as s:
        row = (await s.execute(select(Alert.created_at, Alert.updated_at).where(Alert.id == alert.id))).one()
    assert tuple(row) == (NOW, NOW)
