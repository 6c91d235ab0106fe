"""``GET /api/v1/openapi.json``: an OpenAPI 3.1 document built from the one route table.

Every API route, the follow-up routes (``alerts.web.api.followups.ROUTES``) included, is in
``alerts.web.api.table.all_routes``, which also serves this document. A test compares the
document with the aiohttp router both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from alerts import __version__ as VERSION
from alerts.accounts.users import PERMISSIONS
from alerts.web.api.routes import MAX_ID, PREFIX, Route, Schema

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
    400: "The body is not valid JSON, or a field holds a control character (NUL, bidi override…).",
    401: "No valid API token.",
    403: "The token's role may not do this.",
    404: "No such object.",
    409: "The object's current state does not allow this.",
    413: "The body is over the size limit.",
    415: "The body is not in the content type this route reads.",
    422: "A field or parameter does not fit; details.field names it.",
}
#: Path variables that are not numeric ids (the rest are).
PATH_SCHEMAS: dict[str, Any] = {"name": {"type": "string", "minLength": 1, "maxLength": 100}}
_VAR = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")


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
            "schema": PATH_SCHEMAS.get(name, {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
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
        codes |= {400, 422}  # 400: a control character in a parameter (alerts.web.base.check_fields)
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
