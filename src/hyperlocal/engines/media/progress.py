"""Progress from a worker thread, forwarded on the event loop.

The engine's progress callback is async and may write to the database, so a render thread
cannot call it. The thread posts its latest fraction to the job's :class:`Mailbox` instead; the
loop forwards it a few times a second and only when it changed. A report that carries a preview
image (a :class:`~hyperlocal.engines.base.StepMessage` with one) is kept until it is forwarded,
even when later steps are posted meanwhile, so a job that asked for previews gets them.

Cancelling the job's task stops the thread too, at its next post, rather than leaving it to
encode a video nobody will read: the mailbox's ``cancelled`` event is the bridge from the task
to the thread. The cancelled task ends once the thread has stopped, so the job frees its model
(and its worker slot) only then.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from hyperlocal.engines.base import ProgressCallback, StepMessage

__all__ = ["STOP_WAIT_S", "Mailbox", "Report", "Stopped", "forward", "run_reporting"]

T = TypeVar("T")
log = logging.getLogger(__name__)
Report = Callable[[float, str], None]
INTERVAL_S = 0.25
STOP_WAIT_S = 120.0  # the longest a cancelled job waits for its thread's step to end

Posted = tuple[float, str]


class Stopped(Exception):
    """Raised inside a worker thread, at its next report, once nobody waits for its result."""


class Mailbox:
    """One job's reports, from the thread that does its work to the loop that forwards them;
    and ``cancelled``, which the job's task sets when it is cancelled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Posted | None = None
        self._preview: Posted | None = None  # the last report with a preview not yet taken
        self.cancelled = threading.Event()

    def post(self, fraction: float, message: str) -> None:
        """A :data:`Report`: raises :class:`Stopped` once the job is cancelled."""
        if self.cancelled.is_set():
            raise Stopped
        self.put(fraction, message)

    def put(self, fraction: float, message: str) -> None:
        """Posts without asking whether the job is cancelled (work shared by several jobs)."""
        posted = (min(max(fraction, 0.0), 1.0), message)
        with self._lock:
            self._latest = posted
            if isinstance(message, StepMessage) and message.preview is not None:
                self._preview = posted

    def take(self) -> list[Posted]:
        """What to forward now, oldest first: an untaken preview, then the latest report."""
        with self._lock:
            preview, latest = self._preview, self._latest
            self._preview = self._latest = None
        return [p for p in (preview, latest if latest is not preview else None) if p is not None]


async def forward(mailbox: Mailbox, done: asyncio.Future[Any], progress: ProgressCallback) -> None:
    """Hands what ``mailbox`` receives to ``progress`` a few times a second, until ``done``."""
    while not done.done():
        await asyncio.wait({done}, timeout=INTERVAL_S)
        for fraction, message in mailbox.take():
            await progress(fraction, message)


async def run_reporting(work: Callable[[Report], T], progress: ProgressCallback) -> T:
    """Runs ``work(report)`` in a thread, forwarding what it reports to ``progress``."""
    mailbox = Mailbox()
    task = asyncio.ensure_future(asyncio.to_thread(work, mailbox.post))
    try:
        await forward(mailbox, task, progress)
        return task.result()
    except asyncio.CancelledError:
        mailbox.cancelled.set()
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
