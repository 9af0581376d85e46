"""``Idempotency-Key``: a replay within 24 h returns the original job and charges nothing;
the same key with a different request is a conflict.

The record is inserted in the same transaction as the charge and the job, and the unique
(key, idempotency key) constraint settles races: the loser's transaction rolls back whole.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.errors import IdempotencyConflictError
from hyperlocal.store.tables import IdempotencyRecord

__all__ = ["WINDOW_S", "fingerprint", "lookup", "remember"]

WINDOW_S = 24 * 3600


def fingerprint(
    model: str,
    categories: list[str],
    inputs: Mapping[str, object],
    webhook: str | None,
    retention: float | None = None,
) -> str:
    request: dict[str, object] = {
        "model": model,
        "categories": categories,
        "inputs": inputs,
        "webhook": webhook,
    }
    if retention is not None:  # absent otherwise: earlier requests keep their fingerprints
        request["retention"] = retention
    canonical = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def lookup(
    session: AsyncSession, key_id: str, idem_key: str, request_hash: str
) -> str | None:
    """The job id of an earlier identical request, or None; raise on a different request."""
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.key_id == key_id, IdempotencyRecord.idem_key == idem_key
        )
    )
    if record is None:
        return None
    if record.created_at < time.time() - WINDOW_S:
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        await session.flush()
        return None
    if record.request_hash != request_hash:
        raise IdempotencyConflictError
    return record.job_id


async def remember(
    session: AsyncSession, key_id: str, idem_key: str, request_hash: str, job_id: str
) -> None:
    session.add(
        IdempotencyRecord(
            key_id=key_id,
            idem_key=idem_key,
            request_hash=request_hash,
            job_id=job_id,
            created_at=time.time(),
        )
    )
    await session.flush()
