"""The event loop every command runs on: uvloop where it is installed, else asyncio's own.

uvloop (libuv, in C) runs the same coroutines with less work per callback, socket write and
timer. On PostgreSQL (asyncpg is written for it) a send costs about a sixth less CPU a message
on it than on asyncio's loop (9 of 11 interleaved pairs); on SQLite the difference is within
the noise (bench/RESULTS.md). ``[server] event_loop = "asyncio"`` chooses the standard
loop, e.g. to rule the loop out when chasing a bug; where uvloop cannot be installed (Windows,
PyPy) the standard loop runs and says so once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, cast

logger = logging.getLogger(__name__)

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]


def chosen(environ: Mapping[str, str]) -> LoopName:
    """``ALERTS_SERVER_EVENT_LOOP`` (default uvloop), for what runs before any settings are
    read: the test runner and the benches; ValueError naming the variable if it is neither."""
    name = environ.get("ALERTS_SERVER_EVENT_LOOP", "uvloop")
    if name not in ("uvloop", "asyncio"):
        raise ValueError(f"ALERTS_SERVER_EVENT_LOOP={name!r}: must be uvloop or asyncio")
    return cast(LoopName, name)


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the chosen loop (asyncio's own if uvloop is asked for and missing)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            logger.warning("[server] event_loop: uvloop is not installed; running on asyncio's own loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: LoopName = "uvloop") -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def loop_name() -> str:
    """The running loop's kind, as ``serve`` and ``worker`` name it in their start line."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


@contextmanager
def start_up_frozen() -> Iterator[None]:
    """What start-up allocated (modules, the ORM's mappings, routes, templates) kept out of the
    cyclic garbage collector's full passes while the service runs (``gc.freeze``).

    Those passes walk every tracked object. During a 100,000 send one came every ~5 s and
    stopped the loop for 60–73 ms (pages, API calls and sends alike); with start-up's ~100,000
    objects frozen they take 4–9 ms (bench/RESULTS.md). Start-up's garbage is collected first;
    what is frozen is never collected, which costs nothing for what lives as long as the
    process. It goes back to the collector when the last service running in the process stops
    (a test process runs many). Where the interpreter has no ``gc.freeze`` (PyPy), nothing is
    frozen.
    """
    global _frozen
    freezes = hasattr(gc, "freeze")
    if freezes:
        gc.collect()
        gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        if freezes:
            _frozen -= 1
            if not _frozen:
                gc.unfreeze()


_frozen = 0  # services running in this process inside start_up_frozen
