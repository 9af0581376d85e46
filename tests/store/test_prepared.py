"""Prepared statements (``store.prepared``): in an SQLite write transaction they run straight on
sqlite3, with the same values, results and errors as through SQLAlchemy; a sync image request
makes no statement through SQLAlchemy at all; and once the ORM joins a transaction, everything
in it goes through the session, in order, and commits or rolls back as one."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from hyperlocal.core.keys import IssuedKey, KeySpec, create_key
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store import prepared
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job, LedgerRow, WebhookDelivery
from tests.conftest import KeyFactory, auth, services_of


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hyperlocal.db'}")
    await database.migrate()
    try:
        yield database
    finally:
        await database.aclose()


@contextmanager
def through_sqlalchemy(db: Database) -> Iterator[list[str]]:
    """The statements SQLAlchemy sends on the writer engine while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def _key(db: Database, credits: int = 100) -> IssuedKey:
    return await create_key(db, KeySpec("prepared", credits, 1000, 15))


def _job(key_id: str, **values: Any) -> Job:
    fields: dict[str, Any] = {
        "id": "job_" + str(time.monotonic_ns()),
        "key_id": key_id,
        "model": "m",
        "category": "image",
        "status": "queued",
        "params": {"prompt": "ünïcode", "n": [1, 2]},
        "inputs": {},
        "credits": 3,
        "timeout_s": 10.0,
        "progress": 0.0,
        "attempts": 0,
        "created_at": time.time(),
    }
    return Job(**(fields | values))


async def test_bypass_and_sqlalchemy_paths_agree(db: Database) -> None:
    key = await _key(db)
    job = _job(key.info.id)
    with through_sqlalchemy(db) as seen:
        async with db.transaction() as session:
            await job_store.insert(session, job)
            claimed = await job_store.claim(session, job.id, "w1", time.time(), 30.0)
            running = await job_store.count_running_for_key(session, key.info.id)
            balance = await ledger_store.debit(session, key.info.id, 40)
            short = await ledger_store.debit(session, key.info.id, 1000)
            done = await job_store.move(
                session, job.id, ["running"], {"status": "completed", "progress": 1.0}, owner="w1"
            )
            not_owner = await job_store.move(
                session, job.id, ["running"], {"status": "failed"}, owner="w2"
            )
    assert seen == []  # all of it ran straight on sqlite3
    assert claimed is not None and claimed.params == job.params  # JSON in and out
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == ("running", "w1", 1)
    assert (running, balance, short, done, not_owner) == (1, 60, None, True, False)
    async with db.read() as session:  # SQLAlchemy's own path reads what was written
        row = await job_store.get(session, job.id)
        assert row is not None and row.params == job.params
        assert (row.status, row.lease_owner, row.progress) == ("completed", None, 1.0)
        assert await ledger_store.balance(session, key.info.id) == 60


async def test_errors_are_sqlalchemys_and_roll_the_transaction_back(db: Database) -> None:
    key = await _key(db)
    job = _job(key.info.id)
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await ledger_store.debit(session, key.info.id, 5)
            await job_store.insert(session, job)
            await job_store.insert(session, job)  # the same primary key again
    async with db.read() as session:
        assert await job_store.get(session, job.id) is None
        assert await ledger_store.balance(session, key.info.id) == 100
    shared = db._shared
    assert shared is not None and not shared.get().in_transaction


async def test_the_orm_joins_the_transaction_in_order(db: Database) -> None:
    """A pending ORM object is flushed before a later prepared statement runs, and both commit
    (or roll back) together."""
    key = await _key(db)
    job = _job(key.info.id)
    async with db.transaction() as session:
        session.add(job)  # pending: the ORM holds it back until a flush
        assert prepared.joined(session)
        await ledger_store.append(session, _charge(key.info.id, job.id))  # needs the job row
    async with db.read() as session:
        assert await job_store.get(session, job.id) is not None
        assert await ledger_store.entry_for_job(session, job.id, "charge") is not None

    other = _job(key.info.id, id="job_rolled_back")
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await ledger_store.debit(session, key.info.id, 7)  # bypassing SQLAlchemy
            session.add(other)
            await session.flush()  # the ORM joins, on the same connection
            raise RuntimeError("abandon")
    async with db.read() as session:
        assert await job_store.get(session, other.id) is None
        assert await ledger_store.balance(session, key.info.id) == 100


async def test_a_statement_with_an_in_list_takes_sqlalchemys_path(db: Database) -> None:
    key = await _key(db)
    job = _job(key.info.id)
    async with db.transaction() as session:
        await job_store.insert(session, job)
    with through_sqlalchemy(db) as seen:
        async with db.transaction() as session:
            states = ["queued", "running"]
            moved = await job_store.move(session, job.id, states, {"status": "canceled"})
            again = await job_store.move(session, job.id, ["canceled"], {"status": "failed"})
    assert moved and again
    assert len(seen) == 2 and " IN (" in seen[0]  # once SQLAlchemy joins, it runs the rest


async def test_an_insert_with_a_python_default_takes_sqlalchemys_path(db: Database) -> None:
    key = await _key(db)
    job = _job(key.info.id)
    del job.inputs  # unset: the column's default (``dict``) fills it in
    with through_sqlalchemy(db) as seen:
        async with db.transaction() as session:
            await job_store.insert(session, job)
    assert len(seen) == 1
    async with db.read() as session:
        row = await job_store.get(session, job.id)
        assert row is not None and row.inputs == {}


def _charge(key_id: str, job_id: str) -> LedgerRow:
    return {
        "key_id": key_id,
        "kind": "charge",
        "amount": -3,
        "balance_after": 97,
        "job_id": job_id,
        "note": "",
        "created_at": time.time(),
    }


async def test_a_sync_image_request_makes_no_statement_through_sqlalchemy(
    app: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key(credits=100)
    db = services_of(app).db
    with through_sqlalchemy(db) as seen:
        response = await client.post(
            "/v1/images/generate", json={"prompt": "a lighthouse"}, headers=auth(key)
        )
    assert response.status_code == 200, response.text
    # The webhook dispatcher polls the outbox on its own clock (every 0.5 s): on a loaded
    # machine a render outlasts that, and its poll is not the request's.
    assert [s for s in seen if "FROM webhook_deliveries" not in s] == []
    async with db.read() as session:
        job = await session.scalar(select(Job).where(Job.key_id == key.info.id))
        assert job is not None and job.status == "completed"
        assert job.result_id == response.json()["resultId"]
        charge = await ledger_store.entry_for_job(session, job.id, "charge")
        assert charge is not None and charge.amount == -job.credits
        assert await ledger_store.balance(session, key.info.id) == 100 - job.credits
        deliveries = (await session.scalars(select(WebhookDelivery))).all()
        assert deliveries == []
