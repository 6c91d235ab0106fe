"""The alert editor: a new alert or a new version of one, written in the case form (generated from
the template family's variables, ``caseform``) or, in its advanced view, as TOML; and the live
preview of what is being written (and of a saved alert)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from alerts.actions import alerts as alert_actions
from alerts.compose import drafts
from alerts.contacts.directory import list_lists
from alerts.core import urls
from alerts.core.channels import rendered_as
from alerts.core.errors import NotFound, ValidationError
from alerts.delivery.publish import load_alert_info
from alerts.store.models import Alert, Contact
from alerts.web.ui import caseform
from alerts.web.ui import casetoml as ui_toml
from alerts.web.ui.alerts import CHANNELS, KINDS, alert_id
from alerts.web.ui.pages import ID, Ctx, page, redirect
from alerts.web.ui.pages import PREFIX as P

#: Authorities offered to pick from in the case form (a datalist the browser searches).
AUTHORITIES_LISTED = 1000


def _languages(info: Any) -> list[str]:
    """The family's languages, English first (the text every other language is written beside)."""
    return sorted(info.languages, key=lambda lang: (lang != "en", lang)) if info else ["en"]


def _editor_context(c: Ctx, **values: Any) -> dict[str, Any]:
    renderer = c.app.renderer
    families = renderer.families()
    family = values.get("family") or (families[0] if families else "")
    info = renderer.family(family) if family in families else None
    case = values.pop("case", None)
    if case is None:
        try:
            case = ui_toml.loads(values.get("case_toml", "")) if values.get("case_toml") else {}
        except ValidationError:
            case = {}
    fields = caseform.fields(info.variables, case) if info else []
    return {
        "case_fields": fields,
        "case_values": caseform.values(fields, case, _languages(info)),
        "editor_languages": _languages(info),
        "mode": "form",
        "authority_names": [],
        "families": families,
        "family": family,
        "family_description": info.description if info else "",
        "family_languages": list(info.languages) if info else ["en"],
        "kinds": KINDS,
        "channels": CHANNELS,
        "errors": {},
        "error_language": "",
        "title": "",
        "audience": {"lists": [], "kinds": [], "channels": [], "languages": ["en"]},
        "case_toml": "",
        "alert": None,
        "all_lists": [],
    } | values


def _audience_from_form(c: Ctx) -> drafts.Audience:
    extra_lists = [n.strip() for n in c.field("new_lists").split(",") if n.strip()]
    return drafts.Audience(
        lists=tuple(dict.fromkeys(c.fields("lists") + extra_lists)),
        kinds=tuple(c.fields("kinds")),
        channels=tuple(c.fields("channels")),
        languages=tuple(c.fields("languages")),
    )


def _errors(c: Ctx, exc: ValidationError) -> dict[str, str]:
    """Where the editor shows a refusal (in the officer's language): beside the title, the
    audience, or the case field it names (``facts.fr[2]`` → the facts), and above the TOML."""
    shown = c.said(exc)
    for name in ("audience", "title", "channels"):
        if exc.message.startswith(name):
            return {"audience" if name == "channels" else name: shown}
    variable = (exc.details or {}).get("variable")
    field = caseform.error_field(variable if isinstance(variable, str) else None)
    return {"case": shown, **({f"case:{field}": shown} if field else {})}


def _read_case(c: Ctx, family: str) -> tuple[dict[str, Any], str, str]:
    """(case data, its TOML, the mode): from the form's inputs, or (``mode=toml``, or a post
    with no form inputs at all, as scripts send) from the TOML box."""
    form = c.form
    mode = c.field("mode") or (
        "form" if form is not None and any(k.startswith(caseform.PREFIX) for k in form) else "toml"
    )
    if mode == "toml" or form is None:
        case_toml = c.field("case_toml")
        return ui_toml.loads(case_toml), case_toml, "toml"
    renderer = c.app.renderer
    if family not in renderer.families():
        raise ValidationError(f"family: {family!r} is not a template family", details={"field": "family"})
    info = renderer.family(family)
    fields = caseform.fields(info.variables, {})
    case = caseform.read(fields, form, _languages(info))
    return case, ui_toml.dumps(case), "form"


async def _directory(c: Ctx) -> dict[str, Any]:
    """The lists, and the directory's authorities to pick from in the case form."""
    async with c.app.reads() as session:
        lists = [s.name for s in await list_lists(session)]
        authorities = await session.execute(
            select(Contact.name, Contact.title)
            .where(Contact.kind == "authority", Contact.status == "active")
            .order_by(Contact.name)
            .limit(AUTHORITIES_LISTED)
        )
        names = [(name, title or "") for name, title in authorities.all()]
    return {"all_lists": lists, "authority_names": names}


@page("alert.create")
async def new_alert_form(c: Ctx) -> web.Response:
    """GET /alerts/new?family=: the editor, filled with the family's example case."""
    renderer = c.app.renderer
    families = renderer.families()
    family = c.request.query.get("family") or (
        "urgent-appeal" if "urgent-appeal" in families else families[0]
    )
    if family not in families:
        raise NotFound(f"template family {family!r} does not exist; known: {', '.join(families)}")
    example = (renderer.family_dir(family) / "example.toml").read_text(encoding="utf-8")
    directory = await _directory(c)
    return c.render("editor.html", **_editor_context(c, family=family, case_toml=example, **directory))


