"""Every error this service raises on purpose.

Each subclass carries an error ``code`` and an ``http_status`` so that the JSON API
middleware and the CLI render it the same way: ``{"error": {"code", "message", "details"}}``
for the API, one line on stderr and a non-zero exit for the CLI.

An error people read on the pages is made with ``said``: its English ``message`` is a msgid
(``alerts.core.msgids``) with its values filled in, and it keeps the msgid and the values so that
the pages show it in their language (``alerts.web.i18n.said``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class AlertsError(Exception):
    """Base class for errors raised by this service."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.msgid: str | None = None
        self.values: dict[str, Any] = {}

    @classmethod
    def said(cls, msgid: str, *, details: dict[str, Any] | None = None, **values: Any) -> Self:
        """The error whose message is ``msgid`` (marked with ``N_``) with ``values`` filled in."""
        error = cls(msgid % values if values else msgid, details=details)
        error.msgid, error.values = msgid, values
        return error

    def to_dict(self) -> dict[str, Any]:
        """The API's error body."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ConfigError(AlertsError, ValueError):
    """A configuration file or environment value is missing or malformed."""

    code, http_status = "config_error", 500


class ValidationError(AlertsError, ValueError):
    """Input (CSV row, case data, API body, CLI argument) is malformed."""

    code, http_status = "invalid", 422


class NotFound(AlertsError, LookupError):
    """The object named does not exist."""

    code, http_status = "not_found", 404


class Conflict(AlertsError):
    """The request contradicts the object's current state."""

    code, http_status = "conflict", 409


class ApprovalRequired(Conflict):
    """The alert (or one of its languages) is not approved for this action."""

    code, http_status = "approval_required", 409


class ConsentRequired(Conflict):
    """A public alert needs the defender's consent recorded first."""

    code, http_status = "consent_required", 409


class PermissionDenied(AlertsError, PermissionError):
    """The user may not do this (role, or author approving their own alert)."""

    code, http_status = "forbidden", 403


class Unauthorized(AlertsError):
    """No valid credentials were presented."""

    code, http_status = "unauthorized", 401


class BadRequest(AlertsError):
    """The request cannot be read at all (malformed JSON)."""

    code, http_status = "bad_request", 400


class PayloadTooLarge(AlertsError):
    """The request body is over the route's size limit."""

    code, http_status = "payload_too_large", 413


class UnsupportedMediaType(AlertsError):
    """The body is not in the content type the route reads."""

    code, http_status = "unsupported_media_type", 415


class TemplateError(AlertsError):
    """A template could not be loaded or rendered (including sandbox refusals)."""

    code, http_status = "template_error", 422


class SandboxViolation(TemplateError):
    """A template tried to reach Python internals or to exceed the output cap."""

    code, http_status = "template_unsafe", 422
