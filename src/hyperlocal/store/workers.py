"""What the workers view reads from the jobs table. None of these commit."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.tables import Job

__all__ = ["running_by_model"]


async def running_by_model(session: AsyncSession, owner_prefix: str) -> dict[str, int]:
    """Jobs running under a lease whose owner starts with ``owner_prefix``, by model."""
    stmt = (
        select(Job.model, func.count())
        .where(Job.status == "running", Job.lease_owner.startswith(owner_prefix, autoescape=True))
        .group_by(Job.model)
    )
    return {model: int(n) for model, n in (await session.execute(stmt)).all()}
