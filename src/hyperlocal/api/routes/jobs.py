"""Jobs: polling, listing and cancelling (spec §6)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hyperlocal.api.deps import CurrentKey, Svc
from hyperlocal.api.routes._views import job_status
from hyperlocal.api.schemas import JobListResponse, JobStatusResponse
from hyperlocal.core import jobs

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobStatusResponse, response_model_exclude_none=True)
async def get_job(
    job_id: str,
    key: CurrentKey,
    svc: Svc,
    model: str | None = None,  # noqa: ARG001 - accepted for hosted-API compatibility
    type: str | None = None,  # noqa: ARG001
) -> JobStatusResponse:
    return job_status(await jobs.get_job(svc.db, key, job_id))


@router.get("/jobs", response_model=JobListResponse, response_model_exclude_none=True)
async def list_jobs(
    key: CurrentKey,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> JobListResponse:
    page = await jobs.list_jobs(svc.db, key, limit=limit, cursor=cursor)
    return JobListResponse(data=[job_status(j) for j in page.jobs], nextCursor=page.next_cursor)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobStatusResponse, response_model_exclude_none=True
)
async def cancel_job(job_id: str, key: CurrentKey, svc: Svc) -> JobStatusResponse:
    return job_status(await jobs.cancel_job(svc.db, key, job_id))
