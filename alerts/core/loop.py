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
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]


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
