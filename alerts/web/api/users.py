"""JSON API for accounts under /api/v1/users (admins: ``users.manage``).

Declared as ``Route``s of the shared table (``ROUTES``, registered by ``alerts.web.api.routes``)
and so in the OpenAPI document. Every handler calls one ``alerts.actions.accounts`` action.

GET    /api/v1/users                     every user
POST   /api/v1/users                     {"name", "role", "email", "telegram", "password",
                                          "token": true} → 201, the user (+ "token", shown once)
GET    /api/v1/users/{name}              one user
PATCH  /api/v1/users/{name}              {"role", "email", "telegram", "active"} (null clears)
POST   /api/v1/users/{name}/password     {"password", "current_password"} (ends their sessions)
POST   /api/v1/users/{name}/token        a new token (shown once; the old one stops) → 201
DELETE /api/v1/users/{name}/token        revoke all of the user's tokens
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alerts.accounts.users import MAX_NAME, MAX_PASSWORD, MIN_PASSWORD, UNSET
from alerts.actions import accounts, two_factor
from alerts.core.languages import PAGE_LANGUAGES
from alerts.core.states import Role
from alerts.web.api.routes import PREFIX, Ctx, Route, Schema, json_response
from alerts.web.api.schema import EMAIL, TELEGRAM, line

#: A user's email: any address a contact may have, or a local mailbox (``name@localhost``, where
#: ``alerts demo``'s capture server receives the review notices), as ``accounts.users`` takes it.
LOCALHOST = "[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]"
ATOM = "[A-Za-z0-9_%+-]{1,20}"
USER_EMAIL: Schema = {
    "anyOf": [
        EMAIL,
        # one atom, or atoms between single dots (none first or last): at most 64 characters
        {
            "type": "string",
            "maxLength": 320,
            "pattern": "^(?:[A-Za-z0-9_%+-]{1,64}|(?:" + ATOM + "\\.){1,2}" + ATOM + ")@" + LOCALHOST + "$",
        },
    ],
    "description": EMAIL["description"] + "; or a local mailbox, name@localhost",
}

U = f"{PREFIX}/users"
ONE = f"{U}/{{name}}"
NF = (404,)
ROLE: Schema = {"type": "string", "enum": [role.value for role in Role]}
PASSWORD: Schema = {
    "type": "string",
    "minLength": MIN_PASSWORD,
    "maxLength": MAX_PASSWORD,
    "description": f"at least {MIN_PASSWORD} characters",
}
USER: Schema = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "role": ROLE,
        "email": {"type": ["string", "null"]},
        "telegram": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
        "has_password": {"type": "boolean"},
        "has_token": {"type": "boolean"},
        "token_read_only": {"type": "boolean", "description": "the API token may only read (GET)"},
        "two_factor": {"type": "boolean", "description": "signs in with a code after the password"},
        "created_at": {"type": "string", "format": "date-time"},
        "language": {
            "type": ["string", "null"],
            "enum": [*PAGE_LANGUAGES, None],
            "description": "the language of their pages; null: their browser's",
        },
    },
}
CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "role"],
    "properties": {
        "name": line(MAX_NAME),
        "role": ROLE,
        "email": USER_EMAIL,
        "telegram": TELEGRAM,
        "password": {**PASSWORD, "description": "none: the user cannot sign in until one is set"},
        "token": {"type": "boolean", "description": "issue an API token, returned this once"},
        "read_only": {"type": "boolean", "description": "the token may only read (GET)"},
    },
}
TOKEN_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"read_only": {"type": "boolean", "description": "the token may only read (GET)"}},
}
RESET: Schema = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "reset": {"type": "boolean"}},
}
PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"role": ROLE, "email": USER_EMAIL, "telegram": TELEGRAM, "active": {"type": "boolean"}},
}
PASSWORD_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["password"],
    "properties": {
        "password": PASSWORD,
        "current_password": {**PASSWORD, "description": "needed to change one's own password"},
    },
}
TOKEN: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "token": {"type": "string", "description": "shown this once"},
        "replaced": {"type": "boolean"},
    },
}
REVOKED: Schema = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "revoked": {"type": "integer"}},
}
USERS: Schema = {"type": "object", "properties": {"users": {"type": "array", "items": USER}}}


def _name(ctx: Ctx) -> str:
    return ctx.request.match_info["name"]


async def list_users(ctx: Ctx) -> web.Response:
    """Every user, by name."""
    found = await accounts.list_accounts(ctx.app, ctx.user)
    return json_response({"users": [account.to_json() for account in found]})


async def create_user(ctx: Ctx) -> web.Response:
    """Add a user; with "token": true, its API token, shown this once."""
    body = ctx.body
    added = await accounts.add(
        ctx.app,
        ctx.user,
        name=body["name"],
        role=body["role"],
        email=body.get("email"),
        telegram=body.get("telegram"),
        password=body.get("password"),
        with_token=bool(body.get("token")),
        read_only=bool(body.get("read_only")),
    )
    return json_response({**added.account.to_json(), "token": added.token}, status=201)


async def get_user(ctx: Ctx) -> web.Response:
    """One user."""
    return json_response((await accounts.get(ctx.app, ctx.user, _name(ctx))).to_json())


async def update_user(ctx: Ctx) -> web.Response:
    """Change role, email, Telegram chat or whether the user is active."""
    body: dict[str, Any] = ctx.body
    done = await accounts.update(
        ctx.app,
        ctx.user,
        _name(ctx),
        role=body.get("role"),
        email=body["email"] if "email" in body else UNSET,
        telegram=body["telegram"] if "telegram" in body else UNSET,
        active=body.get("active"),
    )
    return json_response(done.account.to_json())


async def set_password(ctx: Ctx) -> web.Response:
    """Set the user's password; their sessions end."""
    done = await accounts.set_password(
        ctx.app, ctx.user, _name(ctx), ctx.body["password"], current=ctx.body.get("current_password")
    )
    return json_response(done.account.to_json())


