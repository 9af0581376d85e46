"""The balance never goes negative: 50 concurrent submits from one key, on a real server,
on SQLite and on PostgreSQL. The ledger must sum to the balance."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.db import Database
from tests.support import TEST_ENGINES, serve_in_thread

PRICE = 4  # gemini-3-1-flash-t2i
AFFORDABLE = 12


async def _submit_all(
    base: str, key: str, count: int, *, asynchronous: bool = False
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        headers = {"Authorization": f"Bearer {key}"}
        if asynchronous:  # on PostgreSQL, the single-statement charge and job row
            headers["Prefer"] = "respond-async"
        body = {"prompt": "race", "aspect_ratio": "1:1"}
        return await asyncio.gather(
            *(client.post("/v1/images/generate", json=body, headers=headers) for _ in range(count))
        )


async def _create_key(settings: Settings) -> keys.IssuedKey:
    db = await open_database(settings)
    try:
        return await keys.create_key(db, KeySpec("race", PRICE * AFFORDABLE, 1000, 100))
    finally:
        await db.aclose()


async def _balance_and_ledger(settings: Settings, key_id: str) -> tuple[int, int]:
    db = Database(settings.resolved_database_url())
    try:
        async with db.read() as session:
            return await ledger_store.balance(session, key_id), await ledger_store.total(
                session, key_id
            )
    finally:
        await db.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_fifty_concurrent_submits_never_overdraw(
    db_settings: Settings, asynchronous: bool
) -> None:
    issued = await _create_key(db_settings)
    with serve_in_thread(create_app(db_settings, engines=TEST_ENGINES)) as base:
        responses = await _submit_all(base, issued.key, 50, asynchronous=asynchronous)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202 if asynchronous else 200) == AFFORDABLE, statuses
    assert statuses.count(402) == 50 - AFFORDABLE, statuses
    for response in responses:
        if response.status_code == 402:
            assert response.json()["error"] == "Insufficient credits"
            assert response.json()["required"] == PRICE
            assert 0 <= response.json()["available"] < PRICE
    balance, ledger_sum = await _balance_and_ledger(db_settings, issued.info.id)
    assert balance == 0
    assert ledger_sum == balance
    assert await _charged_jobs(db_settings, issued.info.id) == AFFORDABLE


async def _charged_jobs(settings: Settings, key_id: str) -> int:
    """Jobs of the key that have a charge line: every job, if charge and job are one unit."""
    db = Database(settings.resolved_database_url())
    try:
        async with db.read() as session:
            jobs = await job_store.list_for_key(session, key_id, limit=1000, before=None)
            charged = [j for j in jobs if await ledger_store.entry_for_job(session, j.id, "charge")]
        assert len(charged) == len(jobs)
        return len(jobs)
    finally:
        await db.aclose()
