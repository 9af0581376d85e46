"""What jobs served through provider routes recorded: usage by model, a job's attempts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.tables import Job

__all__ = ["route_attempts", "usage_by_model"]


async def usage_by_model(session: AsyncSession, since: float) -> list[Row[Any]]:
    """Per model, for jobs created since ``since``: jobs, completed jobs, credits kept (of
    completed jobs), jobs served through a provider, and the providers' reported cost."""
    completed = Job.status == "completed"
    stmt = (
        select(
            Job.model,
            func.count().label("jobs"),
            func.count().filter(completed).label("completed"),
            func.coalesce(func.sum(Job.credits).filter(completed), 0).label("credits"),
            func.count(Job.route_attempts).label("routed"),
            func.sum(Job.provider_cost_usd).label("provider_cost_usd"),
        )
        .where(Job.created_at >= since, Job.category != "chat")
        .group_by(Job.model)
        .order_by(Job.model)
    )
    rows: list[Row[Any]] = list((await session.execute(stmt)).all())  # type: ignore[arg-type]
    return rows


async def route_attempts(session: AsyncSession, job_id: str) -> list[dict[str, Any]] | None:
    """The job's recorded route attempts (by its id, or an image's ``res_`` id); None when
    there is no such job."""
    column = Job.result_id if job_id.startswith("res_") else Job.id
    row = (
        await session.execute(select(Job.id, Job.route_attempts).where(column == job_id))
    ).one_or_none()
    return None if row is None else list(row.route_attempts or [])
