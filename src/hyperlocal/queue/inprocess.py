"""The embedded queue: asyncio workers inside the API process, with the database as the
source of truth. Nothing lives only in memory: on start it resumes every queued job and,
through the lease sweep, every job that a killed process left running.

Waiting jobs start in the database's order (``store.jobs.queued``): a higher key priority
first, then the order they came in."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict, deque

from hyperlocal.core.jobs import JobView
from hyperlocal.core.work import WorkerSlot
from hyperlocal.queue.runner import JobRunner, Outcome, RunResult
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

__all__ = ["InProcessQueue"]

log = logging.getLogger(__name__)

# A queue entry: (-priority, arrival number, job id); no id wakes a worker to leave, first.
_Entry = tuple[int, int, str | None]
_LEAVE = -(2**31)


class InProcessQueue:
    def __init__(
        self,
        db: Database,
        runner: JobRunner,
        *,
        concurrency: int,
        sweep_interval: float = 5.0,
        grace: float = 10.0,
    ) -> None:
        self._db, self._runner, self._grace = db, runner, grace
        self._concurrency, self._sweep_interval = concurrency, sweep_interval
        self._queue: asyncio.PriorityQueue[_Entry] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._pending: set[str] = set()
        self._deferred: defaultdict[str, deque[tuple[str, int]]] = defaultdict(deque)
        self._waiters: dict[str, _Waiter] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # One permit per job running here, whether a worker or a request runs it. Waiters
        # (workers holding a queued job, requests wanting to run theirs) are served in order.
        self._slots = asyncio.Semaphore(concurrency)
        self._in_requests: set[asyncio.Task[JobView | None]] = set()
        self._closing = False

    async def start(self) -> None:
        await self._runner.expire_leases()
        await self._enqueue_all_queued()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        self._tasks.append(asyncio.create_task(self._sweep()))

    async def enqueue(
        self,
        job_id: str,
        model: str | None = None,  # noqa: ARG002
        priority: int = 0,
    ) -> None:
        if job_id not in self._pending:
            self._pending.add(job_id)
            self._queue.put_nowait((-priority, next(self._arrivals), job_id))

    async def wait(self, job_id: str, timeout: float) -> JobView | None:
        waiter = self._waiters.setdefault(job_id, _Waiter())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not waiter.done.is_set() and loop.time() < deadline:
                # Re-check the database now and then: another process may have finished it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.done.wait(), min(1.0, deadline - loop.time()))
                if not waiter.done.is_set() and await self._is_terminal(job_id):
                    break
        finally:
            self._waiters.pop(job_id, None)
        return waiter.view

    async def reserve_slot(self, wait: float) -> WorkerSlot | None:
        if self._closing:
            return None
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError:
            return None
        return _Slot(self)

    async def _run_in_request(self, job: Job) -> JobView | None:
        try:
            result = await self._runner.run_claimed(job)
            await self._after_run(job.id, result, job.priority)
            return result.view
        finally:
            self._slots.release()

    async def _is_terminal(self, job_id: str) -> bool:
        async with self._db.read() as session:
            job = await store.get(session, job_id)
        return job is None or job.status not in store.ACTIVE

    async def _work(self) -> None:
        while True:
            rank, _, job_id = await self._queue.get()
            if job_id is None or self._closing:
                return  # a job taken now stays queued in the database for the next start
            self._pending.discard(job_id)
            try:
                async with self._slots:
                    await self._run_one(job_id, -rank)
            except Exception:
                log.exception("worker error", extra={"job_id": job_id})
            finally:
                self._queue.task_done()

    async def _run_one(self, job_id: str, priority: int) -> None:
        await self._after_run(job_id, await self._runner.run(job_id), priority)

    async def _after_run(self, job_id: str, result: RunResult, priority: int) -> None:
        """A deferred job waits for its key's next finished job; a finished one wakes its
        waiter and that key's first deferred job. A released job stays queued in the
        database for the next start."""
        key_id = result.key_id
        if result.outcome is Outcome.DEFERRED and key_id:
            if (job_id, priority) not in self._deferred[key_id]:
                self._deferred[key_id].append((job_id, priority))
        elif result.outcome is Outcome.FINISHED:
            self._signal(job_id, result.view)
            if key_id and self._deferred[key_id]:
                deferred, its_priority = self._deferred[key_id].popleft()
                await self.enqueue(deferred, priority=its_priority)

    def _signal(self, job_id: str, view: JobView | None) -> None:
        waiter = self._waiters.get(job_id)
        if waiter is not None:
            waiter.view = view
            waiter.done.set()

    async def _enqueue_all_queued(self) -> None:
        async with self._db.read() as session:
            queued = await store.queued(session)
        for job_id, priority in queued:
            await self.enqueue(job_id, priority=priority)

    async def _sweep(self) -> None:
        """Recover expired leases (and fail jobs past their start deadline), then pick up
        queued jobs that nobody holds in memory: the requeued ones among them."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self._runner.expire_leases()
                await self._enqueue_all_queued()
            except Exception:
                log.exception("lease sweep failed")

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking jobs; give running ones ``grace`` seconds, then stop them and queue
        their jobs again at once (the next start resumes them)."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for _ in tasks:
            self._queue.put_nowait((_LEAVE, next(self._arrivals), None))  # idle workers exit
        sweeper, workers = tasks[-1:], tasks[:-1]
        for task in sweeper:
            task.cancel()
        await self._runner.drain(self._grace if grace is None else grace)
        await asyncio.gather(*workers, *sweeper, *self._in_requests, return_exceptions=True)


class _Waiter:
    """A request waiting for a job; ``view`` is the terminal job, if this process ran it."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.view: JobView | None = None


class _Slot:
    """One worker's room, held by a synchronous request that runs its job in its own task."""

    def __init__(self, queue: InProcessQueue) -> None:
        self._queue: InProcessQueue | None = queue

    def claim_values(self, now: float) -> dict[str, object]:
        assert self._queue is not None
        return self._queue._runner.claim_values(now)

    async def run(self, job: Job, timeout: float) -> JobView | None:
        queue, self._queue = self._queue, None
        assert queue is not None, "a slot runs one job"
        # A task of its own, shielded from the request: a client that hangs up does not
        # stop a job it has paid for, and shutdown waits for it like any worker's job.
        task = asyncio.create_task(queue._run_in_request(job))
        queue._in_requests.add(task)
        task.add_done_callback(queue._in_requests.discard)
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return task.result() if done else None

    def release(self) -> None:
        if self._queue is not None:
            self._queue._slots.release()
            self._queue = None
