"""A job's read side: its view, polling, listing and watching.

Its state changes are all in ``core.lifecycle``, which draws the state diagram.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row

from hyperlocal.core.events import EventBus, JobEvent
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.status import WIRE_TYPES, JobStatus
from hyperlocal.engines.base import Category
from hyperlocal.errors import JobNotFoundError
from hyperlocal.storage.base import Storage
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

__all__ = [
    "WIRE_TYPES",
    "JobPage",
    "JobStatus",
    "JobView",
    "get_job",
    "list_jobs",
    "view",
    "watch",
    "with_current_urls",
]


RESULT_ID_PREFIX = "res_"


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    key_id: str
    model: str
    category: Category
    status: JobStatus
    credits: int
    created_at: float
    progress: float = 0.0
    result_id: str | None = None
    output_url: str | None = None
    output_urls: Sequence[str] = ()
    output_keys: Sequence[str] = ()  # storage keys: ``with_current_urls`` makes the URLs
    result: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)  # the validated inputs, media redacted
    error: str | None = None
    error_code: str | None = None
    webhook_url: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    queue_position: int | None = None
    expires_at: float | None = None  # when its outputs expire; None: kept forever (or running)
    expired_at: float | None = None  # when the retention sweep deleted them

    @property
    def wire_type(self) -> str:
        return WIRE_TYPES[self.category]


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: Sequence[JobView]
    next_cursor: str | None


def view(row: Job | Row[Any], queue_position: int | None = None) -> JobView:
    return JobView(
        id=row.id,
        key_id=row.key_id,
        model=row.model,
        category=Category(row.category),
        status=JobStatus(row.status),
        credits=row.credits,
        created_at=row.created_at,
        progress=row.progress,
        result_id=row.result_id,
        output_url=row.output_url,
        output_urls=tuple(row.output_urls or ()),
        output_keys=tuple(row.output_keys or ()),
        result=row.result or {},
        params=row.params or {},
        error=row.error,
        error_code=row.error_code,
        webhook_url=row.webhook_url,
        attempts=row.attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
        queue_position=queue_position,
        expires_at=row.expires_at,
        expired_at=row.expired_at,
    )


async def with_current_urls(storage: Storage, job: JobView) -> JobView:
    """``job`` with its outputs' URLs made now from their storage keys (a fresh presigned URL,
    the current public URL). A job finished before keys were kept shows its stored URLs; a job
    whose outputs expired shows none."""
    if job.expired_at is not None:
        return dataclasses.replace(job, output_url=None, output_urls=())
    if not job.output_keys:
        return job
    urls = tuple([await storage.url(k) for k in job.output_keys])
    return dataclasses.replace(job, output_url=urls[0], output_urls=urls)


async def get_job(db: Database, key: KeyInfo, job_id: str) -> JobView:
    """The job, if ``key`` owns it; another key's job is indistinguishable from none.

    An image's ``res_`` id (the one its synchronous answer gives) finds its job too."""
    async with db.read() as session:
        if job_id.startswith(RESULT_ID_PREFIX):
            row = await store.read_by_result(session, job_id)
        else:
            row = await store.read(session, job_id)
        if row is None or row.key_id != key.id:
            raise JobNotFoundError
        position = await store.queue_position(session, row) if row.status == "queued" else None
    if row.status == "running":  # waiting in a provider's queue, where the provider tells
        position = row.provider_queue_position
    return view(row, position)


def _cursor(row: Job) -> str:
    return f"{row.created_at!r}:{row.id}"


def _parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    created, _, job_id = cursor.partition(":")
    try:
        return float(created), job_id
    except ValueError:
        return None


async def list_jobs(db: Database, key: KeyInfo, *, limit: int, cursor: str | None) -> JobPage:
    async with db.read() as session:
        rows = await store.list_for_key(
            session, key.id, limit=limit + 1, before=_parse_cursor(cursor)
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return JobPage([view(r) for r in rows], _cursor(rows[-1]) if more and rows else None)


async def watch(
    db: Database, events: EventBus, key: KeyInfo, job_id: str, heartbeat: float
) -> AsyncIterator[JobView | JobEvent | None]:
    """A job's life as a stream: a JobView on each status change, its progress events (with
    ``step``, ``steps`` and a ``preview`` where the engine reports them), and
    None when ``heartbeat`` seconds pass quietly. Ends after the terminal view.

    It subscribes before reading the current state, so no change falls between the two, and
    re-reads the database every ``_RECHECK_EVERY`` quiet heartbeats, so a lost event only
    delays the stream (and 10,000 idle streams do not each read the database every beat).
    """
    async with events.subscribe(job_id) as stream:
        waiter = _EventWaiter(stream)
        try:
            async for item in _follow(db, key, job_id, waiter, heartbeat):
                yield item
        finally:
            waiter.close()


_RECHECK_EVERY = 4


async def _follow(
    db: Database, key: KeyInfo, job_id: str, waiter: _EventWaiter, heartbeat: float
) -> AsyncIterator[JobView | JobEvent | None]:
    current = await get_job(db, key, job_id)
    yield current
    quiet = 0
    while not current.status.terminal:
        event = await waiter.next(heartbeat)
        if event is not None and event.kind == "progress":
            yield event
            continue
        quiet = quiet + 1 if event is None else 0
        if event is None and quiet % _RECHECK_EVERY:
            yield None
            continue
        fresh = await get_job(db, key, job_id)
        if event is None and fresh.status == current.status:
            yield None
            continue
        current = fresh
        yield current


class _EventWaiter:
    """Waits for the next event with a timeout without cancelling the subscription: the
    pending read survives a timeout and is awaited again at the next beat."""

    def __init__(self, stream: AsyncIterator[JobEvent]) -> None:
        self._stream = stream
        self._pending: asyncio.Task[JobEvent] | None = None

    async def next(self, timeout: float) -> JobEvent | None:
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._stream))
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return None
        task, self._pending = self._pending, None
        return task.result()

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
