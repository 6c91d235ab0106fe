"""Every bounce message, standard or not: RFC 3464 first, then flufl.bounce's detectors.

qmail, Exim's default report, Yahoo and many gateways send plain-text bounces with no
``message/delivery-status`` part. flufl.bounce (Mailman's detectors) recognises them and names
the failing addresses, permanent or temporary, without status codes: a permanent one is
reported as ``failed`` with status ``5.0.0``, a temporary one as ``delayed`` with ``4.0.0``.
Such a report is applied like any other, to an address this service mailed only
(``alerts.delivery.inbound``).
"""

from __future__ import annotations

import logging

from flufl.bounce import all_failures

from alerts.core.errors import ValidationError
from alerts.delivery.bounces import BounceReport, Dsn, read_dsn, read_message, returned_message_id

logger = logging.getLogger(__name__)
# flufl.bounce logs each detector it runs (INFO) and each one that trips on odd input (ERROR,
# with a traceback) before re-raising: the outcome is ours to log, once, so those are dropped.
_FLUFL_LOGGER = logging.getLogger("flufl.bounce")


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


HEURISTIC = "heuristic"


def read_bounce(raw: bytes) -> Dsn:
    """The recipients a bounce names; ValidationError (the RFC 3464 reason) if none is found."""
    try:
        return read_dsn(raw)
    except ValidationError as refused:
        if refused.message.endswith(("the message is empty", "bytes")):
            raise
        found = _heuristic(raw)
        if found is None:
            raise ValidationError(
                f"{refused.message}; flufl.bounce finds no failed address in it either",
                details=refused.details,
            ) from refused
        return found


def _heuristic(raw: bytes) -> Dsn | None:
    message = read_message(raw)
    quiet = _Quiet()
    _FLUFL_LOGGER.addFilter(quiet)
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # noqa: BLE001 - a detector tripping on odd input: not recognised
        logger.debug("flufl.bounce could not read a message: %r", exc)
        return None
    finally:
        _FLUFL_LOGGER.removeFilter(quiet)
    message_id = returned_message_id(raw)
    reports = [
        BounceReport(
            recipient=address,
            final_recipient=address,
            action=action,
            status=status,
            diagnostic="recognised by flufl.bounce",
            original_message_id=message_id,
        )
        for found, action, status in ((permanent, "failed", "5.0.0"), (temporary, "delayed", "4.0.0"))
        for address in sorted(a.decode("utf-8", "replace").strip().strip("<>") for a in found)
        if address
    ]
    if not reports:
        return None
    return Dsn(reports=tuple(reports), original_message_id=message_id, kind=HEURISTIC)
