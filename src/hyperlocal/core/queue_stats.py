"""Queue depth and job latency by model, for the operator (``GET /admin/queue``).

The jobs queued and running now are ``metrics.snapshot``'s, the very numbers that the
``hyperlocal_jobs_queued`` and ``hyperlocal_jobs_running`` gauges expose. Latency is read from
the jobs table over a window, for the jobs created in it that have ended: the time each waited
(``started_at - created_at``, to its first start, as ``hyperlocal_job_queue_seconds`` counts
it) and ran (``finished_at - started_at``). Percentiles are exact (nearest rank) over the
newest ``SAMPLE_LIMIT`` jobs of each model, where the histograms have only their buckets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hyperlocal.core.metrics import QueueSnapshot, snapshot
from hyperlocal.core.status import JobStatus
from hyperlocal.store import queue_stats as store
from hyperlocal.store.db import Database
from hyperlocal.store.queue_stats import EndedJob

__all__ = ["SAMPLE_LIMIT", "ModelQueue", "Percentiles", "by_model", "percentile"]

SAMPLE_LIMIT = 5000
"""Of each model, the newest jobs whose times are read: enough for a steady p99, and a bound
on what one request reads however busy the window was."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``ordered``, sorted and not empty:
    always one of the values, never an interpolation."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50: float
    p99: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles | None:
        """Those of ``values`` (a negative one, from clocks that disagree, counts as 0); None
        when there are none."""
        ordered = sorted(max(0.0, v) for v in values)
        if not ordered:
            return None
        return cls(percentile(ordered, 0.5), percentile(ordered, 0.99))


@dataclass(frozen=True, slots=True)
class ModelQueue:
    model: str
    queued: int  # now
    running: int  # now
    completed: int  # the rest: jobs created in the window that have ended
    failed: int
    canceled: int
    sampled: int  # the ended jobs whose times were read (at most SAMPLE_LIMIT)
    queue_s: Percentiles | None  # None: none of them ever started
    run_s: Percentiles | None

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.canceled


async def by_model(
    db: Database, models: Iterable[str], since: float, per_model: int = SAMPLE_LIMIT
) -> list[ModelQueue]:
    """Every model of ``models`` (the catalogue's, shown at 0 when idle, as the gauges are) and
    any other with jobs, by id."""
    live = await snapshot(db, models)
    async with db.read() as session:
        counts = await store.ended_counts(session, since)
        rows = await store.ended_jobs(session, since, per_model)
    ended: defaultdict[str, dict[str, int]] = defaultdict(dict)
    for model, status, n in counts:
        ended[model][status] = n
    sampled: defaultdict[str, list[EndedJob]] = defaultdict(list)
    for row in rows:
        sampled[row.model].append(row)
    names = sorted({*live.queued, *live.running, *ended})
    return [_model(name, live, ended[name], sampled[name]) for name in names]


def _model(
    name: str, live: QueueSnapshot, ended: dict[str, int], rows: list[EndedJob]
) -> ModelQueue:
    waits, runs = _times(rows)
    return ModelQueue(
        model=name,
        queued=live.queued.get(name, 0),
        running=live.running.get(name, 0),
        completed=ended.get(JobStatus.COMPLETED, 0),
        failed=ended.get(JobStatus.FAILED, 0),
        canceled=ended.get(JobStatus.CANCELED, 0),
        sampled=len(rows),
        queue_s=Percentiles.of(waits),
        run_s=Percentiles.of(runs),
    )


def _times(rows: Iterable[EndedJob]) -> tuple[list[float], list[float]]:
    """The seconds each job that started waited, and ran."""
    waits: list[float] = []
    runs: list[float] = []
    for row in rows:
        if row.started_at is not None:
            waits.append(row.started_at - row.created_at)
            runs.append(row.finished_at - row.started_at)
    return waits, runs
