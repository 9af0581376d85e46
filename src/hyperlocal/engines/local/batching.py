"""Dynamic batching: jobs that can share one forward pass run as one call of the model.

An engine hands each job to :meth:`Batcher.submit` with a *key*: jobs with equal keys can run
as one call (for ``diffusers-image``: the same weights, size, steps, guidance and mode). Jobs
of one key queue in a *lane*. A lane runs one batch at a time, of at most ``max_batch`` jobs,
through the engine's ``work(key, batch)``, which returns one result per job, in order. With
``max_batch`` 1 (batching off) no job queues in a lane: each runs at once as a batch of one,
and the jobs of one key run side by side as far as the work allows (the device manager lets
them share a model, or gives them copies on several GPUs), as they did before batching.

**A lone job never waits.** A job that finds its lane idle (no batch running, no job waiting)
starts its driver, which takes the lane's jobs on the next turn of the event loop: a job alone
then runs at once, as a batch of one, and no timer is started for it. The window opens only
when there is company to wait for, in two cases:

- jobs that arrive while a batch runs gather for the lane's next batch;
- several jobs arrive in the same turn of the loop.

Then the next batch leaves once it is full, or ``window_s`` after its oldest job arrived,
whichever comes first. Jobs that queued behind a long batch have waited out their window by
the time it ends, so there the window costs nothing either.

**Each job keeps its own outcome.** A job that fails its checks before ``submit`` fails alone.
A job cancelled while it waits leaves its lane. A job cancelled while its batch runs ends at
once: the batch runs on for the others and its result is discarded. The last live job of a
batch to be cancelled stops the batch: the work's next report raises :class:`Stopped` in its
thread, and that job's task ends once the work has stopped (the model is free then, as a job
run alone promises). An error of the batch as a whole (the model fails to load, say) fails
each of its jobs.

Nothing here imports torch; the engine's ``work`` runs the batch in a thread, reporting
through :meth:`Batch.report` (to every live job) or :meth:`Batch.post` (to one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hyperlocal.engines.base import ProgressCallback
from hyperlocal.engines.media.progress import STOP_WAIT_S, Mailbox, Stopped, forward
from hyperlocal.errors import GenerationError

__all__ = ["Batch", "Batcher", "Policy", "Stopped"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Policy:
    """How a lane batches: ``max_batch`` jobs at most (1: never two at once), gathered for at
    most ``window_s`` seconds from the oldest one's arrival, when a window opens at all."""

    max_batch: int = 1
    window_s: float = 0.020


class _Member(Generic[J, R]):
    __slots__ = ("arrived", "job", "mailbox", "result")

    def __init__(self, job: J, arrived: float, result: asyncio.Future[R]) -> None:
        self.job, self.arrived, self.result = job, arrived, result
        self.mailbox = Mailbox()

    @property
    def live(self) -> bool:
        return not self.mailbox.cancelled.is_set()


class Batch(Generic[J]):
    """The jobs of one call, in order, as the engine's ``work`` receives them. Its reports are
    safe to call from the thread that runs the batch."""

    def __init__(self, members: Sequence[_Member[J, Any]]) -> None:
        self._members = tuple(members)
        self.jobs: tuple[J, ...] = tuple(m.job for m in members)

    def __len__(self) -> int:
        return len(self._members)

    def live(self, index: int) -> bool:
        """Whether the ``index``-th job still waits for its result (it was not cancelled)."""
        return self._members[index].live

    def check(self) -> None:
        """Raises :class:`Stopped` once every job of the batch is cancelled."""
        if not any(m.live for m in self._members):
            raise Stopped

    def post(self, index: int, fraction: float, message: str) -> None:
        """Reports to the ``index``-th job alone, unless it was cancelled."""
        member = self._members[index]
        if member.live:
            member.mailbox.put(fraction, message)

    def report(self, fraction: float, message: str) -> None:
        """A ``progress.Report`` for the whole batch: to each live job; raises
        :class:`Stopped`, which ends the work, once none is left."""
        self.check()
        for index in range(len(self._members)):
            self.post(index, fraction, message)


Work = Callable[[K, Batch[J]], Awaitable[Sequence[R]]]
Window = Callable[[float], Awaitable[object]]


