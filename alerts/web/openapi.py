"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 document built from the one route table.

The follow-up routes are registered by ``alerts.web.api_followups``; they are declared here
(``EXTERNAL``, without a handler) so the document covers every API route. A test compares
the document with the aiohttp router both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from alerts import __version__ as VERSION
from alerts.users import PERMISSIONS
from alerts.web.api import MAX_ID, PREFIX, Ctx, Route, Schema, json_response

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_ERROR_TEXT = {
    400: "The body is not valid JSON.",
    401: "No valid API token.",
    403: "The token's role may not do this.",
    404: "No such object.",
    409: "The object's current state does not allow this.",
    413: "The body is over the size limit.",
    415: "The body is not in the content type this route reads.",
    422: "A field or parameter does not fit; details.field names it.",
}
_VAR = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")

FOLLOWUP: Schema = {"type": "object"}
_FOLLOWUP_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": ["reminder", "update", "send", "digest"]},
        "at": {"type": "string", "format": "date-time", "maxLength": 64},
        "in": {"type": "string", "maxLength": 16, "description": "e.g. 7d, 12h"},
        "note": {"type": "string", "maxLength": 2000},
        "data": {"type": "object"},
        "condition": {"type": ["string", "null"], "enum": ["no_response", "case_open", None]},
        "kinds": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
}
_ALERT = rf"{PREFIX}/alerts/{{id:\d+}}"

#: Routes another module registers (api_followups), documented here.
EXTERNAL: list[Route] = [
    Route(
        method="GET",
        path=f"{_ALERT}/followups",
        handler=None,
        summary="The alert's follow-ups",
        action="view",
        tag="followups",
        errors=(404,),
        response={"type": "object", "properties": {"followups": {"type": "array", "items": FOLLOWUP}}},
    ),
    Route(
        method="POST",
        path=f"{_ALERT}/followups",
        handler=None,
        summary="Schedule a follow-up of the alert",
        action="followup.manage",
        tag="followups",
        request=_FOLLOWUP_BODY,
        required_body=True,
        status=201,
        response=FOLLOWUP,
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path=f"{_ALERT}/responses",
        handler=None,
        summary="Record an authority's response",
        action="alert.respond",
        tag="followups",
        required_body=True,
        status=201,
        errors=(404,),
        request={
            "type": "object",
            "required": ["summary"],
            "properties": {
                "contact_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
                "summary": {"type": "string", "maxLength": 5000},
                "responded_at": {"type": "string", "format": "date-time", "maxLength": 64},
            },
        },
        response={"type": "object"},
    ),
    Route(
        method="GET",
        path=f"{PREFIX}/followups",
        handler=None,
        summary="Every follow-up (pending by default)",
        action="view",
        tag="followups",
        query=(),
        response={"type": "object", "properties": {"followups": {"type": "array", "items": FOLLOWUP}}},
    ),
    Route(
        method="POST",
        path=f"{PREFIX}/followups",
        handler=None,
        summary="Schedule a digest (no alert)",
        action="followup.manage",
        tag="followups",
        request=_FOLLOWUP_BODY,
        required_body=True,
        status=201,
        response=FOLLOWUP,
        errors=(409,),
    ),
    Route(
        method="DELETE",
        path=rf"{PREFIX}/followups/{{id:\d+}}",
        handler=None,
        summary="Cancel a follow-up",
        action="followup.manage",
        tag="followups",
        response=FOLLOWUP,
        errors=(404, 409),
    ),
]


def openapi_path(path: str) -> str:
    """An aiohttp path ("/a/{id:\\d+}") in OpenAPI form ("/a/{id}")."""
    return _VAR.sub(lambda m: "{" + m.group(1) + "}", path)


def _operation(route: Route) -> dict[str, Any]:
    path = openapi_path(route.path)
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_" + re.sub(r"\W+", "_", path.removeprefix(PREFIX)).strip("_"),
        "summary": route.summary,
        "tags": [route.tag],
    }
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            **({"description": p.description} if p.description else {}),
        }
        for p in route.query
    ]
    if params:
        op["parameters"] = params
    codes: set[int] = set(route.errors)
    if route.action is not None:
        roles = ", ".join(sorted(PERMISSIONS[route.action]))
        op["description"] = f"Permission `{route.action}`: roles {roles}."
        op["x-permission"] = route.action
        op["security"] = [{"bearer": []}]
        codes |= {401, 403}
    else:
        op["security"] = []
    if route.request is not None:
        op["requestBody"] = {
            "required": route.required_body,
            "content": {route.request_type: {"schema": route.request}},
        }
        codes |= {400, 413, 415, 422} if route.request_type == "application/json" else {413, 415, 422}
    if route.query:
        codes.add(422)
    responses: dict[str, Any] = {
        str(route.status): {
            "description": "Success.",
            "content": {route.response_type: {"schema": route.response}},
        },
    }
    for code in sorted(codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op["responses"] = responses
    return op


def document(routes: Iterable[Route], *, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Urgent Alerts API",
            "version": VERSION,
            "description": "Draft, approve, send and track urgent alerts. Errors are always "
            '`{"error": {"code", "message", "details"}}`.',
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token: `alerts users add NAME --token`.",
                }
            },
            "schemas": {"Error": ERROR},
            "responses": {
                f"E{code}": {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, text in _ERROR_TEXT.items()
            },
        },
    }


async def openapi_json(ctx: Ctx) -> web.Response:
    """The document (no token needed: it describes, it reveals no data)."""
    from alerts.web.api import all_routes

    return json_response(document(all_routes()))


ROUTE = Route(
    method="GET",
    path=f"{PREFIX}/openapi.json",
    handler=openapi_json,
    summary="This OpenAPI document",
    action=None,
    tag="meta",
    response={"type": "object"},
)
