"""The values a job's terminal moves write, and the job as a move wrote it: pure functions
of the row, for ``JobLifecycle`` (which owns every move and its transaction)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from hyperlocal.core.jobs import JobView, view
from hyperlocal.core.status import JobStatus
from hyperlocal.engines.base import Category
from hyperlocal.store.tables import Job

__all__ = ["as_written", "expiry_target", "failure", "late_message", "missed_start"]

Q, F, X = JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELED


def expiry_target(job: Job, max_attempts: int) -> JobStatus:
    if job.cancel_requested_at is not None:
        return X
    if job.category != Category.CHAT.value and job.attempts < max_attempts:
        return Q
    return F


def missed_start(job: Job, now: float) -> bool:
    """Whether a claim at ``now`` (just made) is the job's first start, and after its start
    deadline. The claim sets ``started_at`` to ``now`` only when the job never started: a job
    that started once and was requeued has met its deadline."""
    deadline = job.start_deadline_at
    return deadline is not None and job.started_at == now and now > deadline


def late_message(job: Job) -> str:
    seconds = (job.start_deadline_at or job.created_at) - job.created_at
    return f"Start deadline of {seconds:g} s (X-Start-Deadline) passed while the job was queued"


def failure(status: JobStatus, message: str, code: str) -> dict[str, Any]:
    return {
        "status": status.value,
        "error": message,
        "error_code": str(code),
        "finished_at": time.time(),
    }


def as_written(job: Job, values: Mapping[str, Any]) -> JobView:
    """The job as a transition just wrote it, without reading it back."""
    lists = ("output_urls", "output_keys")
    shown = JobView.__dataclass_fields__
    fields = {k: v for k, v in values.items() if k in shown and k != "status" and k not in lists}
    return dataclasses.replace(
        view(job),
        **fields,
        status=JobStatus(values["status"]),
        output_urls=tuple(values.get("output_urls") or ()),
        output_keys=tuple(values.get("output_keys") or ()),
    )
