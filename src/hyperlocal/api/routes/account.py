"""The caller's own key: balance, limits, and ledger."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hyperlocal.api.deps import CurrentKey, Svc
from hyperlocal.api.schemas import AccountResponse
from hyperlocal.core import keys, ledger

router = APIRouter(tags=["account"])


@router.get("/account", response_model=AccountResponse)
async def account(key: CurrentKey, svc: Svc) -> AccountResponse:
    fresh = await keys.get_key(svc.db, key.id)
    return AccountResponse(
        keyId=fresh.id,
        keyName=fresh.name,
        credits=fresh.credits,
        rateLimit=fresh.rate_limit,
        maxRunningJobs=fresh.max_running_jobs,
        admin=fresh.is_admin,
        maxUploadBytes=svc.settings.fetch_max_bytes,
        maxRequestBytes=svc.settings.max_body_bytes,
    )


@router.get("/account/ledger")
async def account_ledger(
    key: CurrentKey,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    lines = await ledger.history(svc.db, key.id, limit=limit, before_id=before)
    return {"data": [ledger_line(line) for line in lines]}


def ledger_line(line: ledger.LedgerLine) -> dict[str, Any]:
    return {
        "id": line.id,
        "kind": line.kind.value,
        "amount": line.amount,
        "balanceAfter": line.balance_after,
        "jobId": line.job_id,
        "note": line.note,
        "created": int(line.created_at),
    }
