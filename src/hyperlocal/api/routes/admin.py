"""Key and credit management, and storage usage, for the admin key only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hyperlocal.api.deps import AdminKey, Svc
from hyperlocal.api.routes.account import ledger_line
from hyperlocal.core import keys, ledger, providers, queue_stats, storage_usage
from hyperlocal.core.keys import KeyInfo, KeySpec

router = APIRouter(prefix="/admin", tags=["admin"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    credits: int = Field(0, ge=0, le=10**12)
    rate_limit: int | None = Field(None, ge=1, le=2**31 - 1)
    max_running_jobs: int | None = Field(None, ge=1, le=100_000)
    admin: bool = False
    priority: int = Field(
        0, ge=0, le=2, description="0 normal, 1 high, 2 highest: starts first in a model's queue"
    )


class CreditGrant(BaseModel):
    credits: int = Field(gt=0, le=10**12)
    note: str = Field("", max_length=200)


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "admin": info.is_admin,
        "credits": info.credits,
        "rateLimit": info.rate_limit,
        "maxRunningJobs": info.max_running_jobs,
        "created": int(info.created_at),
        "revoked": info.revoked,
        "priority": info.priority,
    }


@router.get("/keys")
async def list_keys(_: AdminKey, svc: Svc) -> dict[str, Any]:
    return {"data": [key_json(k) for k in await keys.list_keys(svc.db)]}


@router.post("/keys", status_code=201)
async def create_key(body: KeyCreate, _: AdminKey, svc: Svc) -> JSONResponse:
    spec = KeySpec.with_defaults(
        svc.settings,
        body.name,
        body.credits,
        rate_limit=body.rate_limit,
        max_running_jobs=body.max_running_jobs,
        is_admin=body.admin,
        priority=body.priority,
    )
    issued = await keys.create_key(svc.db, spec)
    payload = {"key": issued.key, "webhookSecret": issued.webhook_secret, **key_json(issued.info)}
    return JSONResponse(payload, status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/keys/{key_id}")
async def get_key(key_id: str, _: AdminKey, svc: Svc) -> dict[str, Any]:
    return key_json(await keys.get_key(svc.db, key_id))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, _: AdminKey, svc: Svc) -> dict[str, Any]:
    await keys.revoke(svc.db, key_id, svc.key_cache)
    return key_json(await keys.get_key(svc.db, key_id))


@router.post("/keys/{key_id}/credits")
async def grant_credits(key_id: str, body: CreditGrant, _: AdminKey, svc: Svc) -> dict[str, Any]:
    await ledger.grant_to(svc.db, key_id, body.credits, body.note or "admin grant", svc.key_cache)
    return key_json(await keys.get_key(svc.db, key_id))


@router.get("/keys/{key_id}/ledger")
async def key_ledger(
    key_id: str, _: AdminKey, svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    await keys.get_key(svc.db, key_id)
    return {"data": [ledger_line(x) for x in await ledger.history(svc.db, key_id, limit=limit)]}


@router.get("/storage")
async def storage(_: AdminKey, svc: Svc) -> dict[str, Any]:
    """Bytes and files stored, by kind (images, videos, audio, 3d, inputs, other) and by age
    (<1h, <1d, <7d, older)."""
    usage = await storage_usage.measure(svc.storage, svc.private, svc.clock())
    return usage.as_dict()


@router.get("/models")
async def model_evidence(_: AdminKey, svc: Svc) -> dict[str, Any]:
    """Where each model's id and price come from: the catalogue's notes, for operators only
    (``GET /v1/models`` shows users a plain description)."""
    return {
        "data": [
            {
                "id": e.id,
                "name": e.name,
                "category": e.category.value,
                "evidence": e.evidence.value,
                "evidenceNote": e.evidence_note,
                "priceNote": e.price.note,
                "engine": e.engine,
                "routes": [r.to for r in e.routes],
                "activeRoute": svc.router.active(e),
            }
            for e in svc.catalog
        ]
    }


@router.get("/providers")
async def provider_list(_: AdminKey, svc: Svc) -> dict[str, Any]:
    """Each installed provider: whether a key is configured (masked), its base URL, and its
    circuit breaker's state."""
    return {
        "data": [
            {
                "name": p.name,
                "configured": p.configured,
                "keyEnv": p.key_env,
                "key": p.key,
                "baseUrl": p.base_url,
                "circuit": p.circuit,
            }
            for p in providers.provider_statuses(svc)
        ]
    }


@router.get("/usage")
async def usage(
    _: AdminKey, svc: Svc, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24 * 30
) -> dict[str, Any]:
    """Credits kept against what providers reported they cost, by model, over ``hours``."""
    rows = await providers.usage(svc, svc.clock() - hours * 3600)
    return {
        "hours": hours,
        "data": [
            {
                "model": u.model,
                "jobs": u.jobs,
                "completed": u.completed,
                "credits": u.credits,
                "creditsUsd": u.credits / 100,
                "routedJobs": u.routed,
                "providerCostUsd": u.provider_cost_usd,
            }
            for u in rows
        ],
    }


@router.get("/jobs/{job_id}/attempts")
async def job_attempts(job_id: str, _: AdminKey, svc: Svc) -> dict[str, Any]:
    """Every route a job's run tried: provider, its request id, outcome, latency, cost."""
    return {"id": job_id, "data": await providers.attempts_of(svc, job_id)}


@router.get("/queue")
async def queue(
    _: AdminKey, svc: Svc, hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24
) -> dict[str, Any]:
    """By model: the jobs queued and running now (the numbers of the ``hyperlocal_jobs_queued``
    and ``hyperlocal_jobs_running`` gauges) and, of the jobs created in the last ``hours`` that
    have ended, how many, and the seconds they waited and ran (p50, p99)."""
    since = svc.clock() - hours * 3600
    rows = await queue_stats.by_model(svc.db, (e.id for e in svc.catalog), since)
    return {
        "hours": hours,
        "sampleLimit": queue_stats.SAMPLE_LIMIT,
        "data": [
            {
                "model": m.model,
                "queued": m.queued,
                "running": m.running,
                "finished": m.finished,
                "completed": m.completed,
                "failed": m.failed,
                "canceled": m.canceled,
                "sampled": m.sampled,
                "queueSeconds": m.queue_s and {"p50": m.queue_s.p50, "p99": m.queue_s.p99},
                "runSeconds": m.run_s and {"p50": m.run_s.p50, "p99": m.run_s.p99},
            }
            for m in rows
        ],
    }


@router.get("/workers")
async def workers(_: AdminKey, svc: Svc) -> dict[str, Any]:
    """Each worker process (a ``hyperlocal worker``, or this server's in-process lanes): its
    devices' memory used and budget, the models loaded on each with their size and idle
    seconds, and its running jobs by model; then every model's jobs queued and running."""
    from hyperlocal.core import workers as workers_view

    return (await workers_view.overview(svc)).as_dict()
