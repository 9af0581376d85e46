"""Runs one job from claim to terminal state. Shared by the in-process queue and Celery workers.

Every state change is a conditional UPDATE guarded by the lease owner, so a job that two
workers receive (a duplicate delivery, a recovered lease) is finished by exactly one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.core import ledger, webhooks
from hyperlocal.core.catalog import Catalog
from hyperlocal.core.events import EventBus, JobEvent
from hyperlocal.core.jobs import JobStatus, JobView, view
from hyperlocal.engines.base import (
    Category,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.registry import EngineRegistry
from hyperlocal.errors import (
    GenerationError,
    GenerationTimeoutError,
    HyperlocalError,
    UnexpectedError,
)
from hyperlocal.storage.base import Storage
from hyperlocal.store import jobs as store
from hyperlocal.store import keys as key_store
from hyperlocal.store.db import Database
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


class Outcome(StrEnum):
    FINISHED = "finished"  # this worker moved the job to a terminal state
    DEFERRED = "deferred"  # the key is at its running-jobs cap; the job stays queued
    SKIPPED = "skipped"  # not queued any more (done, canceled, or claimed elsewhere)


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: Outcome
    key_id: str | None = None
    view: JobView | None = None  # the terminal job, when this run finished it


class _AtCap(Exception):
    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class JobRunner:
    def __init__(
        self,
        db: Database,
        catalog: Catalog,
        engines: EngineRegistry,
        storage: Storage,
        *,
        owner: str,
        lease_s: float = 30.0,
        max_attempts: int = 3,
        events: EventBus | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.db, self.catalog, self.engines, self.storage = db, catalog, engines, storage
        self.owner, self.lease_s, self.max_attempts = owner, lease_s, max_attempts
        self.events, self.on_outbox = events, on_outbox

    async def _publish(
        self, job_id: str, status: JobStatus, progress: float, kind: str = "status"
    ) -> None:
        if self.events is not None:
            try:
                await self.events.publish(JobEvent(job_id, kind, status.value, progress))
            except Exception:  # events are best effort; the database is the truth
                log.warning("publishing a job event failed", extra={"job_id": job_id})

    async def _after_terminal(self, job_id: str, status: JobStatus, *, outbox: bool = True) -> None:
        """Tell watchers; wake the webhook dispatcher if an outbox row may have been written."""
        await self._publish(job_id, status, 1.0 if status is JobStatus.COMPLETED else 0.0)
        if outbox and self.on_outbox is not None:
            self.on_outbox()

    async def run(self, job_id: str) -> RunResult:
        job, outcome = await self._claim(job_id)
        if job is None or outcome is not Outcome.FINISHED:
            return RunResult(outcome, job.key_id if job else None)
        return RunResult(Outcome.FINISHED, job.key_id, await self.run_claimed(job))

    async def run_claimed(self, job: Job) -> JobView | None:
        """Run a job that ``self.owner`` holds to its end; the terminal job, or None if it was
        canceled meanwhile or its lease went to another worker."""
        await self._publish(job.id, JobStatus.RUNNING, 0.0)
        try:
            async with self._lease(job.id):
                result = await self._execute(job)
                outputs = await self._store_outputs(job, result)
        except Exception as exc:
            return await self._fail(job, _as_generation_error(exc))
        return await self._complete(job, result, outputs)

    def claim_values(self, now: float) -> dict[str, Any]:
        """The columns of a job that this worker claims as it is created (see ``store.claim``)."""
        return {
            "status": JobStatus.RUNNING.value,
            "lease_owner": self.owner,
            "lease_expires_at": now + self.lease_s,
            "attempts": 1,
            "started_at": now,
        }

    async def _claim(self, job_id: str) -> tuple[Job | None, Outcome]:
        """Claim the job, unless its key is at its running-jobs cap (then nothing changes)."""
        try:
            async with self.db.transaction() as session:
                job = await store.claim(session, job_id, self.owner, time.time(), self.lease_s)
                if job is None:
                    return None, Outcome.SKIPPED
                cap = await key_store.running_cap(session, job.key_id)
                if await store.count_running_for_key(session, job.key_id) > cap:
                    raise _AtCap(job)  # rolls the claim back
        except _AtCap as at_cap:
            return at_cap.job, Outcome.DEFERRED
        return job, Outcome.FINISHED

    @contextlib.asynccontextmanager
    async def _lease(self, job_id: str) -> AsyncIterator[None]:
        """Renew the job's lease every third of its length while the block runs. The renewing
        task starts only when the first renewal is due: most jobs end long before."""
        loop = asyncio.get_running_loop()
        renewers: list[asyncio.Task[None]] = []

        def start() -> None:
            renewers.append(loop.create_task(self._renew(job_id)))

        timer = loop.call_later(self.lease_s / 3, start)
        try:
            yield
        finally:
            timer.cancel()
            for renewer in renewers:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer

    async def _renew(self, job_id: str) -> None:
        while True:
            async with self.db.transaction() as session:
                await store.renew_lease(session, job_id, self.owner, time.time() + self.lease_s)
            await asyncio.sleep(self.lease_s / 3)

    async def _execute(self, job: Job) -> GenerationResult:
        entry = self.catalog.get(job.model)
        engine = await self.engines.get(entry.engine)
        request = GenerationRequest(
            job_id=job.id,
            model=job.model,
            category=Category(job.category),
            params=job.params,
            media=await self._load_media(job.inputs),
            options=entry.engine_options,
        )
        try:
            return await asyncio.wait_for(
                engine.generate(request, self._progress_for(job.id)), timeout=job.timeout_s
            )
        except TimeoutError as exc:
            raise GenerationTimeoutError(f"Generation timed out after {job.timeout_s:g} s") from exc

    def _progress_for(self, job_id: str):  # type: ignore[no-untyped-def]
        last = [0.0]

        async def report(fraction: float, _message: str | None) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and fraction < 1.0:
                return  # throttle: at most two progress writes a second
            last[0] = now
            clamped = min(max(fraction, 0.0), 1.0)
            async with self.db.transaction() as session:
                await store.set_progress(session, job_id, self.owner, clamped)
            await self._publish(job_id, JobStatus.RUNNING, clamped, "progress")

        return report

    async def _load_media(self, stored: Mapping[str, Any]) -> dict[str, list[MediaInput]]:
        media: dict[str, list[MediaInput]] = {}
        for name, items in stored.items():
            media[name] = [
                MediaInput(
                    field=item["field"],
                    kind=MediaKind(item["kind"]),
                    content_type=item["content_type"],
                    data=await self.storage.get(item["key"]),
                    source=item["source"],
                )
                for item in items
            ]
        return media

    async def _store_outputs(self, job: Job, result: GenerationResult) -> list[tuple[str, str]]:
        """Each output written to storage: its key and its URL now."""
        if not result.artifacts:
            raise GenerationError("The engine produced no output")
        folder = _FOLDERS[Category(job.category)]
        stem = job.result_id or job.id
        stored = []
        for i, artifact in enumerate(result.artifacts):
            suffix = f"-{i}" if i else ""
            key = f"{folder}/{stem}{suffix}.{artifact.extension}"
            stored.append((key, await self.storage.put(key, artifact.data, artifact.content_type)))
        return stored

    async def _complete(
        self, job: Job, result: GenerationResult, outputs: list[tuple[str, str]]
    ) -> JobView | None:
        urls = [url for _, url in outputs]
        values = {
            "status": JobStatus.COMPLETED.value,
            "output_url": urls[0],
            "output_urls": urls,
            "output_keys": [key for key, _ in outputs],
            "result": _result_json(result),
            "progress": 1.0,
            "finished_at": time.time(),
        }
        if not await self._finish(job, values, refund_note=None):
            return None
        await self._after_terminal(job.id, JobStatus.COMPLETED, outbox=bool(job.webhook_url))
        return _terminal_view(job, values)

    async def _fail(self, job: Job, error: GenerationError) -> JobView | None:
        log.warning("job failed", extra={"job_id": job.id, "model": job.model, "code": error.code})
        values = {
            "status": JobStatus.FAILED.value,
            "error": error.message,
            "error_code": error.code,
            "finished_at": time.time(),
        }
        if not await self._finish(job, values, refund_note=error.code):
            return None
        await self._after_terminal(job.id, JobStatus.FAILED, outbox=bool(job.webhook_url))
        return _terminal_view(job, values)

    async def _finish(self, job: Job, values: dict[str, Any], refund_note: str | None) -> bool:
        """One transaction: the terminal state, the refund if any, and the webhook outbox row."""
        async with self.db.transaction() as session:
            if not await store.finish(session, job.id, self.owner, **values):
                return False  # canceled meanwhile, or the lease was lost to another worker
            if refund_note is not None:
                await ledger.refund(session, job.key_id, job.id, refund_note)
            if job.webhook_url:
                fresh = await store.get(session, job.id)
                assert fresh is not None
                await webhooks.record_terminal(session, fresh, time.time())
        return True

    async def recover_expired(self) -> list[str]:
        """Requeue (or fail and refund) running jobs whose worker stopped renewing the lease."""
        now = time.time()
        requeued: list[str] = []
        lost: list[str] = []
        async with self.db.transaction() as session:
            for job in await store.expired_leases(session, now):
                # A chat is a stream to a client that is gone: it cannot be run again.
                resumable = job.category != Category.CHAT.value
                if resumable and job.attempts < self.max_attempts:
                    if await store.requeue_expired(session, job.id, now):
                        requeued.append(job.id)
                elif await self._fail_lost(session, job, now):
                    lost.append(job.id)
        for job_id in lost:
            await self._after_terminal(job_id, JobStatus.FAILED)
        return requeued

    async def _fail_lost(self, session: AsyncSession, job: Job, now: float) -> bool:
        moved = await store.transition(
            session,
            job.id,
            [JobStatus.RUNNING.value],
            status=JobStatus.FAILED.value,
            error="The worker running this job stopped",
            error_code="E9999",
            finished_at=now,
        )
        if moved:
            await ledger.refund(session, job.key_id, job.id, "worker lost")
            fresh = await store.get(session, job.id)
            assert fresh is not None
            await webhooks.record_terminal(session, fresh, now)
        return moved


def _terminal_view(job: Job, values: Mapping[str, Any]) -> JobView:
    """The job as ``_finish`` just wrote it, without reading it back."""
    lists = ("output_urls", "output_keys")
    fields = {k: v for k, v in values.items() if k != "status" and k not in lists}
    return dataclasses.replace(
        view(job),
        **fields,
        status=JobStatus(values["status"]),
        output_urls=tuple(values.get("output_urls") or ()),
        output_keys=tuple(values.get("output_keys") or ()),
    )


def _as_generation_error(exc: BaseException) -> GenerationError:
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, HyperlocalError):
        return GenerationError(exc.message)
    log.exception("unexpected engine error", exc_info=exc)
    return UnexpectedError()


def _result_json(result: GenerationResult) -> dict[str, Any]:
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