class _Lane(Generic[J, R]):
    """The jobs of one key: those waiting, and the batch that runs."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.waiting: list[_Member[J, R]] = []
        self.running: tuple[_Member[J, R], ...] = ()
        self.ended: asyncio.Future[None] | None = None  # the running batch's end
        self.warm = False  # a batch has run since the driver started: jobs queued behind it
        self.changed = asyncio.Event()  # a job arrived or left
        self.driver: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def gathering(self) -> bool:
        """Whether the next batch waits for more jobs (see the module's docstring)."""
        company = self.warm or len(self.waiting) > 1
        return company and 0 < len(self.waiting) < self.policy.max_batch

    def take(self) -> list[_Member[J, R]]:
        taken = self.waiting[: self.policy.max_batch]
        del self.waiting[: self.policy.max_batch]
        return [m for m in taken if m.live]


class Batcher(Generic[K, J, R]):
    """Runs the jobs submitted under one key together, as ``work(key, batch)``.

    ``clock`` (seconds) dates arrivals; ``window`` sleeps for the rest of a window. Tests
    inject both: the window is never awaited for a job that need not wait."""

    def __init__(
        self,
        work: Work[K, J, R],
        *,
        clock: Callable[[], float] = time.monotonic,
        window: Window = asyncio.sleep,
    ) -> None:
        self._work, self._clock, self._window = work, clock, window
        self._lanes: dict[K, _Lane[J, R]] = {}  # those that jobs of their key may join
        self._open: set[_Lane[J, R]] = set()  # every lane with a driver, for ``aclose``

    def waiting(self, key: K) -> int:
        """How many jobs of ``key`` wait for a batch (not those of the batch running)."""
        lane = self._lanes.get(key)
        return len(lane.waiting) if lane else 0

    async def submit(
        self, key: K, job: J, progress: ProgressCallback, policy: Policy | None = None
    ) -> R:
        """``job``'s result, from the batch it joins; ``progress`` hears its reports. A lane
        keeps the policy of the job that opened it."""
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        member = _Member(job, self._clock(), result)
        lane = self._join(key, member, policy or Policy())
        try:
            await forward(member.mailbox, member.result, progress)
            return member.result.result()
        except asyncio.CancelledError:
            await self._leave(lane, member)
            raise

    async def aclose(self) -> None:
        """Fails the jobs still waiting, stops the batches running at their next report, and
        waits for them to stop."""
        lanes = list(self._open)
        for lane in lanes:
            waiting, lane.waiting = lane.waiting, []
            for member in waiting:
                _settle(member, GenerationError("the engine closed before this job ran"))
            for member in lane.running:
                member.mailbox.cancelled.set()
        drivers = {lane.driver for lane in lanes if lane.driver is not None}
        if drivers:
            await asyncio.wait(drivers, timeout=STOP_WAIT_S)

    # -- lanes --------------------------------------------------------------------------

    def _join(self, key: K, member: _Member[J, R], policy: Policy) -> _Lane[J, R]:
        lane = self._lanes.get(key) if policy.max_batch > 1 else None
        if lane is None:
            lane = _Lane(policy)
            if policy.max_batch > 1:
                self._lanes[key] = lane
        if lane.busy():
            member.mailbox.put(0.0, "waiting for a batch")
        lane.waiting.append(member)
        lane.changed.set()
        if lane.driver is None:
            self._open.add(lane)
            lane.driver = asyncio.create_task(self._drive(key, lane))
        return lane

    async def _leave(self, lane: _Lane[J, R], member: _Member[J, R]) -> None:
        """A cancelled job: out of its lane, or out of its batch (see the module docstring)."""
        member.mailbox.cancelled.set()  # the bridge to the batch's thread
        if not member.result.cancel() and not member.result.cancelled():
            member.result.exception()  # settled as it was cancelled: retrieved, and moot
        if member in lane.waiting:
            lane.waiting.remove(member)
            lane.changed.set()
            return
        ended = lane.ended
        if member in lane.running and ended is not None and not any(m.live for m in lane.running):
            # the batch stops at its next step; the model is free once it has
            done, _ = await asyncio.wait({ended}, timeout=STOP_WAIT_S)
            if not done:
                log.warning("a cancelled batch is still running", extra={"after_s": STOP_WAIT_S})

    async def _drive(self, key: K, lane: _Lane[J, R]) -> None:
        try:
            await asyncio.sleep(0)  # the jobs submitted in this turn of the loop arrive together
            while lane.waiting:
                await self._gather(lane)
                if batch := lane.take():
                    await self._run(key, lane, batch)
                    lane.warm = True
        finally:
            self._open.discard(lane)
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _gather(self, lane: _Lane[J, R]) -> None:
        """Returns when the lane's next batch should leave: at once, unless it is gathering;
        then once it is full, empty, or its window has passed."""
        if not lane.gathering():
            return
        remaining = lane.waiting[0].arrived + lane.policy.window_s - self._clock()
        if remaining <= 0:
            return
        window = asyncio.ensure_future(self._window(remaining))
        try:
            while lane.gathering() and not window.done():
                lane.changed.clear()
                changed = asyncio.ensure_future(lane.changed.wait())
                await asyncio.wait({window, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
        finally:
            window.cancel()

    async def _run(self, key: K, lane: _Lane[J, R], members: list[_Member[J, R]]) -> None:
        lane.running = tuple(members)
        lane.ended = asyncio.get_running_loop().create_future()
        try:
            outcomes = await self._outcomes(key, Batch(members))
            for member, outcome in zip(members, outcomes, strict=True):
                _settle(member, outcome)
        finally:
            lane.running = ()
            lane.ended.set_result(None)

    async def _outcomes(self, key: K, batch: Batch[J]) -> list[R | Exception]:
        """One result or error per job: the batch's own error is each job's."""
        try:
            results: list[R | Exception] = list(await self._work(key, batch))
        except Exception as exc:
            return [exc] * len(batch)
        if len(results) != len(batch):
            error = RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
            return [error] * len(batch)
        return results


def _settle(member: _Member[J, R], outcome: R | Exception) -> None:
    if member.result.done():  # cancelled: its result is discarded
        return
    if isinstance(outcome, Exception):
        member.result.set_exception(outcome)
    else:
        member.result.set_result(outcome)
