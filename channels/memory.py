"""A complete channel that records messages in a list: for tests and dry runs.

Behaviour per address can be scripted: ``script["addr"] = [Outcome, ...]`` returns those
outcomes in order (then SENT); an ``Exception`` instance in the list is raised instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

from alerts.core.types import Outcome, OutcomeKind, RenderedMessage


@dataclass
class MemoryChannel:
    """Records every message it is given; answers SENT unless scripted otherwise."""

    name: ClassVar[str] = "memory"
    channel_name: str = "memory"
    sent: list[RenderedMessage] = field(default_factory=list)
    script: dict[str, list[Outcome | BaseException]] = field(default_factory=dict)
    delay: float = 0.0
    opened: bool = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def send(self, message: RenderedMessage) -> Outcome:
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self.script.get(message.recipient.address)
        if queue:
            result = queue.pop(0)
            if isinstance(result, BaseException):
                raise result
            if result.kind is not OutcomeKind.SENT:
                return result
        self.sent.append(message)
        return Outcome.sent(provider_id=f"mem-{len(self.sent)}")
