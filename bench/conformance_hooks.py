"""schemathesis hooks for ``bench/conformance.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

Two API tokens, each a registered auth provider (so the ``ignored_auth`` check can still take
them off a request to see it refused): approving is done by a second person
(``compose.approval``: the author may not approve their own alert), so
``POST /alerts/{id}/approve`` goes as the reviewer and everything else as the run's admin, who
wrote the alert. A stateful scenario can then create, submit, approve and send one alert.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

#: The environment variables ``bench/conformance.py`` puts the two tokens in.
RUNNER_TOKEN = "ALERTS_CONFORMANCE_TOKEN"
REVIEWER_TOKEN = "ALERTS_CONFORMANCE_REVIEWER_TOKEN"
#: The operations the reviewer calls (operationIds, ``web.api.openapi.operation_id``).
AS_REVIEWER = ("post_alerts_id_approve",)


class _Bearer:
    """A static bearer token, read from the environment variable ``variable``."""

    variable = ""

    def get(self, case: Any, context: Any) -> str:
        return os.environ[self.variable]

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# The first provider that applies wins: the reviewer's, registered first, for its operations.
@schemathesis.auth(refresh_interval=None).apply_to(operation_id=list(AS_REVIEWER))
class Reviewer(_Bearer):
    variable = REVIEWER_TOKEN


@schemathesis.auth(refresh_interval=None)
class Runner(_Bearer):
    variable = RUNNER_TOKEN


def _update_families(operation: Any) -> frozenset[str]:
    """The template families whose alerts update another (their body requires ``parent_id``)."""
    schema = operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]
    (families, _audience) = schema["allOf"]
    return frozenset(
        option["properties"]["family"]["const"]
        for option in families["anyOf"]
        if "parent_id" in option.get("required", ())
    )


@schemathesis.hook.apply_to(operation_id="post_alerts")
def before_generate_case(context: Any, strategy: Any) -> Any:
    """In the stateful phase, a new alert that need not update another updates none: a random
    ``parent_id`` names no alert (a 404), which leaves its links nothing to follow. A valid body
    stays valid (``parent_id`` may be null); negative data and the other phases are untouched."""
    updates = _update_families(context.operation)

    def new_alert(case: Any) -> Any:
        meta, body = case.meta, case.body
        if (
            meta is not None
            and meta.phase.name == "stateful"
            and meta.generation.mode == "positive"
            and isinstance(body, dict)
            and isinstance(body.get("parent_id"), int)
            and body.get("family") not in updates
        ):
            case.body = {**body, "parent_id": None}
        return case

    return strategy.map(new_alert)
