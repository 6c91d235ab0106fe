"""The JSON schemas of the alert routes: what create and edit take, an alert as listed, its
audience report, and the state an action on an alert returns (``api.alerts``, ``api.workflow``)."""

from __future__ import annotations

from alerts.actions import alerts as alert_actions
from alerts.app import App
from alerts.compose import casedata, drafts
from alerts.contacts.fields import KINDS
from alerts.core.channels import ALL
from alerts.core.states import AlertStatus
from alerts.web.api.routes import MAX_ID, Schema
from alerts.web.api.schema import REFUSAL, TIME, line

LANGUAGE: Schema = {"type": "string", "pattern": "^[a-z]{2}$", "minLength": 2, "maxLength": 2}
NAMES: Schema = {"type": "array", "items": line(drafts.MAX_LIST_NAME), "maxItems": 100}
STATUSES = [s.value for s in AlertStatus]

AUDIENCE_PROPS: dict[str, Schema] = {
    "lists": NAMES,
    "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}, "maxItems": 5},
    "channels": {
        "type": "array",
        "items": {"type": "string", "enum": [c.value for c in ALL]},
        "maxItems": 4,
    },
    "languages": {"type": "array", "items": LANGUAGE, "minItems": 1, "maxItems": 50},
}
#: An audience names at least one list or contact kind (``drafts.Audience``).
AUDIENCE_NAMED: list[Schema] = [
    {"required": [name], "properties": {name: {"minItems": 1}}} for name in ("lists", "kinds")
]
NAMED = {"field": "audience", "message": "audience: name at least one list or contact kind"}
CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["family", "data"],
    "properties": {
        "family": {"type": "string", "maxLength": 64, "description": "template family (GET templates)"},
        "data": {"type": "object", "description": "case data: the family's variables"},
        "title": line(drafts.MAX_TITLE),
        **AUDIENCE_PROPS,
        "is_public": {"type": "boolean", "description": "publish in the archive (needs public consent)"},
        "parent_id": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_ID,
            "description": "the alert this one updates",
        },
        "embargo_until": {**TIME, "type": ["string", "null"]},
        "fallback_email": {"type": "boolean"},
    },
}
EDIT: Schema = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,  # an edit changes something (drafts.edit_alert refuses nothing to change)
    "properties": {
        "data": {"type": "object", "description": "case data for the alert's own family"},
        "title": line(drafts.MAX_TITLE),
        "audience": {
            "type": "object",
            "additionalProperties": False,
            "properties": AUDIENCE_PROPS,
            "anyOf": AUDIENCE_NAMED,
            REFUSAL: NAMED,
        },
    },
}


def family_data(app: App) -> list[Schema]:
    """Per template family: its name and its case data's schema (``casedata.json_schema``)."""
    renderer = app.renderer
    out: list[Schema] = []
    for name in renderer.families():
        info = renderer.family(name)
        option: Schema = {
            "properties": {"family": {"const": name}, "data": casedata.json_schema(info.variables)}
        }
        if "original" in info.requires:  # an update or a closure follows the alert it updates
            option["required"] = ["parent_id"]
            option["properties"]["parent_id"] = {"type": "integer"}
        out.append(option)
    return out


def audience_props(app: App) -> dict[str, Schema]:
    """The audience's fields as this server takes them: a channel it has no config for is
    refused in the action's words (``actions.alerts.not_configured``)."""
    channel: Schema = {**AUDIENCE_PROPS["channels"]["items"]}
    refused = alert_actions.unconfigured_channels(app)
    if refused:
        channel["allOf"] = [
            {
                "not": {"const": name},
                REFUSAL: {"field": "channels", "message": str(alert_actions.not_configured([name]))},
            }
            for name in refused
        ]
        channel["description"] = f"not {', '.join(refused)}: not configured on this server"
    return {**AUDIENCE_PROPS, "channels": {**AUDIENCE_PROPS["channels"], "items": channel}}


def create_schema(app: App) -> Schema:
    """A new alert: a family this server has, with its case data, and an audience."""
    return {
        **CREATE,
        "properties": {**CREATE["properties"], **audience_props(app)},
        "allOf": [{"anyOf": family_data(app)}, {"anyOf": AUDIENCE_NAMED, REFUSAL: NAMED}],
    }


def edit_schema(app: App) -> Schema:
    """An edit: case data of one of the families (the alert's own is checked by the handler)."""
    datas = [option["properties"]["data"] for option in family_data(app)]
    audience = {**EDIT["properties"]["audience"], "properties": audience_props(app)}
    return {**EDIT, "properties": {**EDIT["properties"], "data": {"anyOf": datas}, "audience": audience}}


ALERT_REF: Schema = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {"id": {"type": "integer"}, "status": {"type": "string", "enum": STATUSES}},
}
SUMMARY: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "family": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "languages": {"type": "array", "items": {"type": "string"}},
        "is_public": {"type": "boolean"},
        "parent_id": {"type": ["integer", "null"]},
        "paused": {"type": "boolean"},
        "created_at": {"type": "string"},
        "published_at": {"type": ["string", "null"]},
    },
}


_COUNT = {"type": "integer", "minimum": 0}
_NAMES = {"type": "array", "items": {"type": "string"}}
AUDIENCE: Schema = {
    "type": "object",
    "required": ["alert", "deliveries", "reached", "left_out_total", "left_out"],
    "properties": {
        "alert": {"type": "integer"},
        "languages": _NAMES,
        "channels": _NAMES,
        "deliveries": _COUNT,
        "webhook": {"type": "boolean"},
        "reached": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "channel": {"type": "string"},
                    "language": {"type": "string"},
                    "count": _COUNT,
                },
            },
        },
        "language_fallbacks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"wanted": {"type": "string"}, "shown": {"type": "string"}, "count": _COUNT},
            },
        },
        "left_out_total": _COUNT,
        "left_out_counts": {"type": "object", "additionalProperties": _COUNT},
        "left_out": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "contact": {"type": "integer"},
                    "name": {"type": "string"},
                    "organisation": {"type": ["string", "null"]},
                    "kind": {"type": "string"},
                    "reason": {"type": "string"},
                    "why": {"type": "string"},
                },
            },
        },
        "left_out_listed": _COUNT,
        "not_configured": _NAMES,
    },
}


def state_of(extra: dict[str, Schema]) -> Schema:
    """The response schema of an action on an alert: its id and status, plus ``extra``."""
    return {
        "type": "object",
        "required": ["id", "status"],
        "properties": {**ALERT_REF["properties"], **extra},
    }
