"""What a scale-out worker does with a delivery, and its periodic lease sweep.

A delivery is only a job id. ``JobRunner.run`` claims the job with a conditional UPDATE, so a
duplicate or redelivered message finds the job taken or done and does nothing. A job whose key
is at its running cap is *deferred*: it stays queued in the database and is sent again with a
short countdown. Deferral is not failure, so it has no retry limit; the limits that matter are
the engine timeout and ``job_max_attempts``, both enforced by the runner.
"""

from __future__ import annotations

import asyncio
import logging
import random

from hyperlocal.queue.dispatch import CeleryQueue
from hyperlocal.queue.runner import JobRunner, Outcome

__all__ = ["DEFER_MAX_S", "JobExecutor", "Sweeper", "deferral_delay"]

log = logging.getLogger(__name__)

DEFER_FIRST_S, DEFER_MAX_S = 0.5, 5.0


def deferral_delay(deferrals: int) -> float:
    """0.5 s, doubling up to 5 s, with ±20 % jitter so deferred jobs do not return in step."""
    base = min(DEFER_MAX_S, DEFER_FIRST_S * 2.0 ** min(deferrals, 10))
    return base * random.uniform(0.8, 1.2)


class JobExecutor:
    def __init__(self, runner: JobRunner, queue: CeleryQueue) -> None:
        self._runner, self._queue = runner, queue

    async def execute(self, job_id: str, deferrals: int) -> Outcome | None:
        """Run one delivery. ``None`` means an error outside the job (the database, say)."""
        try:
            result = await self._runner.run(job_id)
        except Exception:
            # The job is still queued (or running under a lease that will expire): dropping
            # its dispatch mark lets the next sweep send it again.
            log.exception("running a job failed", extra={"job_id": job_id})
            await self._queue.release(job_id)
            return None
        if result.outcome is Outcome.DEFERRED:
            delay = deferral_delay(deferrals)
            log.debug("job deferred: its key is at its running cap", extra={"job_id": job_id})
            await self._queue.redispatch(job_id, deferrals=deferrals + 1, countdown=delay)
        elif result.outcome is Outcome.RELEASED:  # this worker stops: another one takes it
            await self._queue.redispatch(job_id)
        return result.outcome


class Sweeper:
    """Every ``interval`` s: requeue jobs whose lease expired, and send jobs no message holds.

    Every worker sweeps; the conditional UPDATEs and the dispatch mark make that safe.
    """

    def __init__(self, runner: JobRunner, queue: CeleryQueue, interval: float) -> None:
        self._runner, self._queue, self.interval = runner, queue, interval

    @property
    def heartbeat_ttl(self) -> float:
        """How long this worker's heartbeat outlives a sweep: a few missed sweeps."""
        return 3 * self.interval + 5.0

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("lease sweep failed")
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        await self._queue.heartbeat(self._runner.worker, self.heartbeat_ttl)
        await self._queue.redispatch_for_dead_workers()
        for job_id in await self._runner.expire_leases():
            log.warning("lease expired; job requeued", extra={"job_id": job_id})
            await self._queue.redispatch(job_id)
        await self._queue.dispatch_orphans()
