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
from alerts.app import App
from alerts.core import schemas
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
    403: "The token's role may not do this, or the token is read-only (GET only).",
    404: "No such object.",
    409: "The object's current state (or the present time) does not allow this.",
    413: "The body is over the size limit.",
    415: "The body is not in the content type this route reads.",
    422: "A field or parameter does not fit; details.field names it.",
}
#: Path variables that are not numeric ids (the rest are).
#: A user's name in a path: one line, as the edge (``web.base.check_fields``) and the accounts check it.
PATH_SCHEMAS: dict[str, Any] = {"name": {**schemas.line(100), "minLength": 1}}
_VAR = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")


def openapi_path(path: str) -> str:
    """An aiohttp path ("/a/{id:\\d+}") in OpenAPI form ("/a/{id}")."""
    return _VAR.sub(lambda m: "{" + m.group(1) + "}", path)


def operation_id(route: Route) -> str:
    """The route's operationId, e.g. ``post_alerts_id_submit``."""
    path = openapi_path(route.path).removeprefix(PREFIX)
    return f"{route.method.lower()}_" + re.sub(r"\W+", "_", path).strip("_")


def _operation(route: Route, app: App) -> dict[str, Any]:
    path = openapi_path(route.path)
    op: dict[str, Any] = {
        "operationId": operation_id(route),
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
    request = route.request_schema(app)
    if request is not None:
        op["requestBody"] = {
            "required": route.required_body,
            "content": {route.request_type: {"schema": request}},
        }
        codes |= {400, 413, 415, 422} if route.request_type == "application/json" else {413, 415, 422}
    if route.query:
        codes |= {400, 422}  # 400: a control character in a parameter (alerts.web.base.check_fields)
    if any(name in PATH_SCHEMAS for name in re.findall(r"\{(\w+)", route.path)):
        codes.add(400)  # a text path segment (a user's name) with a control character, refused at the edge
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


def _links(route: Route, routes: list[Route]) -> dict[str, Any]:
    """OpenAPI links from a create route's response to every route under what it creates."""
    assert route.creates is not None
    created = openapi_path(route.creates)
    (variable,) = re.findall(r"\{(\w+)\}$", created)
    links: dict[str, Any] = {}
    for target in routes:
        path = openapi_path(target.path)
        if path == created or path.startswith(created + "/"):
            op_id = operation_id(target)
            links[op_id] = {
                "operationId": op_id,
                "parameters": {variable: f"$response.body#/{variable}"},
                "description": f"{target.summary}, of the {variable} just created",
            }
    if not links:
        raise ValueError(f"{route.method} {route.path}: creates {created}, which no route serves")
    return links


def document(routes: Iterable[Route], app: App, *, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` as ``app`` serves them (its template families)."""
    routes = list(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = _operation(route, app)
        if route.creates is not None:
            op["responses"][str(route.status)]["links"] = _links(route, routes)
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = op
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
