"""Jobs: polling, listing and cancelling (spec §6)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hyperlocal.api.deps import CurrentKey, Svc
from hyperlocal.api.routes._views import job_status, job_unavailable
from hyperlocal.api.schemas import JobListResponse, JobStatusResponse, JobUnavailable
from hyperlocal.core import jobs, webhooks
from hyperlocal.core.events import JobEvent
from hyperlocal.core.streams import StreamSlot
from hyperlocal.errors import UnexpectedError
from hyperlocal.storage.base import Storage

log = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobStatusResponse, response_model_exclude_none=True)
async def get_job(
    job_id: str,
    key: CurrentKey,
    svc: Svc,
    model: str | None = None,  # noqa: ARG001 - accepted for hosted-API compatibility
    type: str | None = None,  # noqa: ARG001
) -> JobStatusResponse:
    await svc.chat_recorder.flush()  # a chat that has just ended shows how it ended
    shown = await _shown(svc.storage, await jobs.get_job(svc.db, key, job_id))
    if isinstance(shown, JobUnavailable):
        raise UnexpectedError(f"Job {job_id} could not be shown")
    return shown


@router.get("/jobs", response_model=JobListResponse, response_model_exclude_none=True)
async def list_jobs(
    key: CurrentKey,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> JobListResponse:
    await svc.chat_recorder.flush()
    page = await jobs.list_jobs(svc.db, key, limit=limit, cursor=cursor)
    shown = [await _shown(svc.storage, j) for j in page.jobs]
    return JobListResponse(data=shown, nextCursor=page.next_cursor)


async def _shown(storage: Storage, job: jobs.JobView) -> JobStatusResponse | JobUnavailable:
    """The job's view, or, where it cannot be built (a stored result this server cannot
    show), the job as unavailable, logged: one such job must not break a list or a stream."""
    try:
        return job_status(await jobs.with_current_urls(storage, job))
    except Exception:
        log.exception("job could not be shown", extra={"job_id": job.id})
        return job_unavailable(job)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobStatusResponse, response_model_exclude_none=True
)
async def cancel_job(job_id: str, key: CurrentKey, svc: Svc) -> JobStatusResponse:
    """Cancel the job (spec §12): a queued job at once; a running one once its work has
    stopped (this waits a few seconds for that, then shows the job as it is). 409 if the job
    had already ended."""
    await svc.chat_recorder.flush()  # a chat that has just ended is terminal, not running
    job = await svc.lifecycle.cancel(key, job_id)
    return job_status(await jobs.with_current_urls(svc.storage, job))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
async def job_events(job_id: str, key: CurrentKey, svc: Svc) -> StreamingResponse:
    """Server-Sent Events: ``status`` (the job, as polling shows it) and ``progress`` events
    (with ``step``, ``steps`` and a ``preview`` where the engine reports them), a
    ``: heartbeat`` comment every 15 s, and the stream ends after the terminal status."""
    await svc.chat_recorder.flush()
    await jobs.get_job(svc.db, key, job_id)  # 404 before the stream starts
    slot = svc.streams.take(key.id)  # 429 past the key's open streams
    stream = jobs.watch(svc.db, svc.events, key, job_id, heartbeat=15.0)
    return _HeldStream(
        _sse(job_id, stream, svc.storage),
        slot,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _HeldStream(StreamingResponse):
    """A stream that holds one of its key's stream slots until it ends, however it ends."""

    def __init__(self, content: AsyncIterator[str], slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


async def _sse(
    job_id: str,
    stream: AsyncIterator[jobs.JobView | JobEvent | None],
    storage: Storage,
) -> AsyncIterator[str]:
    async for item in stream:
        if item is None:
            yield ": heartbeat\n\n"
        elif isinstance(item, JobEvent):
            yield _event("progress", _progress(job_id, item))
        else:
            shown = await _shown(storage, item)
            yield _event("status", shown.model_dump(exclude_none=True))


def _progress(job_id: str, item: JobEvent) -> dict[str, Any]:
    """A ``progress`` event: ``jobId`` and ``progress``, then ``step``, ``steps`` and
    ``preview`` (a small ``data:image/jpeg``) where the engine reports them."""
    data: dict[str, Any] = {"jobId": job_id, "progress": round(item.progress, 3)}
    optional = {"step": item.step, "steps": item.steps, "preview": item.preview}
    data.update((name, value) for name, value in optional.items() if value is not None)
    return data


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/jobs/{job_id}/deliveries")
async def job_deliveries(job_id: str, key: CurrentKey, svc: Svc) -> dict[str, Any]:
    attempts = await webhooks.list_attempts(svc.db, key, job_id)
    return {
        "data": [
            {
                "webhookId": a.message_id,
                "url": a.url,
                "attemptedAt": a.attempted_at,
                "statusCode": a.status_code,
                "latencyMs": round(a.latency_ms, 2),
                "error": a.error,
            }
            for a in attempts
        ]
    }


@router.post("/jobs/{job_id}/deliveries/replay", status_code=202)
async def replay_deliveries(job_id: str, key: CurrentKey, svc: Svc) -> dict[str, Any]:
    count = await webhooks.replay(svc.db, key, job_id)
    svc.webhooks.poke()
    return {"jobId": job_id, "scheduled": count}
