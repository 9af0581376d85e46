"""A job's life, written in one place.

Every change of a job's status goes through one ``JobLifecycle`` method. Each writes, in one
transaction, the new state, the refund (at most one per job), and the webhook outbox row, and
publishes the job's event after the commit. The runner, the chat stream and its recorder, the
cancel route and the lease sweep all call these; nothing else writes a job's status.

::

    queued ──start──▶ running ──complete──▶ completed
      │                 │ ├──────fail─────▶ failed     (refunded)
      │                 │ ├──cancel, once──▶ canceled   (refunded; a chat keeps its charge)
      │                 │ │  the work stopped
      │                 │ └─expire────────▶ failed     (refunded: a chat, or too many tries)
      │                 └───recover───────▶ queued     (lease expired, or released at shutdown)
      ├──────cancel────────────────────────▶ canceled   (refunded)
      └──────miss its start deadline───────▶ failed     (refunded; E1005, never started)

``MOVES`` is that diagram as a table; ``_move`` refuses anything else.

A running job belongs to one *lease*: a token written at its claim (``core.lease``). Every
write of the run is guarded by it, so a run that lost its lease (expired, and the job requeued
and claimed again, even in the same process) writes nothing. Cancelling a running job only
marks it (``cancel_requested_at``) and tells its runner; the runner stops the engine and calls
``stopped``, which refunds. A marked job can never complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.core import endings, ledger, retention, webhooks
from hyperlocal.core.events import CANCEL, EventBus, JobEvent
from hyperlocal.core.jobs import JobView, get_job, view
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.lease import Claim, ClaimOutcome, Lease, Outputs, new_lease_token
from hyperlocal.core.metrics import Metrics
from hyperlocal.core.status import MOVES, JobStatus, MoveError
from hyperlocal.core.status import check_move as _check
from hyperlocal.core.work import OutboxSender
from hyperlocal.engines.base import Category
from hyperlocal.errors import (
    ErrorCode,
    GenerationError,
    HyperlocalError,
    JobConflictError,
    JobNotFoundError,
)
from hyperlocal.store import jobs as store
from hyperlocal.store import keys as key_store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job, WebhookDelivery

__all__ = ["CANCEL_WAIT_S", "MOVES", "ChatEnd", "JobLifecycle", "MoveError"]

log = logging.getLogger(__name__)

CANCEL_WAIT_S = 5.0  # a cancel waits this long for a running job's work to stop

Q, R = JobStatus.QUEUED, JobStatus.RUNNING
C, F, X = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED

ChatEnd = tuple[str, JobStatus, dict[str, Any]]  # a chat's id, its end state, its columns


class _Undo(Exception):
    """Rolls a claim back."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class _AtCap(_Undo):
    """The job's key is at its running cap: the job stays queued."""


class _Late(_Undo):
    """The job's first start comes after its start deadline: it fails instead."""


