"""A :class:`~hyperlocal.engines.providers.base.Watch` that records what an adapter reports,
and that a test can wake as a verified webhook would."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordingWatch:
    request_ids: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    queue_positions: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # the pauses asked for, in order
    woken: dict[str, asyncio.Event] = field(default_factory=dict)
    answers: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    submitted_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def submitted(self, request_id: str) -> None:
        self.request_ids.append(request_id)
        self.submitted_event.set()

    async def progress(
        self, fraction: float | None = None, queue_position: int | None = None
    ) -> None:
        if fraction is not None:
            self.fractions.append(fraction)
        if queue_position is not None:
            self.queue_positions.append(queue_position)

    async def wait(self, request_id: str, seconds: float) -> Mapping[str, Any] | None:
        self.waits.append(seconds)
        event = self.woken.setdefault(request_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return None
        event.clear()
        return self.answers.get(request_id)

    def wake(self, request_id: str, answer: Mapping[str, Any] | None = None) -> None:
        """As a verified webhook would: with the request's final answer, where it carried one."""
        if answer is not None:
            self.answers[request_id] = answer
        self.woken.setdefault(request_id, asyncio.Event()).set()
