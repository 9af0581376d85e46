"""The credit ledger: grant, charge, refund. Each call joins the caller's transaction, so a
charge commits or rolls back together with the job it pays for."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.errors import InputError, InsufficientCreditsError, NotFoundError
from hyperlocal.store import keys as key_store
from hyperlocal.store import ledger as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import LedgerRow

if TYPE_CHECKING:
    from hyperlocal.core.keycache import KeyCache

__all__ = ["EntryKind", "LedgerLine", "charge", "grant", "history", "refund"]


MAX_GRANT = 10**12


class EntryKind(StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class LedgerLine:
    id: int
    kind: EntryKind
    amount: int
    balance_after: int
    job_id: str | None
    note: str
    created_at: float


async def _append(
    session: AsyncSession,
    key_id: str,
    kind: EntryKind,
    amount: int,
    balance: int,
    *,
    job_id: str | None = None,
    note: str = "",
) -> None:
    row: LedgerRow = {
        "key_id": key_id,
        "kind": kind.value,
        "amount": amount,
        "balance_after": balance,
        "job_id": job_id,
        "note": note,
        "created_at": time.time(),
    }
    await store.append(session, row)


async def grant(session: AsyncSession, key_id: str, amount: int, note: str = "") -> int:
    if not 0 < amount <= MAX_GRANT:
        raise InputError("credits", f"must be between 1 and {MAX_GRANT}")
    balance = await store.credit(session, key_id, amount)
    await _append(session, key_id, EntryKind.GRANT, amount, balance, note=note)
    return balance


async def charge(session: AsyncSession, key_id: str, amount: int, job_id: str) -> int:
    """Take ``amount`` for ``job_id``, with its ledger line, or raise
    ``InsufficientCreditsError`` and change nothing.

    On PostgreSQL this locks the key's row until the transaction ends: make it the transaction's
    last statement, so that concurrent charges of one key wait on each other as little as can be.
    """
    balance = await store.charge(session, key_id, amount, job_id, time.time())
    if balance is None:
        raise InsufficientCreditsError(amount, await store.balance(session, key_id))
    return balance


async def refund(
    session: AsyncSession, key_id: str, job_id: str, note: str, *, amount: int | None = None
) -> int | None:
    """Give back the job's charge: in full, or ``amount`` of it (a completed job that cost less
    than it was charged). A no-op if there was none, or it was refunded: a job has at most one
    refund, of at most its charge."""
    charged = await store.entry_for_job(session, job_id, EntryKind.CHARGE.value)
    if charged is None or await store.entry_for_job(session, job_id, EntryKind.REFUND.value):
        return None
    amount = -charged.amount if amount is None else min(amount, -charged.amount)
    balance = await store.credit(session, key_id, amount)
    await _append(session, key_id, EntryKind.REFUND, amount, balance, job_id=job_id, note=note)
    return balance


async def grant_to(
    db: Database, key_id: str, amount: int, note: str = "", cache: KeyCache | None = None
) -> int:
    async with db.transaction() as session:
        if await key_store.by_id(session, key_id) is None:
            raise NotFoundError("Key not found")
        balance = await grant(session, key_id, amount, note)
    if cache is not None:
        cache.forget(key_id)  # its balance as of authentication is stale now
    return balance


async def history(
    db: Database, key_id: str, *, limit: int = 50, before_id: int | None = None
) -> list[LedgerLine]:
    async with db.read() as session:
        rows = await store.entries_for_key(session, key_id, limit=limit, before_id=before_id)
    return [
        LedgerLine(
            r.id, EntryKind(r.kind), r.amount, r.balance_after, r.job_id, r.note, r.created_at
        )
        for r in rows
    ]
