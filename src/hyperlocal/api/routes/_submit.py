"""The shared submit-and-answer flow: 202 for jobs, or wait and answer in full."""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi import Request, Response
from pydantic import BaseModel

from hyperlocal.api.deps import Call
from hyperlocal.api.routes._views import accepted, json_response
from hyperlocal.core import jobs
from hyperlocal.core.generation import SubmitRequest, generate, submit
from hyperlocal.core.jobs import JobStatus, JobView
from hyperlocal.errors import (
    ErrorCode,
    GenerationError,
    GenerationTimeoutError,
    InputError,
    ProviderInputError,
    StartDeadlineError,
    UnexpectedError,
)

__all__ = ["START_DEADLINE_HEADER", "run_or_accept", "start_deadline", "wants_async"]

_ERRORS: dict[str, type[GenerationError]] = {
    ErrorCode.TIMEOUT: GenerationTimeoutError,
    ErrorCode.UNEXPECTED: UnexpectedError,
    ErrorCode.INVALID_INPUT: ProviderInputError,
    ErrorCode.START_DEADLINE: StartDeadlineError,
}

START_DEADLINE_HEADER = "X-Start-Deadline"
MAX_START_DEADLINE_S = 30 * 86_400  # a month: longer is a mistake, not a deadline


def start_deadline(request: Request) -> float | None:
    """``X-Start-Deadline: <seconds>``: the job fails (E1005), refunded, if it has not started
    that long after its submit. None without the header; 400 (E1004) unless it is a number of
    seconds above 0 and at most ``MAX_START_DEADLINE_S``."""
    raw = request.headers.get(START_DEADLINE_HEADER)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_START_DEADLINE_S:  # NaN fails too
        problem = f"must be a number of seconds above 0 and at most {MAX_START_DEADLINE_S}"
        raise InputError(START_DEADLINE_HEADER, problem)
    return seconds


def wants_async(request: Request, webhook_url: str | None) -> bool:
    """A webhook, or ``Prefer: respond-async`` (RFC 7240), turns a sync call into a job."""
    prefer = request.headers.get("prefer", "").lower()
    return bool(webhook_url) or "respond-async" in prefer


async def run_or_accept(
    call: Call, req: SubmitRequest, render: Callable[[JobView], BaseModel]
) -> Response:
    svc = call.svc
    if wants_async(call.request, req.webhook_url):
        job = await submit(svc, req)
        return json_response(call, accepted(svc.settings, job), 202)
    done = await generate(svc, req)
    if done.status is JobStatus.COMPLETED:
        return json_response(call, render(await jobs.with_current_urls(svc.storage, done)))
    if done.status.terminal:
        raise _ERRORS.get(done.error_code or "", GenerationError)(done.error or None)
    return json_response(call, accepted(svc.settings, done), 202)