class JobLifecycle:
    """The one owner of job transitions (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        events: EventBus | None = None,
        outbox: OutboxSender | None = None,
        *,
        input_retention_s: float = 86_400.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.db, self.events, self.outbox = db, events, outbox
        self.input_retention_s = input_retention_s  # see ``_ended``
        self.metrics = metrics or Metrics()  # told of each start, end and refund

    # -- start ---------------------------------------------------------------------------

    async def start(self, job_id: str, worker: str, lease_s: float) -> Claim:
        """Claim a queued job under a new lease, unless its key is at its running cap."""
        token, now = new_lease_token(worker), time.time()
        try:
            async with self.db.transaction() as session:
                job = await store.claim(session, job_id, token, now, lease_s)
                if job is None:
                    return Claim(ClaimOutcome.GONE)
                if endings.missed_start(job, now):
                    raise _Late(job)  # rolls the claim back
                cap = await key_store.running_cap(session, job.key_id)
                if await store.count_running_for_key(session, job.key_id) > cap:
                    raise _AtCap(job)  # rolls the claim back
        except _AtCap as at_cap:
            return Claim(ClaimOutcome.AT_CAP, at_cap.job)
        except _Late:
            await self.miss_deadline(job_id)
            return Claim(ClaimOutcome.GONE)
        if job.attempts == 1 and job.started_at is not None:
            self.metrics.started(job.model, job.started_at - job.created_at)
        return Claim(ClaimOutcome.CLAIMED, job, Lease(job_id, token))

    async def running(self, job_id: str) -> None:
        """Tell watchers that a claimed job's work begins (claimed by ``start``, or created
        claimed with ``claim_values``)."""
        await self._publish(job_id, R, 0.0)

    def claim_values(self, worker: str, now: float, lease_s: float) -> dict[str, object]:
        """The columns of a job created already claimed (a request that runs its own job)."""
        return {
            "status": R.value,
            "lease_owner": new_lease_token(worker),
            "lease_expires_at": now + lease_s,
            "attempts": 1,
            "started_at": now,
        }

    # -- the end of a run ----------------------------------------------------------------

    async def complete(
        self,
        lease: Lease,
        job: Job,
        outputs: Outputs,
        result: Mapping[str, Any],
        *,
        due: int | None = None,
        routes: Mapping[str, Any] | None = None,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> JobView | None:
        """The run succeeded: completed, unless its lease was lost or a cancel was requested
        (then nothing is written, and None is returned: the caller discards the outputs).
        ``due`` is what the run turned out to cost (``pricing.settled``): less than the charge
        refunds the difference, in the completing transaction.
        ``then`` runs once the row is taken and before the commit: it publishes the outputs,
        so a reader never sees the job completed before its files (a failed ``then`` rolls the
        completion back). ``routes``: the run's provider-route columns (``route_values``)."""
        refund = 0 if due is None else max(0, job.credits - due)
        values: dict[str, Any] = {
            "status": C.value,
            "output_url": outputs.urls[0],
            "output_urls": list(outputs.urls),
            "output_keys": list(outputs.keys),
            "result": dict(result),
            "progress": 1.0,
            "finished_at": time.time(),
            "credits": job.credits - refund,
            **(routes or {}),
        }
        values = self._ended(job, values)
        handed = None
        async with self.db.transaction() as session:
            moved = await store.move(
                session, job.id, _check([R], C), values, owner=lease.token, uncancelled=True
            )
            if moved:
                if refund:
                    await self._refund_part(session, job, refund)
                handed = await self._outbox(session, job, values, hand=True)
                if then is not None:  # published before the commit shows the job completed;
                    await then()  # the row is ours now: no cancel can come between
        if not moved:
            return None
        await self._after(job, C, handed)
        return endings.as_written(job, values)

    async def fail(self, lease: Lease, job: Job, error: GenerationError) -> JobView | None:
        """The run failed: failed and refunded (canceled, if a cancel was requested); None if
        the lease was lost."""
        log.warning("job failed", extra={"job_id": job.id, "model": job.model, "code": error.code})
        async with self.db.transaction() as session:
            values = self._ended(job, endings.failure(F, error.message, error.code))
            if error.attempts:
                values["route_attempts"] = list(error.attempts)
            moved = await store.move(
                session, job.id, _check([R], F), values, owner=lease.token, uncancelled=True
            )
            if moved:
                await self._refund_and_outbox(session, job, values, str(error.code))
        if moved:
            await self._after(job, F)
            return endings.as_written(job, values)
        return await self.stopped(lease, job)

    async def stopped(self, lease: Lease, job: Job) -> JobView | None:
        """The work of a job whose cancel was requested has stopped: canceled and refunded.
        None if the lease was lost meanwhile."""
        values = self._ended(job, endings.failure(X, "canceled", ErrorCode.CANCELED))
        async with self.db.transaction() as session:
            moved = await store.move(session, job.id, _check([R], X), values, owner=lease.token)
            if moved:
                await self._refund_and_outbox(session, job, values, ErrorCode.CANCELED)
        if not moved:
            return None
        await self._after(job, X)
        return endings.as_written(job, values)

    async def recover(self, lease: Lease) -> bool:
        """Give a running job back to the queue now (a graceful stop), its attempt not
        counted, instead of leaving it to wait for its lease to expire."""
        async with self.db.transaction() as session:
            _check([R], Q)
            moved = await store.release(session, lease.job_id, lease.token)
        if moved:
            await self._publish(lease.job_id, Q, 0.0)
        return moved

    # -- chats ---------------------------------------------------------------------------

    async def end_chats(self, session: AsyncSession, ends: Sequence[ChatEnd]) -> None:
        """Record how chats ended, in the caller's transaction (``ChatRecorder`` gathers them):
        completed, or canceled, each keeping its charge. A chat no longer running (lost to the
        lease sweep) is left as it is."""
        for job_id, status, values in ends:
            await store.move(
                session, job_id, _check([R], status), {"status": status.value, **values}
            )

    async def published(self, ends: Sequence[ChatEnd]) -> None:
        """After ``end_chats`` committed: tell each chat's watchers."""
        for job_id, status, _ in ends:
            await self._publish(job_id, status, 1.0)

    async def fail_chat(self, job_id: str, key_id: str, error: HyperlocalError) -> None:
        """A chat's backend failed before its first token: failed and refunded."""
        code = str(getattr(error, "code", ErrorCode.UNEXPECTED))
        log.warning("chat failed", extra={"job_id": job_id, "code": code})
        async with self.db.transaction() as session:
            values = endings.failure(F, error.message, code)
            if await store.move(session, job_id, _check([R], F), values):
                await ledger.refund(session, key_id, job_id, code)
        await self._publish(job_id, F, 0.0)

    # -- cancel --------------------------------------------------------------------------

    async def cancel(self, key: KeyInfo, job_id: str, wait: float = CANCEL_WAIT_S) -> JobView:
        """Cancel the job: a queued one is canceled and refunded now; a running one is marked,
        and its runner told to stop (it refunds once the work has stopped), and this waits up
        to ``wait`` seconds for that. The job as it stands then. A terminal job is a conflict
        (409), and nothing is refunded twice."""
        if self.events is None:
            return await self._cancel(key, job_id)
        async with self.events.subscribe(job_id) as stream:
            job = await self._cancel(key, job_id)
            if job.status.terminal:
                return job
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    async for event in stream:
                        if event.terminal:
                            break
        return await get_job(self.db, key, job_id)

    async def _cancel(self, key: KeyInfo, job_id: str) -> JobView:
        async with self.db.transaction() as session:
            row = await store.get(session, job_id)
            if row is None or row.key_id != key.id:
                raise JobNotFoundError
            canceled = JobStatus(row.status) is Q and await self._cancel_queued(session, row)
            if not canceled:  # running, or claimed since it was read: its runner stops it
                await store.request_cancel(session, job_id, time.time())
            fresh = await store.get(session, job_id)
            assert fresh is not None
            if not canceled and JobStatus(fresh.status).terminal:
                raise JobConflictError(fresh.status)  # it had ended, or ended meanwhile
        if canceled:
            await self._after(fresh, X)
        else:
            await self._tell_runner(job_id)
        return view(fresh)

    async def _cancel_queued(self, session: AsyncSession, row: Job) -> bool:
        values = self._ended(row, endings.failure(X, "canceled", ErrorCode.CANCELED))
        if not await store.move(session, row.id, _check([Q], X), values):
            return False
        await self._refund_and_outbox(session, row, values, ErrorCode.CANCELED)
        return True

    async def _tell_runner(self, job_id: str) -> None:
        if self.events is not None:
            try:
                await self.events.publish(JobEvent(job_id, CANCEL, R.value, 0.0))
            except Exception:  # the runner reads the request at its next lease renewal
                log.warning("publishing a cancel failed", extra={"job_id": job_id})

    # -- start deadlines -----------------------------------------------------------------

    async def miss_deadline(self, job_id: str) -> bool:
        """A queued job that never started, whose start deadline (``X-Start-Deadline``) has
        passed: failed (E1005) and refunded, never run. Whether this call ended it."""
        async with self.db.transaction() as session:
            job = await store.get(session, job_id)
            if job is None:
                return False
            values = self._ended(
                job, endings.failure(F, endings.late_message(job), ErrorCode.START_DEADLINE)
            )
            moved = await store.move(session, job_id, _check([Q], F), values, unstarted=True)
            if moved:
                await self._refund_and_outbox(session, job, values, ErrorCode.START_DEADLINE)
        if moved:
            await self._after(job, F)
        return moved

    async def _expire_deadlines(self) -> None:
        """Fail every queued job past its start deadline, one transaction each: whether or not
        a worker ever claims it."""
        async with self.db.read() as session:
            late = await store.missed_start_deadlines(session, time.time())
        for job_id in late:
            await self.miss_deadline(job_id)

    # -- the lease sweep -----------------------------------------------------------------

    async def expire(self, max_attempts: int) -> list[str]:
        """Deal with running jobs whose lease expired (their worker stopped renewing): a
        cancelled one is canceled; a media job with tries left goes back to the queue; a chat
        (a stream to a client that is gone) or a job out of tries fails. Each refunded. Then
        fail the queued jobs past their start deadline (``miss_deadline``). The ids of the jobs
        requeued, for the queue to send again."""
        now = time.time()
        requeued: list[str] = []
        ended: list[tuple[Job, JobStatus]] = []
        async with self.db.transaction() as session:
            for job in await store.expired_leases(session, now):
                target = endings.expiry_target(job, max_attempts)
                if target is Q:
                    if await store.requeue_expired(session, job.id, now):
                        requeued.append(job.id)
                elif await self._end_expired(session, job, target, now):
                    ended.append((job, target))
        for job, target in ended:
            await self._after(job, target)
        await self._expire_deadlines()
        return requeued

    async def _end_expired(
        self, session: AsyncSession, job: Job, target: JobStatus, now: float
    ) -> bool:
        if target is X:
            values = endings.failure(X, "canceled", ErrorCode.CANCELED)
        else:
            values = endings.failure(F, "The worker running this job stopped", ErrorCode.UNEXPECTED)
        values = self._ended(job, values | {"finished_at": now})
        if not await store.move(session, job.id, _check([R], target), values):
            return False
        keep_charge = target is X and job.category == Category.CHAT.value
        if keep_charge:
            await self._outbox(session, job, values)
        else:
            note = "canceled" if target is X else "worker lost"
            await self._refund_and_outbox(session, job, values, note)
        return True

    # -- shared steps --------------------------------------------------------------------

    def _ended(self, job: Job, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (a move to a terminal state) with the job's retention columns: when its
        outputs expire and its inputs are deleted (``core.retention``)."""
        completed = values["status"] == C.value
        ending = retention.ending_values(
            job, values["finished_at"], completed=completed, input_s=self.input_retention_s
        )
        return values | ending | {"provider_queue_position": None}

    async def _refund_part(self, session: AsyncSession, job: Job, credits: int) -> None:
        """Give back ``credits`` of a completed job's charge: it cost less than was charged."""
        back = await ledger.refund(session, job.key_id, job.id, "settled", amount=credits)
        if back is not None:
            self.metrics.refunded(job.model, credits)

    async def _refund_and_outbox(
        self, session: AsyncSession, job: Job, values: Mapping[str, Any], note: str
    ) -> None:
        if await ledger.refund(session, job.key_id, job.id, note) is not None:
            self.metrics.refunded(job.model, job.credits)  # the whole charge: see core.metrics
        await self._outbox(session, job, values)

    async def _outbox(
        self, session: AsyncSession, job: Job, values: Mapping[str, Any], *, hand: bool = False
    ) -> WebhookDelivery | None:
        """The outbox row of ``job``'s terminal move, which wrote ``values``: its payload is
        made from them, with no read of the row back. With ``hand``, where this process's
        sender runs, the row is written held for it and returned, for ``_after`` to hand over
        once the transaction commits: the webhook goes out without a claim's transaction."""
        if not job.webhook_url:
            return None
        now = time.time()
        hold = self.outbox.holds_for() if hand and self.outbox is not None else None
        delivery = await webhooks.record_terminal(
            session, job, now, ended=values, held_until=None if hold is None else now + hold
        )
        return delivery if hold is not None else None

    async def _after(
        self, job: Job, status: JobStatus, handed: WebhookDelivery | None = None
    ) -> None:
        """After a terminal commit: count it, tell watchers, and hand the webhook dispatcher
        the row written for it (``_outbox``), or wake it to claim the row."""
        ran = None if job.started_at is None else time.time() - job.started_at
        self.metrics.finished(job.model, status.value, ran)
        await self._publish(job.id, status, 1.0 if status is C else 0.0)
        if self.outbox is None or not job.webhook_url:
            return
        if handed is not None:
            self.outbox.hand(handed)
        else:
            self.outbox.poke()

    async def _publish(self, job_id: str, status: JobStatus, progress: float) -> None:
        if self.events is None:
            return
        try:
            await self.events.publish(JobEvent(job_id, "status", status.value, progress))
        except Exception:  # events are best effort; the database is the truth
            log.warning("publishing a job event failed", extra={"job_id": job_id})
