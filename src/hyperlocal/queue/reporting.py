"""What a running job reports while its engine works, and what its end writes.

- :func:`progress_reporter`: progress to the job's row (at most twice a second) and to its
  events; a step's ``StepMessage`` adds ``step``, ``steps`` and a preview to the event.
- :func:`position_reporter`: the job's place in a provider's queue (``queuePosition``).
- :func:`result_json` and :func:`route_values`: the columns a completed run writes.

Both reporters write under the run's lease, so a run that lost its job writes nothing; both
are shown, not owed: a failed write is skipped, never raised into the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from hyperlocal.core.events import EventBus, JobEvent
from hyperlocal.core.lease import Lease
from hyperlocal.core.status import JobStatus
from hyperlocal.engines.base import (
    GenerationResult,
    PositionCallback,
    ProgressCallback,
    StepMessage,
)
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database

__all__ = ["position_reporter", "progress_reporter", "result_json", "route_values"]

log = logging.getLogger(__name__)

WRITE_EVERY_S = 0.5  # progress writes to the row, at most


def progress_reporter(db: Database, events: EventBus | None, lease: Lease) -> ProgressCallback:
    """Progress of the job ``lease`` holds. A preview between two writes goes to the events
    only: previews are never stored."""
    last = [0.0]

    async def report(fraction: float, message: str | None) -> None:
        now = time.monotonic()
        clamped = min(max(fraction, 0.0), 1.0)
        step = message if isinstance(message, StepMessage) else None
        if now - last[0] < WRITE_EVERY_S and fraction < 1.0:
            if step is not None and step.preview is not None:
                await _progress_event(events, lease.job_id, clamped, step)
            return  # throttle: at most two progress writes a second
        last[0] = now
        try:
            async with db.transaction() as session:
                await store.set_progress(session, lease.job_id, lease.token, clamped)
        except Exception:  # progress is shown, not owed: a transient error skips one
            log.warning("writing progress failed", extra={"job_id": lease.job_id})
            return
        await _progress_event(events, lease.job_id, clamped, step)

    return report


def position_reporter(db: Database, lease: Lease) -> PositionCallback:
    """Where the job waits in a provider's queue, shown as its ``queuePosition``. The write
    runs beside the engine, never in its way: a provider's answer must not wait on our
    database to be acted on. Writes keep their order (one at a time, the latest place last)
    and a place that changes while one is written is written next."""
    writer = _PositionWriter(db, lease)

    async def report(place: int | None) -> None:
        writer.show(place)

    return report


class _PositionWriter:
    def __init__(self, db: Database, lease: Lease) -> None:
        self._db, self._lease = db, lease
        self._wanted: int | None = None
        self._written: int | None = None
        self._task: asyncio.Task[None] | None = None

    def show(self, place: int | None) -> None:
        self._wanted = place
        if self._wanted != self._written and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while self._wanted != self._written:
            place = self._written = self._wanted
            try:
                async with self._db.transaction() as session:
                    await store.set_provider_queue_position(
                        session, self._lease.job_id, self._lease.token, place
                    )
            except Exception:  # shown, not owed, like progress
                log.warning(
                    "writing the queue position failed", extra={"job_id": self._lease.job_id}
                )


async def _progress_event(
    events: EventBus | None, job_id: str, progress: float, step: StepMessage | None
) -> None:
    if events is None:
        return
    event = JobEvent(job_id, "progress", JobStatus.RUNNING.value, progress)
    if step is not None:
        event = replace(event, step=step.step, steps=step.steps, preview=step.preview)
    try:
        await events.publish(event)
    except Exception:  # events are best effort; the database is the truth
        log.warning("publishing a job event failed", extra={"job_id": job_id})


def route_values(result: GenerationResult) -> dict[str, Any]:
    """The job's provider-route columns, when the run went through routes."""
    if not result.attempts:
        return {}
    return {
        "route_attempts": [dict(a) for a in result.attempts],
        "provider_cost_usd": result.provider_cost_usd,
    }


def result_json(result: GenerationResult) -> dict[str, Any]:
    return {
        "duration": result.duration,
        "text": result.text,
        "segments": [
            {
                "text": s.text,
                "start": s.start,
                "end": s.end,
                "words": [{"word": w.word, "start": w.start, "end": w.end} for w in s.words],
            }
            for s in result.segments
        ],
        "extra": dict(result.extra),
    }
