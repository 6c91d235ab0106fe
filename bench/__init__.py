"""Runnable benchmarks (see bench/RESULTS.md); ``run`` is how each starts its event loop."""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``main`` on the loop the service ships with (``ALERTS_SERVER_EVENT_LOOP``, default uvloop),
    so a bench measures what runs in production, and the yardsticks beside it on the same loop."""
    from alerts.core import loop

    try:
        name = loop.chosen(os.environ)
    except ValueError as exc:
        main.close()  # never started
        raise SystemExit(str(exc)) from None
    print(f"event loop: {name}", flush=True)
    return loop.run(main, name)
