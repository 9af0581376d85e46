"""Runs one job from claim to its end. Shared by the in-process queue and Celery workers.

The run holds the job's lease (``core.lease.Lease``) and watches three things while the
engine works: a cancel of the job (an event from any process, or the row's mark seen at a lease
renewal), the loss of its lease, and a shutdown (``drain``). Each stops the engine by
cancelling the task that runs it; the run then ends as the lifecycle says:

- cancelled: whatever the engine staged is deleted, and the job is canceled and refunded;
- lease lost: whatever it staged is deleted, and nothing is written (another run owns the job);
- shutdown: the job goes back to the queue at once (``JobLifecycle.recover``).

Outputs are written under a ``Storage.staging_key`` while the job runs (never served) and
published to their own keys only after the transaction that completed the job, so a cancelled
job never serves one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hyperlocal import tracing
from hyperlocal.core import stored_inputs
from hyperlocal.core.catalog import Catalog
from hyperlocal.core.events import EventBus
from hyperlocal.core.jobs import JobView
from hyperlocal.core.lease import ClaimOutcome, Lease, Outputs
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.core.pricing import settled
from hyperlocal.engines.base import (
    Category,
    GenerationRequest,
    GenerationResult,
    PositionCallback,
    ProgressCallback,
)
from hyperlocal.engines.providers.router import Router
from hyperlocal.errors import (
    GenerationError,
    GenerationTimeoutError,
    HyperlocalError,
    UnexpectedError,
)
from hyperlocal.queue.reporting import (
    position_reporter,
    progress_reporter,
    result_json,
    route_values,
)
from hyperlocal.storage.base import Storage
from hyperlocal.store import jobs as store
from hyperlocal.store.tables import Job

__all__ = ["JobRunner", "Outcome", "RunResult"]

log = logging.getLogger(__name__)

_FOLDERS = {
    Category.IMAGE: "images",
    Category.IMAGE_EDIT: "images",
    Category.VIDEO: "videos",
    Category.AUDIO: "audio",
    Category.THREE_D: "3d",
    Category.CHAT: "chat",
}
STOP_WAIT_S = 5.0  # at shutdown, how long stopped engines may take to stop
RENEW_RETRY_S = 1.0  # a renewal that failed (the database, say) is tried again this soon


class Outcome(StrEnum):
    FINISHED = "finished"  # this run ended the job (or lost it); see ``RunResult.view``
    DEFERRED = "deferred"  # the key is at its running-jobs cap; the job stays queued
    SKIPPED = "skipped"  # not queued any more (done, canceled, or claimed elsewhere)
    RELEASED = "released"  # stopped by a shutdown: the job is queued again, to be sent again


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: Outcome
    key_id: str | None = None
    view: JobView | None = None  # the terminal job, when this run ended it


class _Reason(StrEnum):
    CANCELED = "canceled"
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"


@dataclass(slots=True)
class _Run:
    """One run of one job: why it was stopped, if it was, and what it staged."""

    job: Job
    lease: Lease
    work: asyncio.Future[GenerationResult] | None = None
    reason: _Reason | None = None
    staged: list[tuple[str, str]] = field(default_factory=list)  # (staged key, final key)
    published: list[str] = field(default_factory=list)  # final keys, until the commit

    def stop(self, reason: _Reason) -> None:
        if self.reason is None:
            self.reason = reason
            if self.work is not None:
                self.work.cancel()


class JobRunner:
    def __init__(
        self,
        lifecycle: JobLifecycle,
        catalog: Catalog,
        router: Router,
        storage: Storage,
        *,
        private: Storage,
        worker: str,
        lease_s: float = 30.0,
        max_attempts: int = 3,
    ) -> None:
        """``router`` serves each model (through its provider routes, or its engine);
        ``storage`` takes the outputs; ``private`` holds the jobs' inputs."""
        self.lifecycle, self.catalog, self.router, self.storage = (
            lifecycle,
            catalog,
            router,
            storage,
        )
        self.private = private
        self.worker, self.lease_s, self.max_attempts = worker, lease_s, max_attempts
        self._runs: dict[str, _Run] = {}
        self._closing = False

    @property
    def events(self) -> EventBus | None:
        return self.lifecycle.events

    @property
    def running(self) -> int:
        """How many jobs this runner is running now."""
        return len(self._runs)

    async def run(self, job_id: str) -> RunResult:
        if self._closing:
            return RunResult(Outcome.SKIPPED)
        claim = await self.lifecycle.start(job_id, self.worker, self.lease_s)
        key_id = claim.job.key_id if claim.job else None
        if claim.outcome == ClaimOutcome.GONE:
            return RunResult(Outcome.SKIPPED)
        if claim.outcome == ClaimOutcome.AT_CAP or claim.job is None or claim.lease is None:
            return RunResult(Outcome.DEFERRED, key_id)
        return await self.run_claimed(claim.job, claim.lease)

    def claim_values(self, now: float) -> dict[str, object]:
        """The columns of a job that this runner claims as it is created (``WorkerSlot``)."""
        return self.lifecycle.claim_values(self.worker, now, self.lease_s)

    async def run_claimed(self, job: Job, lease: Lease | None = None) -> RunResult:
        """Run a job held under ``lease`` (by default, the one written on its row) to its end."""
        lease = lease or Lease(job.id, str(job.lease_owner))
        run = _Run(job, lease)
        self._runs[lease.token] = run
        forget = self._watch_cancel(run)
        renewing = self._renew_later(run)
        try:
            return await tracing.job_span(job, self._run(run))
        finally:
            forget()
            renewing.cancel()
            self._runs.pop(lease.token, None)

    async def _run(self, run: _Run) -> RunResult:
        await self.lifecycle.running(run.job.id)
        run.work = asyncio.ensure_future(self._work(run))
        try:
            result = await asyncio.shield(run.work)
        except asyncio.CancelledError:
            if run.reason is None:  # this task was cancelled, not the work: stop it too
                run.stop(_Reason.SHUTDOWN)
                await _settle(run.work)
                await self._discard(run)
                await self.lifecycle.recover(run.lease)
                raise
            await _settle(run.work)
            return await self._stopped(run)
        except Exception as exc:
            await self._discard(run)
            view = await self.lifecycle.fail(run.lease, run.job, _as_generation_error(exc))
            return RunResult(Outcome.FINISHED, run.job.key_id, view)
        return await self._complete(run, result)

    async def _complete(self, run: _Run, result: GenerationResult) -> RunResult:
        outputs = Outputs(
            keys=[key for _, key in run.staged],
            urls=[await self.storage.url(key) for _, key in run.staged],
        )
        job = run.job
        due = settled(self.catalog.get(job.model), job.params, job.credits, result.duration)
        try:
            view = await self.lifecycle.complete(
                run.lease,
                job,
                outputs,
                result_json(result),
                due=due,
                routes=route_values(result),
                then=lambda: tracing.storage_span("publish", self._publish(run)),
            )
        except Exception:  # not completed (the database, say): the lease sweep runs it again
            await self._discard(run)
            raise
        if view is None:  # a cancel was requested, or the lease was lost, at the last moment
            await self._discard(run)
            view = await self.lifecycle.stopped(run.lease, run.job)
        return RunResult(Outcome.FINISHED, run.job.key_id, view)

    async def _stopped(self, run: _Run) -> RunResult:
        await self._discard(run)
        if run.reason is _Reason.CANCELED:
            view = await self.lifecycle.stopped(run.lease, run.job)
            return RunResult(Outcome.FINISHED, run.job.key_id, view)
        if run.reason is _Reason.SHUTDOWN and await self.lifecycle.recover(run.lease):
            return RunResult(Outcome.RELEASED, run.job.key_id)
        log.warning("lease lost; the run stopped", extra={"job_id": run.job.id})
        return RunResult(Outcome.FINISHED, run.job.key_id)

    # -- what stops a run ----------------------------------------------------------------

    def _watch_cancel(self, run: _Run) -> Callable[[], None]:
        if self.events is None:
            return _nothing
        return self.events.on_cancel(run.job.id, lambda: run.stop(_Reason.CANCELED))

    def _renew_later(self, run: _Run) -> _Either:
        """Renew the lease every third of its length. The renewing task starts only when the
        first renewal is due: most jobs end long before."""
        loop = asyncio.get_running_loop()
        holder: list[asyncio.Task[None]] = []

        def start() -> None:
            if run.reason is None:
                holder.append(loop.create_task(self._renew(run)))

        timer = loop.call_later(self.lease_s / 3, start)
        return _Either(timer, holder)

    async def _renew(self, run: _Run) -> None:
        """Renew until the run ends. A failed renewal (a transient database error) is retried
        soon, never raised: the run goes on. A lost lease or a cancel mark stops the run."""
        while run.reason is None:
            try:
                held, cancel = await self._renew_once(run.lease)
            except Exception:
                log.warning("renewing a lease failed; retrying", extra={"job_id": run.job.id})
                await asyncio.sleep(min(RENEW_RETRY_S, self.lease_s / 10))
                continue
            if not held:
                run.stop(_Reason.LEASE_LOST)
            elif cancel:
                run.stop(_Reason.CANCELED)
            else:
                await asyncio.sleep(self.lease_s / 3)

    async def _renew_once(self, lease: Lease) -> tuple[bool, bool]:
        async with self.lifecycle.db.transaction() as session:
            until = time.time() + self.lease_s
            return await store.renew_lease(session, lease.job_id, lease.token, until)

    async def drain(self, grace: float) -> None:
        """Stop taking jobs; give running ones ``grace`` seconds to finish, then stop them and
        give their jobs back to the queue at once (their leases released, not left to
        expire)."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + grace
        while self._runs and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for run in list(self._runs.values()):
            run.stop(_Reason.SHUTDOWN)
        deadline += max(grace, STOP_WAIT_S)
        while self._runs and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._runs:  # an engine that ignores being stopped: its lease will expire
            ids = sorted(run.job.id for run in self._runs.values())
            log.error("jobs still running at shutdown", extra={"job_ids": ids})

    async def expire_leases(self) -> list[str]:
        """The lease sweep (see ``JobLifecycle.expire``): the ids of the jobs requeued."""
        return await self.lifecycle.expire(self.max_attempts)

    # -- the work ------------------------------------------------------------------------

    async def _work(self, run: _Run) -> GenerationResult:
        """The engine's run, then its outputs staged: the task that a stop cancels."""
        job = run.job
        db, lease = self.lifecycle.db, run.lease
        progress = progress_reporter(db, self.events, lease)
        result = await self._execute(job, progress, position_reporter(db, lease))
        if not result.artifacts:
            raise GenerationError("The engine produced no output")
        await tracing.storage_span("stage", self._stage(run, result))
        return result

    async def _execute(
        self, job: Job, progress: ProgressCallback, position: PositionCallback
    ) -> GenerationResult:
        entry = self.catalog.get(job.model)
        request = GenerationRequest(
            job_id=job.id,
            model=job.model,
            category=Category(job.category),
            params=job.params,
            media=await stored_inputs.load(self.private, self.storage, job.inputs),
            options=entry.engine_options,
            caps=entry.caps,
        )
        work = self.router.generate(entry, request, progress, position)
        try:
            return await asyncio.wait_for(tracing.engine_span(entry.engine, work), job.timeout_s)
        except TimeoutError as exc:
            raise GenerationTimeoutError(f"Generation timed out after {job.timeout_s:g} s") from exc

    async def _stage(self, run: _Run, result: GenerationResult) -> None:
        """Each output written under a staging key of this run's own, never served."""
        job = run.job
        folder = _FOLDERS[Category(job.category)]
        stem = job.result_id or job.id
        stage = f"{job.id}-{secrets.token_hex(4)}"
        for i, artifact in enumerate(result.artifacts):
            suffix = f"-{i}" if i else ""
            key = f"{folder}/{stem}{suffix}.{artifact.extension}"
            staged = self.storage.staging_key(key, stage)
            run.staged.append((staged, key))
            await self.storage.put(staged, artifact.data, artifact.content_type)

    async def _publish(self, run: _Run) -> None:
        for staged, key in run.staged:
            await self.storage.publish(staged, key)
            run.published.append(key)  # deleted again if the completion does not commit

    async def _discard(self, run: _Run) -> None:
        staged, run.staged = run.staged, []
        published, run.published = run.published, []
        for key in [s for s, _ in staged] + published:
            try:
                await self.storage.delete(key)
            except Exception:
                log.exception("deleting a staged output failed", extra={"job_id": run.job.id})


class _Either:
    """Cancels the renewal, whether it is still a timer or has become a task."""

    def __init__(self, timer: asyncio.TimerHandle, tasks: list[asyncio.Task[None]]) -> None:
        self._timer, self._tasks = timer, tasks

    def cancel(self) -> None:
        self._timer.cancel()
        for task in self._tasks:
            task.cancel()


def _nothing() -> None:
    return None


async def _settle(work: asyncio.Future[Any]) -> None:
    """Wait for cancelled work to have stopped, whatever it raised (its error is ours no
    more: the run is ending for another reason)."""
    await asyncio.wait({work})
    if not work.cancelled():
        work.exception()  # retrieved, so the loop does not log it as never retrieved


def _as_generation_error(exc: BaseException) -> GenerationError:
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, HyperlocalError):
        return GenerationError(exc.message)
    log.exception("unexpected engine error", exc_info=exc)
    return UnexpectedError()
