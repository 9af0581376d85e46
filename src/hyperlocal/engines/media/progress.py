"""Progress from a worker thread, forwarded on the event loop.

The engine's progress callback is async and may write to the database, so a render thread
cannot call it. The thread posts its latest fraction here instead; the loop forwards it a few
times a second and only when it changed. Cancelling the job's task stops the thread too, at its
next post, rather than leaving it to encode a video nobody will read; the cancelled task ends
once the thread has stopped, so the job frees its model (and its worker slot) only then.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hyperlocal.engines.base import ProgressCallback

__all__ = ["Report", "run_reporting"]

T = TypeVar("T")
log = logging.getLogger(__name__)
Report = Callable[[float, str], None]
INTERVAL_S = 0.25
STOP_WAIT_S = 120.0  # the longest a cancelled job waits for its thread's step to end


class _Cancelled(Exception):
    """Raised inside the worker thread once nobody is waiting for its result."""


class _Mailbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: tuple[float, str] | None = None
        self.cancelled = False

    def post(self, fraction: float, message: str) -> None:
        if self.cancelled:
            raise _Cancelled
        with self._lock:
            self._latest = (min(max(fraction, 0.0), 1.0), message)

    def take(self) -> tuple[float, str] | None:
        with self._lock:
            latest, self._latest = self._latest, None
        return latest


async def run_reporting(work: Callable[[Report], T], progress: ProgressCallback) -> T:
    """Runs ``work(report)`` in a thread, forwarding what it reports to ``progress``."""
    mailbox = _Mailbox()
    task = asyncio.ensure_future(asyncio.to_thread(work, mailbox.post))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=INTERVAL_S)
            if (latest := mailbox.take()) is not None:
                await progress(*latest)
        return task.result()
    except asyncio.CancelledError:
        mailbox.cancelled = True
        await _stopped(task)
        raise


async def _stopped(task: asyncio.Future[Any]) -> None:
    """Wait for a cancelled job's thread to stop at its next post: until then it still holds
    the model (a GPU step in flight), so the job is not over: its refund and worker slot wait
    for this. A thread that has not stopped in ``STOP_WAIT_S`` is left to finish alone."""
    task.add_done_callback(_discard)
    done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
    if not done:
        log.warning("a cancelled job's thread is still running", extra={"after_s": STOP_WAIT_S})


def _discard(task: asyncio.Future[Any]) -> None:
    """Collects the abandoned thread's outcome, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()
