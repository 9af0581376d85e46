"""Work that stops when its client goes away, before any of the response has been sent.

A non-streamed chat can generate for a minute, and a streamed one can wait as long for its
first token (a long prompt, a busy upstream). If the client gives up meanwhile, the work is
cancelled: the backend stops (an upstream's connection is closed, a local model's generation
ends), and the chat records how far it got. A streamed reply's body is sent under the same
watch, from its first byte (``routes.chat.ChatEventStream``).

Watching costs a task per request, more than a relayed reply's whole budget on a fast
upstream; so, before a response, it starts only once the work has run ``WATCH_AFTER_S``, and
quick replies never pay for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from hyperlocal.errors import ClientGoneError

__all__ = ["WATCH_AFTER_S", "unless_gone"]

T = TypeVar("T")

WATCH_AFTER_S = 0.05


async def unless_gone(receive: Receive, work: Awaitable[T], after: float = WATCH_AFTER_S) -> T:
    """``work``'s result; or, if the client disconnects first, ``work`` is cancelled and
    ``ClientGoneError`` raised. ``receive`` must have delivered the whole request body: what
    comes after it is only the disconnect."""
    task = asyncio.current_task()
    assert task is not None
    watch = _Watch(receive, task)
    timer = asyncio.get_running_loop().call_later(after, watch.start)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.gone:
            raise  # the server is stopping, or a caller cancelled
        task.uncancel()
        raise ClientGoneError from None
    finally:
        timer.cancel()
        watch.stop()


class _Watch:
    def __init__(self, receive: Receive, task: asyncio.Task[object]) -> None:
        self._receive, self._task = receive, task
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False

    def start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()
