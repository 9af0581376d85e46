"""Job events (status and progress) for SSE streams, published after each commit.

Embedded: an in-memory bus. With Redis: every process publishes to a channel per job and
listens on one shared pattern subscription, so a stream on any API server sees the events of
a job that runs anywhere.

The same bus carries *cancel* requests to whichever process runs the job: its runner (or chat
stream) registers a hook with ``on_cancel`` while the job runs. The request is also on the job's
row (``cancel_requested_at``), which the runner reads at each lease renewal, so a lost event
only delays the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = ["CANCEL", "EventBus", "JobEvent", "MemoryEventBus", "RedisEventBus", "open_event_bus"]

log = logging.getLogger(__name__)
_CHANNEL = "hyperlocal:job:"
_QUEUE_LIMIT = 256  # a subscriber this far behind drops progress, never the terminal event
_OPTIONAL = ("step", "steps", "preview")  # fields left out of the wire while unset


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    kind: str  # "status", "progress", or "cancel" (a request to stop the job's work)
    status: str  # internal status: queued, running, completed, failed, canceled
    progress: float
    # progress only, where the engine reports steps: which step of how many, and a small
    # ``data:image/jpeg`` preview on the steps that carry one (never stored, only sent)
    step: int | None = None
    steps: int | None = None
    preview: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "canceled")


Subscription = contextlib.AbstractAsyncContextManager[AsyncIterator[JobEvent]]
CANCEL = "cancel"


class EventBus(Protocol):
    async def publish(self, event: JobEvent) -> None: ...

    def subscribe(
        self, job_id: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[JobEvent]]: ...

    def on_cancel(self, job_id: str, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` (on the loop, once) when a cancel of ``job_id`` is published in any
        process; returns the function that removes the hook."""
        ...

    async def start(self) -> None:
        """Begin hearing other processes' events (before any ``on_cancel``)."""
        ...

    async def aclose(self) -> None: ...


class MemoryEventBus:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[JobEvent]]] = defaultdict(set)
        self._cancel_hooks: dict[str, Callable[[], None]] = {}

    async def publish(self, event: JobEvent) -> None:
        self.deliver(event)

    def on_cancel(self, job_id: str, hook: Callable[[], None]) -> Callable[[], None]:
        self._cancel_hooks[job_id] = hook

        def remove() -> None:
            if self._cancel_hooks.get(job_id) is hook:
                del self._cancel_hooks[job_id]

        return remove

    async def start(self) -> None:
        return None

    def deliver(self, event: JobEvent) -> None:
        if event.kind == CANCEL:
            hook = self._cancel_hooks.pop(event.job_id, None)
            if hook is not None:
                hook()
            return
        for queue in list(self._subscribers.get(event.job_id, ())):
            if queue.full() and not event.terminal:
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[JobEvent]]:
        queue: asyncio.Queue[JobEvent] = asyncio.Queue(_QUEUE_LIMIT)
        self._subscribers[job_id].add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[job_id].discard(queue)
            if not self._subscribers[job_id]:
                del self._subscribers[job_id]

    async def aclose(self) -> None:
        self._subscribers.clear()
        self._cancel_hooks.clear()


async def _drain(queue: asyncio.Queue[JobEvent]) -> AsyncIterator[JobEvent]:
    while True:
        yield await queue.get()


class RedisEventBus(MemoryEventBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)
        self._listener: asyncio.Task[None] | None = None

    async def publish(self, event: JobEvent) -> None:
        await self._redis.publish(_CHANNEL + event.job_id, _wire(event))

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[AsyncIterator[JobEvent]]:
        await self._ensure_listener()
        async with super().subscribe(job_id) as events:
            yield events

    async def start(self) -> None:
        await self._ensure_listener()

    async def _ensure_listener(self) -> None:
        if self._listener is None:
            pubsub = self._redis.pubsub()
            await pubsub.psubscribe(_CHANNEL + "*")
            self._listener = asyncio.create_task(self._listen(pubsub))

    async def _listen(self, pubsub: Any) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "pmessage":
                    self.deliver(JobEvent(**json.loads(message["data"])))
        finally:
            await pubsub.aclose()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()
        await super().aclose()


def _wire(event: JobEvent) -> str:
    """The event as JSON, without the optional fields it leaves unset: an event without steps
    is the same message as before they existed."""
    fields = asdict(event)
    for name in _OPTIONAL:
        if fields[name] is None:
            del fields[name]
    return json.dumps(fields)


def open_event_bus(redis_url: str | None) -> EventBus:
    return RedisEventBus(redis_url) if redis_url else MemoryEventBus()
