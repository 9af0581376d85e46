"""API key queries. None of these commit.

A key's row is never deleted (revoking sets ``revoked_at``), and its ``webhook_secret`` is
written once, with the row, and never updated: the webhook dispatcher keeps secrets it has
read on that promise. Rotating secrets would have to tell it (``WebhookDispatcher._secret``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.prepared import execute, prepared
from hyperlocal.store.tables import ApiKey, table

__all__ = [
    "by_hash",
    "by_id",
    "count",
    "insert",
    "list_all",
    "running_cap",
    "set_revoked",
    "update_limits",
]


async def insert(session: AsyncSession, key: ApiKey) -> None:
    session.add(key)
    await session.flush()


async def by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def by_id(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_all(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)


async def set_revoked(session: AsyncSession, key_id: str, at: float) -> bool:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def update_limits(
    session: AsyncSession, key_id: str, *, rate_limit: int | None, max_running_jobs: int | None
) -> None:
    values: dict[str, int] = {}
    if rate_limit is not None:
        values["rate_limit"] = rate_limit
    if max_running_jobs is not None:
        values["max_running_jobs"] = max_running_jobs
    if values:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))


_RUNNING_CAP = prepared(
    select(table(ApiKey).c.max_running_jobs)
    .where(table(ApiKey).c.id == bindparam("key_id"))
    .with_for_update()
)


async def running_cap(session: AsyncSession, key_id: str) -> int:
    """The key's running-jobs cap, its row locked until the transaction ends (PostgreSQL;
    SQLite's writer holds the whole database), so that claims of one key count one at a time.
    0 for a key that does not exist."""
    return int((await execute(session, _RUNNING_CAP, {"key_id": key_id})).scalar() or 0)