@page("alert.create")
async def create_alert(c: Ctx) -> web.Response:
    """POST /alerts/new: a new draft (validation errors shown beside their field, nothing written)."""
    family, title = c.field("family"), c.field("title")
    case: dict[str, Any] | None = None
    case_toml, mode = c.field("case_toml"), "form"
    try:
        case, case_toml, mode = _read_case(c, family)
        audience = _audience_from_form(c)
        done = await alert_actions.create(
            c.app, c.user, family=family, case_data=case, audience=audience, title=title or None
        )
    except ValidationError as exc:
        return await _editor_error(
            c, exc, family=family, case=case, case_toml=case_toml, mode=mode, title=title
        )
    return redirect(f"{P}/alerts/{done.alert_id}?notice=created")


async def _editor_error(
    c: Ctx, exc: ValidationError, *, alert: Alert | None = None, **values: Any
) -> web.Response:
    audience = {
        "lists": c.fields("lists"),
        "kinds": c.fields("kinds"),
        "channels": c.fields("channels"),
        "languages": c.fields("languages"),
    }
    variable = (exc.details or {}).get("variable")
    context = _editor_context(
        c,
        errors=_errors(c, exc),
        error_language=caseform.error_language(variable if isinstance(variable, str) else None),
        audience=audience,
        alert=alert,
        **await _directory(c),
        **values,
    )
    return c.render("editor.html", status=422, **context)


@page("alert.edit")
async def edit_alert_form(c: Ctx) -> web.Response:
    """GET /alerts/{id}/edit: the editor on the current version."""
    async with c.app.reads() as session:
        alert = await drafts.get_alert(session, alert_id(c))
        version = await drafts.current_version(session, alert)
    audience = {"lists": [], "kinds": [], "channels": [], "languages": ["en"]} | dict(alert.audience or {})
    return c.render(
        "editor.html",
        **_editor_context(
            c,
            family=alert.family,
            case=version.case_data,
            case_toml=ui_toml.dumps(version.case_data),
            title=alert.title,
            audience=audience,
            alert=alert,
            **await _directory(c),
        ),
    )


@page("alert.edit")
async def edit_alert(c: Ctx) -> web.Response:
    """POST /alerts/{id}/edit: a new version (an alert in review or approved goes back to draft)."""
    title = c.field("title")
    async with c.app.reads() as session:
        current = await drafts.get_alert(session, alert_id(c))
    case: dict[str, Any] | None = None
    case_toml, mode = c.field("case_toml"), "form"
    try:
        case, case_toml, mode = _read_case(c, current.family)
        audience = _audience_from_form(c)
        await alert_actions.edit(
            c.app, c.user, alert_id(c), case_data=case, title=title or None, audience=audience
        )
    except ValidationError as exc:
        return await _editor_error(
            c,
            exc,
            alert=current,
            family=current.family,
            case=case,
            case_toml=case_toml,
            mode=mode,
            title=title,
        )
    return redirect(f"{P}/alerts/{current.id}?notice=edited")


def _preview_args(c: Ctx, source: Any) -> tuple[str, str, str]:
    audience, channel, language = (source.get(k, "") for k in ("audience", "channel", "language"))
    if audience not in KINDS:
        raise ValidationError(f"audience: {audience!r} is not one of {', '.join(KINDS)}")
    if channel not in CHANNELS:
        raise ValidationError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    return audience, channel, language or "en"


def _content_json(content: Any) -> web.Response:
    return web.json_response(
        {
            "channel": content.channel,
            "audience": content.audience,
            "language": content.language,
            "subject": content.subject,
            "text": content.text,
            "html": content.html,
        }
    )


@page("view")
async def preview_saved(c: Ctx) -> web.Response:
    """GET /alerts/{id}/preview?audience=&channel=&language=: the current version, as it will be sent."""
    audience, channel, language = _preview_args(c, c.request.query)
    async with c.app.reads() as session:
        info = await load_alert_info(session, alert_id(c))
    return _content_json(c.app.builder.content(info, audience=audience, channel=channel, language=language))


@page("alert.edit")
async def preview_draft(c: Ctx) -> web.Response:
    """POST /preview: the editor's unsaved case data rendered (nothing is written)."""
    audience, channel, language = _preview_args(c, c.form or {})
    family = c.field("family")
    case, _, _ = _read_case(c, family)
    content = c.app.renderer.render(
        family,
        case,
        audience=audience,
        channel=rendered_as(channel),
        language=language,
        extra={
            "alert_title": c.field("title") or drafts.default_title(family, case),
            "alert_url": urls.public_alert(c.app.builder.public_url, "preview"),
        },
    )
    return _content_json(content)


def setup(webapp: web.Application) -> None:
    """Add the editor and the previews."""
    webapp.router.add_get(f"{P}/alerts/new", new_alert_form)
    webapp.router.add_post(f"{P}/alerts/new", create_alert)
    webapp.router.add_get(f"{P}/alerts/{ID}/edit", edit_alert_form)
    webapp.router.add_post(f"{P}/alerts/{ID}/edit", edit_alert)
    webapp.router.add_get(f"{P}/alerts/{ID}/preview", preview_saved)
    webapp.router.add_post(f"{P}/preview", preview_draft)
