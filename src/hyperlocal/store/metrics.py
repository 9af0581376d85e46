"""The counts that metrics read at scrape time. None of these commit."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.tables import Job, WebhookDelivery

__all__ = ["active_jobs", "webhook_backlog"]

_ACTIVE = ("queued", "running")
_PENDING = "pending"


async def active_jobs(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(model, status, count) of the jobs queued or running."""
    stmt = (
        select(Job.model, Job.status, func.count())
        .where(Job.status.in_(_ACTIVE))
        .group_by(Job.model, Job.status)
    )
    return [(model, status, int(n)) for model, status, n in (await session.execute(stmt)).all()]


async def webhook_backlog(session: AsyncSession, now: float) -> tuple[int, int]:
    """Undelivered webhook deliveries: those due now, and all still pending (retries
    scheduled later included)."""
    due = func.count().filter(WebhookDelivery.next_attempt_at <= now)
    stmt = select(due, func.count()).where(WebhookDelivery.status == _PENDING)
    row = (await session.execute(stmt)).one()
    return int(row[0]), int(row[1])
