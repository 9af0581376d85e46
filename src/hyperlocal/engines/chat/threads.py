"""Streaming from a blocking producer (llama.cpp, torch) without blocking the event loop.

The producer runs on its own thread and calls ``emit`` for each delta as it exists; the loop
receives them through a queue. Closing the stream sets ``cancel``, which the producer checks
at every token, so an abandoned generation stops within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable

from hyperlocal.engines.chat.base import ChatDelta
from hyperlocal.errors import GenerationError, HyperlocalError

__all__ = ["Emit", "Producer", "stream_from_thread"]

Emit = Callable[[ChatDelta], None]
Producer = Callable[[Emit, threading.Event], None]

_END = object()


async def stream_from_thread(produce: Producer, *, name: str) -> AsyncGenerator[ChatDelta, None]:
    """Run ``produce(emit, cancel)`` on a new thread and yield what it emits. A
    ``HyperlocalError`` it raises passes through; anything else becomes a ``GenerationError``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancel = threading.Event()

    def push(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            produce(push, cancel)
        except Exception as exc:
            push(exc)
        finally:
            push(_END)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, HyperlocalError):
                raise item
            if isinstance(item, Exception):
                raise GenerationError(f"{name} failed: {item}") from item
            assert isinstance(item, ChatDelta)
            yield item
    finally:
        cancel.set()
