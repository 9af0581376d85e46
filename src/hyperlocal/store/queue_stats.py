"""The ended jobs that queue and latency statistics read. None of these commit.

Both queries select ended jobs created since a time: ``ix_jobs_status_created`` serves that
filter, where one on ``finished_at`` would scan the table. Percentiles are worked out by the
caller, from rows, so that the SQL stays the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.tables import Job

__all__ = ["EndedJob", "ended_counts", "ended_jobs"]

_ENDED = ("completed", "failed", "canceled")


@dataclass(frozen=True, slots=True)
class EndedJob:
    model: str
    created_at: float
    started_at: float | None  # None: canceled before it ran
    finished_at: float


async def ended_counts(session: AsyncSession, since: float) -> list[tuple[str, str, int]]:
    """(model, status, count) of the jobs created since ``since`` that have ended."""
    stmt = (
        select(Job.model, Job.status, func.count())
        .where(Job.status.in_(_ENDED), Job.created_at >= since)
        .group_by(Job.model, Job.status)
    )
    return [(model, status, int(n)) for model, status, n in (await session.execute(stmt)).all()]


async def ended_jobs(session: AsyncSession, since: float, per_model: int) -> list[EndedJob]:
    """The times of the jobs created since ``since`` that have ended: of each model, the newest
    ``per_model`` only (a window function, which SQLite has had since 3.25)."""
    rank = func.row_number().over(partition_by=Job.model, order_by=Job.created_at.desc())
    ranked = (
        select(Job.model, Job.created_at, Job.started_at, Job.finished_at, rank.label("rank"))
        .where(
            Job.status.in_(_ENDED),
            Job.created_at >= since,
            Job.finished_at.is_not(None),
        )
        .subquery()
    )
    stmt = select(ranked.c.model, ranked.c.created_at, ranked.c.started_at, ranked.c.finished_at)
    rows = (await session.execute(stmt.where(ranked.c.rank <= per_model))).all()
    return [EndedJob(m, created, started, finished) for m, created, started, finished in rows]
