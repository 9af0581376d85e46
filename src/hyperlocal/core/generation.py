"""Submitting a generation: validate, refuse a key that cannot pay even the least the request
can cost, fetch inputs, price, store the inputs (``stored_inputs``), then charge and create the
job in one transaction, and only then hand it to the queue. A submit that does not commit
leaves no input behind."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from hyperlocal import tracing
from hyperlocal.core import idempotency, jobs, ledger, stored_inputs
from hyperlocal.core.catalog import InputType, ModelEntry
from hyperlocal.core.jobs import JobStatus, JobView, view
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.pricing import price
from hyperlocal.core.retention import job_retention
from hyperlocal.core.services import Services
from hyperlocal.core.validation import media_fields, validate_inputs
from hyperlocal.core.work import WorkerSlot
from hyperlocal.engines.base import Category, InputValue, MediaInput, MediaKind
from hyperlocal.errors import EngineUnavailableError, HyperlocalError, InsufficientCreditsError
from hyperlocal.store import jobs as store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.tables import Job

__all__ = ["SLOT_WAIT_S", "SYNC_MARGIN_S", "SubmitRequest", "generate", "new_job_id", "submit"]

# A synchronous request waits this long past its model's timeout before answering 202.
SYNC_MARGIN_S = 5.0
# ... and at most this long for a free worker slot before its job is queued instead.
SLOT_WAIT_S = 2.0

_MEDIA_KIND = {
    InputType.IMAGE: MediaKind.IMAGE,
    InputType.IMAGES: MediaKind.IMAGE,
    InputType.AUDIO: MediaKind.AUDIO,
    InputType.VIDEO: MediaKind.VIDEO,
}


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    key: KeyInfo
    model: str
    categories: tuple[Category, ...]
    inputs: Mapping[str, object]
    webhook_url: str | None = None
    idempotency_key: str | None = None
    retention: float | None = None  # seconds: shortens the server's output retention
    # Seconds (``X-Start-Deadline``): the job fails, refunded, if it has not started by then.
    start_deadline: float | None = None

    def fingerprint(self) -> str:
        cats = [c.value for c in self.categories]
        return idempotency.fingerprint(
            self.model, cats, self.inputs, self.webhook_url, self.retention
        )


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


async def submit(svc: Services, req: SubmitRequest) -> JobView:
    """Create a paid, queued job, or raise before anything is charged.

    With an idempotency key, an identical earlier request's job is returned instead.
    """
    return (await _submit(svc, req, here=False)).job


async def generate(svc: Services, req: SubmitRequest) -> JobView:
    """Submit and wait for the result, up to the model's timeout (plus a margin); the job as
    it stands then.

    A valid request waits up to ``SLOT_WAIT_S`` for a free worker slot in this process (first
    come, first served, with the queue's own jobs). With one, its job is created already
    claimed and runs in this request's own task; otherwise it goes through the queue like any
    other job. Either way the client waits for the same result.
    """
    timeout = svc.catalog.get(req.model, *req.categories).timeout_s + SYNC_MARGIN_S
    submitted = await _submit(svc, req, here=True)
    if submitted.slot is not None and submitted.claimed is not None:
        done = await submitted.slot.run(submitted.claimed, timeout)
    else:
        done = await svc.queue.wait(submitted.job.id, timeout)
    return done or await jobs.get_job(svc.db, req.key, submitted.job.id)


@dataclass(frozen=True, slots=True)
class _Submitted:
    job: JobView
    claimed: Job | None = None  # created running under ``slot``'s lease, to run here
    slot: WorkerSlot | None = None


async def _submit(svc: Services, req: SubmitRequest, *, here: bool) -> _Submitted:
    if req.idempotency_key:
        earlier = await _earlier_job(svc, req)
        if earlier is not None:
            return _Submitted(earlier)
    try:
        return await _submit_new(svc, req, here=here)
    except InsufficientCreditsError:
        svc.metrics.insufficient_credits()
        raise
    except IntegrityError:
        # A concurrent request with the same idempotency key committed first.
        earlier = await _earlier_job(svc, req) if req.idempotency_key else None
        if earlier is None:
            raise
        return _Submitted(earlier)


async def _earlier_job(svc: Services, req: SubmitRequest) -> JobView | None:
    assert req.idempotency_key
    async with svc.db.transaction() as session:
        job_id = await idempotency.lookup(
            session, req.key.id, req.idempotency_key, req.fingerprint()
        )
        row = await store.get(session, job_id) if job_id else None
    return view(row) if row is not None else None


async def _submit_new(svc: Services, req: SubmitRequest, *, here: bool) -> _Submitted:
    entry = svc.catalog.get(req.model, *req.categories)
    if not svc.engines.available(entry.engine):
        raise EngineUnavailableError(entry.engine)
    params = validate_inputs(entry, req.inputs)
    await _refuse_if_short(svc, req.key, price(entry, params))
    if req.webhook_url:
        await svc.fetcher.check_url("webhook_url", req.webhook_url)
    media = await _fetch_media(svc, entry, params)
    credits = price(entry, params, media_seconds=_media_seconds(media))
    job = _new_job(req, entry, params, credits)
    job.retention_s = job_retention(svc.settings.output_retention, req.retention)
    written: list[str] = []
    try:
        job.inputs = await stored_inputs.store_inputs(svc.private, job.id, media, written)
        return await _create(svc, req, job, here=here)
    except BaseException as exc:
        unsure = not isinstance(exc, _NOT_COMMITTED)
        await stored_inputs.discard(svc.db, svc.private, job.id, written, unsure=unsure)
        raise


# Raised by a submit that certainly did not commit (a refusal, a rolled-back conflict).
_NOT_COMMITTED = (HyperlocalError, IntegrityError)


async def _refuse_if_short(svc: Services, key: KeyInfo, least: int) -> None:
    """402 before any input is fetched or decoded, for a key that cannot pay the least this
    request can cost (its price before the media's length is known). The balance cached at
    authentication only says when to look: a grant made through another process may not have
    reached this one's cache, so a key that it shows short is read again."""
    if key.credits >= least:
        return
    async with svc.db.read() as session:
        available = await ledger_store.balance(session, key.id)
    if available < least:
        raise InsufficientCreditsError(least, available)


async def _create(svc: Services, req: SubmitRequest, job: Job, *, here: bool) -> _Submitted:
    slot = await svc.queue.reserve_slot(_slot_wait(job)) if here else None
    try:
        claimed = await _commit(svc, req, job, slot)
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    _count(svc, job, claimed=claimed)
    if claimed:
        return _Submitted(view(job), job, slot)
    if slot is not None:
        slot.release()
    await svc.queue.enqueue(job.id, job.model, job.priority)
    return _Submitted(view(job))


def _slot_wait(job: Job) -> float:
    """How long a synchronous call waits for a slot: ``SLOT_WAIT_S``, but never past its
    start deadline (a job claimed by its slot starts when the slot frees)."""
    if job.start_deadline_at is None:
        return SLOT_WAIT_S
    return max(0.0, min(SLOT_WAIT_S, job.start_deadline_at - time.time()))


def _count(svc: Services, job: Job, *, claimed: bool) -> None:
    """Tell the metrics of a job just committed (and, ``claimed``, started)."""
    svc.metrics.submitted(job.model, job.category, job.credits)
    if claimed and job.started_at is not None:
        svc.metrics.started(job.model, job.started_at - job.created_at)


async def _commit(svc: Services, req: SubmitRequest, job: Job, slot: WorkerSlot | None) -> bool:
    """Charge and create the job; claimed for ``slot`` if the key may run another job now.
    Whether it was claimed."""
    if slot is None and not req.idempotency_key:
        await _create_paid(svc, req, job)
        return False
    async with svc.db.transaction() as session:
        known_cap = req.key.max_running_jobs
        claimed = slot is not None and await store.below_running_cap(session, req.key.id, known_cap)
        if slot is not None and claimed:
            for name, value in slot.claim_values(time.time()).items():
                setattr(job, name, value)
        await store.insert(session, job)
        if req.idempotency_key:
            await idempotency.remember(
                session, req.key.id, req.idempotency_key, req.fingerprint(), job.id
            )
        await ledger.charge(session, req.key.id, job.credits, job.id)  # last: see its docstring
    return claimed


async def _create_paid(svc: Services, req: SubmitRequest, job: Job) -> None:
    """A queued job with nothing else to write alongside it: the store charges and creates it
    as one unit, in the way that locks the key's row the shortest on its database
    (``store.jobs.create_paid``)."""
    if await store.create_paid(svc.db, job, time.time()) is None:
        async with svc.db.read() as session:
            available = await ledger_store.balance(session, req.key.id)
        raise InsufficientCreditsError(job.credits, available)


def _new_job(
    req: SubmitRequest, entry: ModelEntry, params: Mapping[str, InputValue], credits: int
) -> Job:
    now = time.time()
    deadline = None if req.start_deadline is None else now + req.start_deadline
    return Job(
        id=new_job_id(),
        key_id=req.key.id,
        model=entry.id,
        category=entry.category.value,
        status=JobStatus.QUEUED.value,
        params={k: _redact_data_uri(v) for k, v in params.items()},
        credits=credits,
        result_id=_result_id(entry.category),
        webhook_url=req.webhook_url,
        timeout_s=entry.timeout_s,
        progress=0.0,
        attempts=0,
        created_at=now,
        traceparent=tracing.traceparent(),  # the submitting request's span, if tracing is on
        priority=req.key.priority,
        start_deadline_at=deadline,
    )


def _result_id(category: Category) -> str | None:
    # Image results carry the hosted API's res_ id; other media are named after the job.
    if category in (Category.IMAGE, Category.IMAGE_EDIT):
        return "res_" + secrets.token_hex(12)
    return None


def _redact_data_uri(value: InputValue) -> InputValue:
    """Inline media (data: URIs) live in storage, not in the jobs table."""
    if isinstance(value, str) and value.startswith("data:"):
        return "data:"
    if isinstance(value, list):
        return ["data:" if v.startswith("data:") else v for v in value]
    return value


async def _fetch_media(
    svc: Services, entry: ModelEntry, params: Mapping[str, InputValue]
) -> dict[str, list[MediaInput]]:
    fetched: dict[str, list[MediaInput]] = {}
    for name, kind in media_fields(entry).items():
        sources = _sources(params.get(name))
        if sources:
            fetched[name] = [
                await svc.fetcher.fetch(
                    _field_name(name, i, kind), src, _MEDIA_KIND[kind], entry.caps
                )
                for i, src in enumerate(sources)
            ]
    return fetched


def _media_seconds(media: Mapping[str, Sequence[MediaInput]]) -> float | None:
    """The input media's length, by their headers, for ``per_minute`` prices (ASR): settled on
    the length decoded when the job completes (``pricing.settled``)."""
    lengths = [item.seconds for items in media.values() for item in items]
    known = [seconds for seconds in lengths if seconds is not None]
    return sum(known) if known else None


def _sources(value: InputValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list) else []


def _field_name(name: str, index: int, kind: InputType) -> str:
    return f"{name}[{index}]" if kind is InputType.IMAGES else name
