"""Priorities and start deadlines across Celery, with PostgreSQL, the real Redis and a real
``hyperlocal worker`` process: jobs wait in Redis while no worker runs, then one worker with
one slot drains them, highest key priority first, and fails the job that missed its deadline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from kombu.transport.redis import Channel

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.queue.celery_app import message_priority, queue_name
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.scaleout import _audit
from tests.scaleout._processes import HYPERLOCAL, spawned
from tests.scaleout.conftest import ScaleOut
from tests.support import TEST_ENGINES, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MODEL = "scaleout-t2i"  # the built-in preview engine, which ``hyperlocal worker`` has
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
async def client(scale_out: ScaleOut, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An API server in this process, sending to Redis; no worker runs yet."""
    app: FastAPI = create_app(scale_out.settings(), engines=TEST_ENGINES)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def _key(db: Database, scale_out: ScaleOut, priority: int) -> IssuedKey:
    spec = KeySpec(f"priority-{priority}", 10_000, 1_000_000, 15, priority=priority)
    issued = await keys.create_key(db, spec)
    scale_out.scope.track(issued.info.id)
    return issued


async def _submit(client: httpx.AsyncClient, key: IssuedKey, **headers: str) -> str:
    body = {"model": MODEL, "prompt": "a harbour at night"}
    response = await client.post(
        "/v1/images/generate", json=body, headers={**auth(key), **ASYNC, **headers}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def _waiting(scale_out: ScaleOut, priority: int) -> int:
    """Messages waiting in Redis at one key priority: kombu keeps a list per priority step
    (``<queue><sep><step>``; step 0, served first, is the queue's own name)."""
    namespace = scale_out.scope.namespace
    name = f"{namespace}:{queue_name(namespace, MODEL)}"
    step = message_priority(priority)
    return int(scale_out.scope.client.llen(f"{name}{Channel.sep}{step}" if step else name))


def _burst_worker(scale_out: ScaleOut, tmp_path: Path) -> int:
    argv = [*HYPERLOCAL, "worker", "--models", MODEL, "--concurrency", "1", "--burst"]
    with spawned("burst", argv, scale_out.env(), tmp_path / "logs") as worker:
        code = worker.wait(120)
        assert code == 0, worker.output()
        return code


async def test_one_worker_takes_the_higher_priority_jobs_first(
    client: httpx.AsyncClient, scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    low, high = await _key(database, scale_out, 0), await _key(database, scale_out, 2)
    early = [await _submit(client, low) for _ in range(4)]
    late = [await _submit(client, high) for _ in range(4)]
    assert (_waiting(scale_out, 0), _waiting(scale_out, 2)) == (4, 4)

    _burst_worker(scale_out, tmp_path)
    rows = await _audit.assert_exactly_once(database, [low.info.id, high.info.id], 8)
    started = [r.id for r in sorted(rows, key=_start)]
    assert started == [*late, *early]  # highest priority first; within one, first come
    assert {r.priority for r in rows if r.id in late} == {2}


def _start(row: Any) -> float:
    assert row.started_at is not None
    return float(row.started_at)


async def test_a_worker_fails_a_job_that_missed_its_start_deadline(
    client: httpx.AsyncClient, scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    key = await _key(database, scale_out, 0)
    missed = await _submit(client, key, **{"X-Start-Deadline": "0.01"})
    kept = await _submit(client, key, **{"X-Start-Deadline": "600"})
    deadline = (await _audit.jobs(database, [missed]))[missed].start_deadline_at
    assert deadline is not None

    async def passed() -> bool:
        return time.time() > deadline

    await eventually(passed, 30, "the deadline to pass")
    _burst_worker(scale_out, tmp_path)
    rows = await _audit.jobs(database, [missed, kept])
    assert (rows[kept].status, rows[missed].status) == ("completed", "failed")
    assert (rows[missed].error_code, rows[missed].started_at) == ("E1005", None)
    account = (await client.get("/v1/account", headers=auth(key))).json()
    assert account["credits"] == 10_000 - rows[kept].credits  # the late one refunded
