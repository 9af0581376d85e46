"""Reads the database as an auditor would: jobs, and the ledger of every key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import func, select

from hyperlocal.store.db import Database
from hyperlocal.store.tables import ApiKey, Job, LedgerEntry


async def jobs(db: Database, ids: Sequence[str]) -> dict[str, Job]:
    async with db.read() as session:
        rows = (await session.scalars(select(Job).where(Job.id.in_(ids)))).all()
    return {row.id: row for row in rows}


async def count_terminal(db: Database, ids: Sequence[str]) -> int:
    stmt = select(func.count()).where(Job.id.in_(ids), Job.status.not_in(("queued", "running")))
    async with db.read() as session:
        return int(await session.scalar(stmt) or 0)


async def jobs_of(db: Database, key_ids: Sequence[str]) -> list[Job]:
    async with db.read() as session:
        return list((await session.scalars(select(Job).where(Job.key_id.in_(key_ids)))).all())


async def assert_exactly_once(db: Database, key_ids: Sequence[str], expected: int) -> list[Job]:
    """The keys' ``expected`` jobs all completed, each charged exactly once and never refunded,
    and every key's balance is both the sum of its ledger and its grants minus its jobs' credits.
    """
    rows = await jobs_of(db, key_ids)
    assert len(rows) == expected
    assert Counter(r.status for r in rows) == {"completed": expected}
    async with db.read() as session:
        entries = (
            await session.scalars(select(LedgerEntry).where(LedgerEntry.key_id.in_(key_ids)))
        ).all()
        keys = (await session.scalars(select(ApiKey).where(ApiKey.id.in_(key_ids)))).all()
    per_job = Counter((e.job_id, e.kind) for e in entries if e.job_id)
    for row in rows:
        assert per_job[(row.id, "charge")] == 1, row.id
        assert per_job[(row.id, "refund")] == 0, row.id
    for key in keys:
        own = [e for e in entries if e.key_id == key.id]
        granted = sum(e.amount for e in own if e.kind == "grant")
        spent = sum(r.credits for r in rows if r.key_id == key.id)
        assert key.credits == sum(e.amount for e in own) == granted - spent
    return rows
