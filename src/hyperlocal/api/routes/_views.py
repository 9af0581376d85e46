"""Domain values -> wire schemas, shared by the routes that show jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import Response
from pydantic import BaseModel

from hyperlocal.api.deps import Call
from hyperlocal.api.schemas import (
    ImageData,
    ImageResponse,
    JobAccepted,
    JobStatusResponse,
    JobUnavailable,
)
from hyperlocal.core.jobs import JobStatus, JobView
from hyperlocal.settings import Settings

__all__ = [
    "accepted",
    "image_response",
    "job_status",
    "job_unavailable",
    "json_response",
    "poll_url",
]


def json_response(call: Call, model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as the response body, serialised once, by pydantic (a route that returns the
    model has FastAPI validate it against ``response_model`` first: work the request path need
    not do, for models built from our own values), with the key's rate-limit headers."""
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        headers=call.rate_headers,
        media_type="application/json",
    )


def poll_url(settings: Settings, job: JobView) -> str:
    query = urlencode({"model": job.model, "type": job.wire_type})
    return settings.external_url(f"/v1/jobs/{job.id}?{query}")


def accepted(settings: Settings, job: JobView) -> JobAccepted:
    return JobAccepted(
        jobId=job.id,
        status="processing",
        message="Generation started. Result will be sent to your webhook URL."
        if job.webhook_url
        else "Generation started. Poll pollUrl for the result.",
        creditsUsed=job.credits,
        pollUrl=poll_url(settings, job),
    )


def job_status(job: JobView) -> JobStatusResponse:
    extra = _engine_facts(job.result.get("extra") or {})
    extra.update({k: job.result[k] for k in ("text", "duration", "segments") if job.result.get(k)})
    if job.result_id:
        extra["resultId"] = job.result_id
    if len(job.output_urls) > 1:
        extra["outputUrls"] = list(job.output_urls)
    return JobStatusResponse(
        jobId=job.id,
        status=job.status.wire,
        model=job.model,
        type=job.wire_type,
        creditsUsed=job.credits,
        outputUrl=job.output_url,
        error=job.error,
        code=job.error_code if job.status is not JobStatus.COMPLETED else None,
        progress=round(job.progress, 3),
        queuePosition=job.queue_position,
        createdAt=int(job.created_at),
        completedAt=int(job.finished_at) if job.finished_at else None,
        expiresAt=int(job.expires_at) if job.expires_at is not None else None,
        expired=True if job.expired_at is not None else None,
        elapsedMs=round((job.finished_at - job.created_at) * 1000) if job.finished_at else None,
        finishReason=job.result.get("finish_reason"),
        input=dict(job.params) or None,
        **extra,
    )


def _engine_facts(extra: Mapping[str, Any]) -> dict[str, Any]:
    """What the engine reported beyond its output, less any name the view gives its own value:
    the view's values always win. Speech recognition, for one, reports its recogniser as
    ``model``, which is not the job's model (the sync answer shows it; a job view cannot)."""
    return {k: v for k, v in extra.items() if k not in JobStatusResponse.model_fields}


def job_unavailable(job: JobView) -> JobUnavailable:
    """How a job whose view cannot be built is shown: its id and status, and why no more."""
    return JobUnavailable(jobId=job.id, status=job.status.wire, error="This job could not be shown")


def image_response(job: JobView) -> ImageResponse:
    urls = job.output_urls or ((job.output_url,) if job.output_url else ())
    return ImageResponse(
        created=int(job.finished_at or job.created_at),
        data=[ImageData(url=url, model=job.model) for url in urls],
        resultId=job.result_id or job.id,
        creditsUsed=job.credits,
    )
