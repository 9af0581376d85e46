"""Retention: how long a job's outputs and inputs are kept, and deleting them after.

A job records at submit how long its outputs are kept (``job_retention``): the server's
``output_retention``, or a shorter time that the request asked for; None keeps them forever.
When the job ends, ``JobLifecycle`` writes ``ending_values`` in the same transaction: when a
completed job's outputs expire, and when its stored inputs are due for deletion.

``ExpirySweeper`` deletes what is due, on a clock of its own (``clock``, injectable for
tests). It runs in every API process: two sweeps that pick the same job both delete its files
(a delete of what is gone is a no-op), and a conditional UPDATE marks the job once. Files are
deleted before the row is marked, so a process that dies in between leaves the job due, and
the next sweep deletes again: nothing is left behind. The row stays, its outputs marked
expired: the job view shows no URL, and a fetch answers 410 (``check_output``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.core import stored_inputs
from hyperlocal.errors import OutputExpiredError
from hyperlocal.storage.base import Storage
from hyperlocal.store import retention as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

__all__ = [
    "BATCH",
    "ExpirySweeper",
    "Swept",
    "check_output",
    "ending_values",
    "job_retention",
    "sweep",
]

log = logging.getLogger(__name__)

BATCH = 200  # jobs read per query; a sweep goes on until less than this is due
ORPHAN_SWEEP_S = 600.0  # how often a sweep also looks for orphaned inputs

Clock = Callable[[], float]


def job_retention(server_s: float, requested_s: float | None) -> float | None:
    """Seconds a job's outputs are kept: the server's (0: forever), shortened by the
    request's, never lengthened; None for forever."""
    if not server_s:
        return requested_s
    return server_s if requested_s is None else min(server_s, requested_s)


def ending_values(
    job: Job, finished_at: float, *, completed: bool, input_s: float
) -> dict[str, float]:
    """The retention columns of a job that ends at ``finished_at``: its outputs' expiry (if
    it completed and is not kept forever), and when its inputs are deleted (after ``input_s``,
    or with its outputs if those go first)."""
    values: dict[str, float] = {}
    if completed and job.retention_s is not None:
        values["expires_at"] = finished_at + job.retention_s
    if job.inputs:
        keep = input_s if job.retention_s is None else min(input_s, job.retention_s)
        values["inputs_expire_at"] = finished_at + keep
    return values


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: jobs whose outputs, and jobs whose inputs, it deleted, and jobs it
    could not finish (a storage error: they stay due, and the next sweep tries again)."""

    outputs: int = 0
    inputs: int = 0
    failed: int = 0


async def sweep(db: Database, outputs: Storage, inputs: Storage, now: float) -> Swept:
    """Delete every output and input due by ``now``."""
    out_done, out_failed = await _expire(db, outputs, now, _OUTPUTS)
    in_done, in_failed = await _expire(db, inputs, now, _INPUTS)
    return Swept(out_done, in_done, out_failed + in_failed)


@dataclass(frozen=True, slots=True)
class _Kind:
    """One kind of file that expires: which jobs are due, their files, and the mark."""

    due: Callable[[AsyncSession, float, int], Awaitable[Sequence[Row[Any, Any]]]]
    keys: Callable[[Row[Any, Any]], Iterable[str]]
    mark: Callable[[AsyncSession, str, float], Awaitable[object]]


_OUTPUTS = _Kind(store.outputs_due, lambda row: row.output_keys or (), store.outputs_deleted)
_INPUTS = _Kind(
    store.inputs_due,
    lambda row: input_keys(row.inputs),
    lambda session, job_id, _now: store.inputs_deleted(session, job_id),
)


async def _expire(db: Database, storage: Storage, now: float, kind: _Kind) -> tuple[int, int]:
    """Delete the files of every job due, batch by batch, and mark each job; (done, failed).
    A job whose files could not all be deleted stays due, skipped until the next sweep."""
    done, skip = 0, set[str]()
    while True:
        async with db.read() as session:
            rows = await kind.due(session, now, BATCH + len(skip))
        todo = [row for row in rows if row.id not in skip]
        if not todo:
            return done, len(skip)
        for row in todo:
            if not await _deleted(storage, kind.keys(row), row.id):
                skip.add(row.id)
                continue
            async with db.transaction() as session:
                await kind.mark(session, row.id, now)
            done += 1


def input_keys(inputs: Mapping[str, Any] | None) -> Iterator[str]:
    """The storage keys of a job's stored inputs (``Job.inputs``: field -> items)."""
    for items in (inputs or {}).values():
        for item in items:
            yield item["key"]


async def _deleted(storage: Storage, keys: Iterable[str], job_id: str) -> bool:
    try:
        for key in keys:
            await storage.delete(key)
    except Exception:
        log.exception("deleting an expired file failed", extra={"job_id": job_id})
        return False
    return True


async def check_output(db: Database, key: str, now: float) -> None:
    """Raise ``OutputExpiredError`` if ``key`` (a missing file) was an output of a job whose
    outputs have expired; return if it was not (the caller answers 404)."""
    name = key.rpartition("/")[2].partition(".")[0]
    stem = name.rsplit("-", 1)[0] if "-" in name else name  # a job's second output: -1, -2...
    async with db.read() as session:
        row = await store.output_owner(session, stem)
    if row is None or key not in (row.output_keys or ()):
        return
    expired = row.expired_at is not None or (row.expires_at is not None and row.expires_at <= now)
    if expired:
        raise OutputExpiredError


class ExpirySweeper:
    """Sweeps every ``interval`` seconds on ``clock``, and at once when poked; now and then,
    deletes orphaned inputs too (``stored_inputs.sweep_orphans``).

    ``swept_at`` is the clock's reading at the start of the last sweep that finished: a test
    that steps the clock pokes the sweeper and waits for ``swept_at`` to reach its step.
    """

    def __init__(
        self, db: Database, outputs: Storage, inputs: Storage, *, clock: Clock, interval: float
    ) -> None:
        self._db, self._outputs, self._inputs = db, outputs, inputs
        self.clock, self._interval = clock, interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.swept_at: float | None = None
        self.last: Swept = Swept()
        self._orphans_due = 0.0  # wall-clock time of the next orphan-input sweep

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def poke(self) -> None:
        self._wake.set()

    async def sweep_once(self) -> Swept:
        now = self.clock()
        self.last = await sweep(self._db, self._outputs, self._inputs, now)
        self.swept_at = now
        await self._sweep_orphans()
        if self.last.outputs or self.last.inputs or self.last.failed:
            log.info(
                "retention sweep",
                extra={
                    "outputs": self.last.outputs,
                    "inputs": self.last.inputs,
                    "failed": self.last.failed,
                },
            )
        return self.last

    async def _sweep_orphans(self) -> None:
        """At most once every ``ORPHAN_SWEEP_S``, on the wall clock rather than ``clock``: an
        orphan's age is its file's, and a stepped clock must never make the inputs of a submit
        still in flight look an hour old."""
        now = time.time()
        if now < self._orphans_due:
            return
        self._orphans_due = now + ORPHAN_SWEEP_S
        await stored_inputs.sweep_orphans(self._db, self._inputs, now)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sweep_once()
            except Exception:
                log.exception("retention sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
