"""Credit balance and ledger queries. None of these commit.

The balance column moves only through ``debit``/``credit``, each a single conditional UPDATE:
the row lock (PostgreSQL) or the write lock (SQLite) makes check-and-subtract atomic, so the
balance cannot go below zero under any concurrency. The CHECK constraint is the backstop.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.store.db import on_sqlite
from hyperlocal.store.prepared import execute, prepared
from hyperlocal.store.tables import ApiKey, LedgerEntry, LedgerRow, insert_stmt, table

__all__ = [
    "CHARGE_CTES",
    "append",
    "balance",
    "charge",
    "credit",
    "debit",
    "entries_for_key",
    "entry_for_job",
    "total",
]


_keys = table(ApiKey).c
# Built once, with bind parameters: Core statements on the table skip the ORM's per-call work,
# and their compiled form is cached.
_DEBIT = prepared(
    update(table(ApiKey))
    .where(_keys.id == bindparam("key_id"), _keys.credits >= bindparam("amount"))
    .values(credits=_keys.credits - bindparam("amount"))
    .returning(_keys.credits)
)
_CREDIT = prepared(
    update(table(ApiKey))
    .where(_keys.id == bindparam("key_id"))
    .values(credits=_keys.credits + bindparam("amount"))
    .returning(_keys.credits)
)


async def debit(session: AsyncSession, key_id: str, amount: int) -> int | None:
    """Subtract ``amount`` if the balance covers it; the new balance, or None if it does not."""
    result = await execute(session, _DEBIT, {"key_id": key_id, "amount": amount})
    balance = result.scalar_one_or_none()
    return None if balance is None else int(balance)


# PostgreSQL: the debit and its ledger line in one statement, so that the key's row (which
# every charge of the key updates) stays locked for one round trip and the commit, no longer.
# ``CHARGE_CTES`` is shared with ``jobs.create_paid``, which adds the job row to the same
# statement; ``debited`` holds the new balance (no row: the balance did not cover the amount).
CHARGE_CTES = """
    debited AS (
        UPDATE api_keys SET credits = credits - :p_amount
        WHERE id = :p_key_id AND credits >= :p_amount
        RETURNING credits
    ), charged AS (
        INSERT INTO ledger (key_id, kind, amount, balance_after, job_id, note, created_at)
        SELECT :p_key_id, 'charge', -:p_amount, credits, :p_job_id, '', :p_now FROM debited
    )
"""
_CHARGE_PG = text(f"WITH {CHARGE_CTES} SELECT credits FROM debited")


async def charge(
    session: AsyncSession, key_id: str, amount: int, job_id: str, now: float
) -> int | None:
    """Debit ``amount`` for ``job_id`` and write its ``charge`` line: the new balance, or None
    (nothing written) if the balance does not cover ``amount``. One statement on PostgreSQL
    (``CHARGE_CTES``); on SQLite, whose writer holds the whole database, the debit and then
    the line."""
    if not on_sqlite(session):
        params = {"p_key_id": key_id, "p_amount": amount, "p_job_id": job_id, "p_now": now}
        balance = (await session.execute(_CHARGE_PG, params)).scalar_one_or_none()
        return None if balance is None else int(balance)
    balance = await debit(session, key_id, amount)
    if balance is not None:
        line: LedgerRow = {
            "key_id": key_id,
            "kind": "charge",
            "amount": -amount,
            "balance_after": balance,
            "job_id": job_id,
            "note": "",
            "created_at": now,
        }
        await append(session, line)
    return balance


async def credit(session: AsyncSession, key_id: str, amount: int) -> int:
    result = await execute(session, _CREDIT, {"key_id": key_id, "amount": amount})
    return int(result.scalar_one())


async def balance(session: AsyncSession, key_id: str) -> int:
    return int(await session.scalar(select(ApiKey.credits).where(ApiKey.id == key_id)) or 0)


async def append(session: AsyncSession, row: LedgerRow) -> None:
    """One Core INSERT of the line's column values; the database numbers the entry."""
    await execute(session, insert_stmt(LedgerEntry), [row])


async def entry_for_job(session: AsyncSession, job_id: str, kind: str) -> LedgerEntry | None:
    return await session.scalar(
        select(LedgerEntry).where(LedgerEntry.job_id == job_id, LedgerEntry.kind == kind)
    )


async def total(session: AsyncSession, key_id: str) -> int:
    stmt = select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.key_id == key_id
    )
    return int(await session.scalar(stmt) or 0)


async def entries_for_key(
    session: AsyncSession, key_id: str, *, limit: int, before_id: int | None = None
) -> Sequence[LedgerEntry]:
    stmt = select(LedgerEntry).where(LedgerEntry.key_id == key_id)
    if before_id is not None:
        stmt = stmt.where(LedgerEntry.id < before_id)
    return (await session.scalars(stmt.order_by(LedgerEntry.id.desc()).limit(limit))).all()
