"""Webhooks, delivered as Standard Webhooks (standardwebhooks.com).

The terminal transaction of a job writes an outbox row (``record_terminal``); a dispatcher
sends it after commit, at least once, signed with the key's ``whsec_`` secret, with the same
``webhook-id`` on every retry. ``next_step`` is the retry policy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal import tracing
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.status import WIRE_TYPES, JobStatus
from hyperlocal.engines.base import Category
from hyperlocal.errors import JobNotFoundError, RequestError
from hyperlocal.store import jobs as job_store
from hyperlocal.store import webhooks as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job, WebhookDelivery

__all__ = [
    "DEFAULT_SCHEDULE",
    "AttemptView",
    "DeliveryStatus",
    "list_attempts",
    "next_step",
    "payload_for",
    "record_terminal",
    "replay",
    "sign",
]

# Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # the schedule ran out
    GONE = "gone"  # the receiver answered 410: never again


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempted_at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    url: str
    message_id: str


def payload_for(job: Job, ended: Mapping[str, Any] | None = None) -> dict[str, object]:
    """The hosted API's webhook payload (spec §6) of ``job``, as its row reads once the
    columns in ``ended`` (a terminal move's values, not yet read back) are written."""
    now = {**{name: getattr(job, name) for name in _PAYLOAD_COLUMNS}, **(ended or {})}
    status = JobStatus(now["status"])
    body: dict[str, object] = {"status": status.wire, "jobId": job.id}
    if status is JobStatus.COMPLETED:
        body["outputUrl"] = now["output_url"]
    else:
        body["error"] = now["error"] or "failed"
    body.update(
        type=WIRE_TYPES[Category(job.category)], model=job.model, creditsUsed=now["credits"]
    )
    return body


_PAYLOAD_COLUMNS = ("status", "output_url", "error", "credits")


async def record_terminal(
    session: AsyncSession,
    job: Job,
    first_attempt_at: float,
    *,
    ended: Mapping[str, Any] | None = None,
    held_until: float | None = None,
) -> WebhookDelivery | None:
    """Write the outbox row for a job that just became terminal, in the same transaction;
    ``ended``: the values its terminal move wrote (see ``payload_for``). ``held_until``: the
    row is not due before then, being the sender's to send (``OutboxSender.holds_for``)."""
    if not job.webhook_url:
        return None
    delivery = WebhookDelivery(
        id="whd_" + secrets.token_hex(10),
        message_id="msg_" + job.id.removeprefix("job_"),
        job_id=job.id,
        key_id=job.key_id,
        url=job.webhook_url,
        payload=json.dumps(payload_for(job, ended), separators=(",", ":")),
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=first_attempt_at if held_until is None else held_until,
        created_at=time.time(),
        traceparent=tracing.traceparent() or job.traceparent,  # linked from each attempt
    )
    await store.insert(session, delivery)
    return delivery


def sign(secret: str, message_id: str, timestamp: int, payload: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.{payload}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def next_step(
    attempts_made: int, status_code: int | None, schedule: Sequence[float], jitter: float
) -> tuple[DeliveryStatus, float | None]:
    """After ``attempts_made`` attempts, the last answered ``status_code`` (None: no answer):
    the delivery's new status and, if pending, the delay before the next attempt."""
    if status_code is not None and 200 <= status_code < 300:
        return DeliveryStatus.DELIVERED, None
    if status_code == 410:
        return DeliveryStatus.GONE, None
    if attempts_made >= len(schedule):
        return DeliveryStatus.FAILED, None
    delay = schedule[attempts_made]
    return DeliveryStatus.PENDING, delay * (1 + random.uniform(-jitter, jitter))


async def _owned_job(session: AsyncSession, key: KeyInfo, job_id: str) -> Job:
    job = await job_store.get(session, job_id)
    if job is None or job.key_id != key.id:
        raise JobNotFoundError
    return job


async def list_attempts(db: Database, key: KeyInfo, job_id: str) -> list[AttemptView]:
    async with db.read() as session:
        await _owned_job(session, key, job_id)
        deliveries = {d.id: d for d in await store.deliveries_for_job(session, job_id)}
        attempts = await store.attempts_for_job(session, job_id)
    return [
        AttemptView(
            a.attempted_at,
            a.status_code,
            a.latency_ms,
            a.error,
            deliveries[a.delivery_id].url,
            deliveries[a.delivery_id].message_id,
        )
        for a in attempts
    ]


async def replay(db: Database, key: KeyInfo, job_id: str) -> int:
    """Send the job's final event again now; the number of deliveries rescheduled."""
    async with db.transaction() as session:
        job = await _owned_job(session, key, job_id)
        if not JobStatus(job.status).terminal:
            raise RequestError("Job has not finished yet")
        if not job.webhook_url:
            raise RequestError("Job has no webhook_url")
        count = await store.reschedule(session, job_id, time.time())
        if count == 0:
            await record_terminal(session, job, time.time())
            count = 1
    return count
