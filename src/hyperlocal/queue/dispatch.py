"""Scale-out dispatch: jobs go to Celery workers through Redis, one queue per model.

API servers hold no job state in memory. The database row is the job; Redis carries only job
ids, plus a short-lived *dispatch mark* per job (``SET NX``) that makes a second ``enqueue`` of
the same id a no-op, and lets a worker's sweep find queued jobs that no message carries (an
API server that died between its commit and its send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from hyperlocal.core.events import EventBus, JobEvent
from hyperlocal.core.workers import WorkerReport
from hyperlocal.queue.celery_app import TASK_NAME, make_celery, message_priority, queue_name
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database

__all__ = ["MARK_TTL_S", "CeleryQueue"]

log = logging.getLogger(__name__)

# A job still queued this long after its last send is sent again by the sweep: a lost message
# (Redis restarted without persistence) costs at most this delay, and a job that merely waits
# in a long queue gets one harmless duplicate message per period.
MARK_TTL_S = 3600
_POLL_S = 1.0  # how often ``wait`` re-reads the database in case an event was missed


class CeleryQueue:
    """The ``JobQueue`` of API servers (and of workers re-dispatching) in scale-out mode."""

    def __init__(self, db: Database, events: EventBus, *, redis_url: str, namespace: str) -> None:
        self._db, self._events, self.namespace = db, events, namespace
        self.celery: Any = make_celery(redis_url, namespace)
        self._redis: Redis = Redis.from_url(redis_url)
        self._reporter: Callable[[], Awaitable[WorkerReport]] | None = None

    async def start(self) -> None:
        """Nothing to resume on an API server: workers sweep for lost and orphaned jobs."""

    async def enqueue(self, job_id: str, model: str | None = None, priority: int = 0) -> None:
        """Send the job to its model's queue, once: while its mark lives, this is a no-op.
        ``priority`` counts only with ``model``; without, both are read from the job."""
        await self._dispatch(job_id, only_new=True, route=(model, priority) if model else None)

    async def redispatch(
        self, job_id: str, *, deferrals: int = 0, countdown: float | None = None
    ) -> None:
        """Send the job again, whatever was sent before: a recovered lease, a deferred job."""
        await self._dispatch(job_id, only_new=False, deferrals=deferrals, countdown=countdown)

    async def release(self, job_id: str) -> None:
        """Drop the job's mark, so that the next sweep sends it again if it is still queued."""
        with contextlib.suppress(Exception):
            await self._redis.delete(self._mark_key(job_id))

    async def _dispatch(
        self,
        job_id: str,
        *,
        only_new: bool,
        deferrals: int = 0,
        countdown: float | None = None,
        route: tuple[str, int] | None = None,
    ) -> None:
        # Never raises: the job is committed already, and the sweep is the fallback.
        try:
            if await self._mark(job_id, only_new=only_new):
                await self._send(job_id, deferrals, countdown, route)
        except Exception:
            log.exception("dispatch failed; the sweep will retry", extra={"job_id": job_id})
            await self.release(job_id)

    async def dispatch_orphans(self) -> list[str]:
        """Send every queued job that carries no dispatch mark; return their ids."""
        async with self._db.read() as session:
            ids = list(await store.queued_ids(session))
        if not ids:
            return []
        marks = await self._redis.mget([self._mark_key(job_id) for job_id in ids])
        orphans = [job_id for job_id, mark in zip(ids, marks, strict=True) if mark is None]
        for job_id in orphans:
            await self.enqueue(job_id)
        return orphans

    # -- workers that die holding messages ---------------------------------------------------
    # A worker holds the messages it has received (and those it deferred with a countdown)
    # unacknowledged until their jobs run; killed, it leaves them to Redis's visibility timeout
    # (an hour) while their dispatch marks keep the sweep from sending them again. So each
    # worker registers the models it serves and keeps a heartbeat key alive; the sweep of any
    # live worker that finds a registered worker without its heartbeat sends every queued job
    # of that worker's models again, once (the claim makes the duplicates no-ops).

    async def register_worker(self, worker: str, models: Sequence[str], ttl: float) -> None:
        await self._redis.hset(self._workers_key, worker, json.dumps(list(models)))
        await self.heartbeat(worker, ttl)

    async def heartbeat(self, worker: str, ttl: float) -> None:
        await self._redis.set(self._alive_key(worker), 1, px=max(1, int(ttl * 1000)))
        if self._reporter is not None:
            await self._publish_report(worker, self._reporter, ttl)

    async def unregister_worker(self, worker: str) -> None:
        await self._redis.hdel(self._workers_key, worker)
        await self._redis.delete(self._alive_key(worker), self._report_key(worker))

    # -- worker reports (core.workers): what GET /admin/workers shows -----------------------
    # Each heartbeat of a worker that has a reporter also writes its report, under a key that
    # expires with the heartbeat: a dead worker's report is gone when its heartbeat is.

    def report_with(self, reporter: Callable[[], Awaitable[WorkerReport]]) -> None:
        """From now on, each ``heartbeat`` also publishes ``reporter()``'s report."""
        self._reporter = reporter

    async def worker_reports(self) -> list[WorkerReport]:
        """The latest report of every registered worker whose report has not expired."""
        names = [_text(w) for w in await self._redis.hkeys(self._workers_key)]
        if not names:
            return []
        found = await self._redis.mget([self._report_key(name) for name in names])
        return [report for raw in found if raw is not None and (report := _report(raw))]

    async def _publish_report(
        self, worker: str, reporter: Callable[[], Awaitable[WorkerReport]], ttl: float
    ) -> None:
        try:  # the heartbeat (and the sweep after it) must not fail for want of a report
            body = json.dumps((await reporter()).as_dict())
            await self._redis.set(self._report_key(worker), body, px=max(1, int(ttl * 1000)))
        except Exception:
            log.exception("publishing the worker report failed", extra={"worker": worker})

    def _report_key(self, worker: str) -> str:
        return f"{self.namespace}:report:{worker}"

    async def redispatch_for_dead_workers(self) -> list[str]:
        """Send again the queued jobs of every registered worker whose heartbeat has stopped."""
        sent: list[str] = []
        for worker, models in (await self._redis.hgetall(self._workers_key)).items():
            name = worker.decode() if isinstance(worker, bytes) else str(worker)
            if await self._redis.exists(self._alive_key(name)):
                continue
            if not await self._redis.hdel(self._workers_key, name):
                continue  # another worker's sweep took it first
            log.warning(
                "worker gone; sending its models' queued jobs again", extra={"worker": name}
            )
            async with self._db.read() as session:
                ids = await store.queued_ids(session, models=json.loads(models))
            for job_id in ids:
                await self.redispatch(job_id)
            sent += ids
        return sent

    @property
    def _workers_key(self) -> str:
        return f"{self.namespace}:workers"

    def _alive_key(self, worker: str) -> str:
        return f"{self.namespace}:alive:{worker}"

    async def reserve_slot(self, wait: float) -> None:  # noqa: ARG002 - the protocol's
        """Never: in scale-out every job runs on a worker, where its model is loaded."""
        return None

    async def wait(self, job_id: str, timeout: float) -> None:
        """Return once the job is terminal in the database: woken early by its terminal event
        (published after the worker's commit), re-checked every second in case one is missed.
        Always None: the job ran in another process, so the caller reads it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._events.subscribe(job_id) as events:
            watcher = asyncio.ensure_future(_first_terminal(events))
            try:
                while not await self._is_terminal(job_id):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return
                    await _nap(watcher, min(_POLL_S, remaining))
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher

    async def aclose(self) -> None:
        await self._redis.aclose()
        await asyncio.to_thread(self.celery.close)

    async def _send(
        self,
        job_id: str,
        deferrals: int = 0,
        countdown: float | None = None,
        route: tuple[str, int] | None = None,
    ) -> None:
        route = route or await self._route_of(job_id)
        if route is None:
            return
        model, priority = route
        await asyncio.to_thread(
            self.celery.send_task,
            TASK_NAME,
            args=(job_id, deferrals),
            queue=queue_name(self.namespace, model),
            countdown=countdown,
            priority=message_priority(priority),
        )

    async def _route_of(self, job_id: str) -> tuple[str, int] | None:
        """The job's model (its queue) and priority."""
        async with self._db.read() as session:
            job = await store.get(session, job_id)
        return (job.model, job.priority) if job is not None else None

    async def _is_terminal(self, job_id: str) -> bool:
        async with self._db.read() as session:
            job = await store.get(session, job_id)
        return job is None or job.status not in store.ACTIVE

    def _mark_key(self, job_id: str) -> str:
        return f"{self.namespace}:dispatched:{job_id}"

    async def _mark(self, job_id: str, *, only_new: bool) -> bool:
        return bool(await self._redis.set(self._mark_key(job_id), 1, ex=MARK_TTL_S, nx=only_new))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _report(raw: bytes | str) -> WorkerReport | None:
    try:
        return WorkerReport.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError):  # another version's shape
        log.warning("a worker report could not be read; skipped")
        return None


async def _first_terminal(events: AsyncIterator[JobEvent]) -> None:
    async for event in events:
        if event.terminal:
            return


async def _nap(watcher: asyncio.Future[None], seconds: float) -> None:
    """Sleep ``seconds``, or less if the watcher sees the terminal event first."""
    if watcher.done():  # seen already, or the event stream failed: the database decides
        await asyncio.sleep(seconds)
    else:
        await asyncio.wait({watcher}, timeout=seconds)
