"""Retention queries: which jobs' outputs and inputs are due for deletion, marking them
deleted, and finding the job an output belonged to. None of these commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Row, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.tables import Job, table

__all__ = ["inputs_deleted", "inputs_due", "output_owner", "outputs_deleted", "outputs_due"]

_jobs = table(Job)
_c = _jobs.c


async def outputs_due(session: AsyncSession, now: float, limit: int) -> Sequence[Row[Any, Any]]:
    """Jobs whose outputs expired by ``now`` and are not deleted yet: (id, output_keys)."""
    stmt = (
        select(_c.id, _c.output_keys)
        .where(_c.expired_at.is_(None), _c.expires_at <= now)
        .order_by(_c.expires_at)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def outputs_deleted(session: AsyncSession, job_id: str, now: float) -> bool:
    """Mark the job's outputs deleted at ``now``; False if another sweep marked them first."""
    stmt = update(_jobs).where(_c.id == job_id, _c.expired_at.is_(None)).values(expired_at=now)
    result = cast(CursorResult[Any], await session.execute(stmt))
    return bool(result.rowcount)


async def inputs_due(session: AsyncSession, now: float, limit: int) -> Sequence[Row[Any, Any]]:
    """Jobs whose stored inputs are due for deletion by ``now``: (id, inputs)."""
    stmt = (
        select(_c.id, _c.inputs)
        .where(_c.inputs_expire_at <= now)
        .order_by(_c.inputs_expire_at)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def inputs_deleted(session: AsyncSession, job_id: str) -> None:
    """The job's inputs are deleted: nothing is due for it any more."""
    await session.execute(update(_jobs).where(_c.id == job_id).values(inputs_expire_at=None))


async def output_owner(session: AsyncSession, stem: str) -> Row[Any, Any, Any] | None:
    """The job named ``stem`` (its id, or its image result's ``res_`` id), as (output_keys,
    expires_at, expired_at)."""
    stmt = select(_c.output_keys, _c.expires_at, _c.expired_at).where(
        or_(_c.id == stem, _c.result_id == stem)
    )
    return (await session.execute(stmt.limit(1))).one_or_none()