async def issue_token(ctx: Ctx) -> web.Response:
    """A new API token, shown this once."""
    read_only = bool(ctx.body.get("read_only", False))
    issued = await accounts.issue_token(ctx.app, ctx.user, _name(ctx), read_only=read_only)
    return json_response(
        {"name": issued.account.name, "token": issued.token, "replaced": issued.replaced}, status=201
    )


async def reset_two_factor(ctx: Ctx) -> web.Response:
    """Remove a user's lost second factor; their sessions end, they enrol again."""
    name = _name(ctx)
    reset = await two_factor.reset(ctx.app, ctx.user, name)
    return json_response({"name": name, "reset": reset})


async def revoke_tokens(ctx: Ctx) -> web.Response:
    """Revoke all of the user's API tokens."""
    revoked = await accounts.revoke_tokens(ctx.app, ctx.user, _name(ctx))
    return json_response({"name": revoked.account.name, "revoked": revoked.revoked})


def _route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(
        method=method, path=path, handler=handler, summary=summary, action="users.manage", tag="users", **kw
    )


ROUTES: list[Route] = [
    _route("GET", U, list_users, "Every user", response=USERS),
    _route(
        "POST",
        U,
        create_user,
        "Add a user",
        request=CREATE,
        required_body=True,
        status=201,
        response=USER,
        errors=(409,),
        creates=ONE,
    ),
    _route("GET", ONE, get_user, "One user", response=USER, errors=NF),
    _route(
        "PATCH",
        ONE,
        update_user,
        "Change a user's role, email, Telegram chat or whether they are active",
        request=PATCH,
        required_body=True,
        response=USER,
        errors=(404, 409),
    ),
    _route(
        "POST",
        f"{ONE}/password",
        set_password,
        "Set a user's password (their sessions end)",
        request=PASSWORD_BODY,
        required_body=True,
        response=USER,
        errors=(403, 404),
    ),
    _route(
        "POST",
        f"{ONE}/token",
        issue_token,
        "Issue an API token (read_only: it may only read)",
        request=TOKEN_BODY,
        status=201,
        response=TOKEN,
        errors=NF,
    ),
    _route("DELETE", f"{ONE}/token", revoke_tokens, "Revoke the user's tokens", response=REVOKED, errors=NF),
    _route(
        "DELETE",
        f"{ONE}/2fa",
        reset_two_factor,
        "Reset a user's lost second factor (their sessions end; they enrol again)",
        response=RESET,
        errors=NF,
    ),
]
