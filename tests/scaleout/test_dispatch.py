"""Celery dispatch on Redis with PostgreSQL: API servers send job ids, worker processes run them."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core.events import MemoryEventBus
from hyperlocal.core.keys import IssuedKey
from hyperlocal.queue.dispatch import CeleryQueue
from hyperlocal.store.db import Database
from tests.conftest import REDIS_URL, auth, services_of
from tests.scaleout import _audit
from tests.scaleout._processes import HYPERLOCAL, TEST_WORKER, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import TEST_ENGINES, free_port, serve_in_thread

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ASYNC = {"Prefer": "respond-async"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def app(scale_out: ScaleOut, database: Database) -> AsyncIterator[FastAPI]:
    application = create_app(scale_out.settings(), engines=TEST_ENGINES)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def submit(
    client: httpx.AsyncClient, key: IssuedKey, model: str = "scaleout-t2i", **inputs: Any
) -> str:
    body = {"model": model, "prompt": "a lighthouse at dusk", **inputs}
    response = await client.post("/v1/images/generate", json=body, headers={**auth(key), **ASYNC})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


async def test_the_api_sends_each_job_once_to_its_models_queue(
    app: FastAPI, client: httpx.AsyncClient, scale_out: ScaleOut, database: Database
) -> None:
    scope, queue = scale_out.scope, services_of(app).queue
    assert isinstance(queue, CeleryQueue)
    key = await new_key(database, scope)
    fast = await submit(client, key)
    await submit(client, key, "scaleout-slow-t2i", seconds=0.1)
    await queue.enqueue(fast)  # a duplicate submit of the same id
    await queue.enqueue(fast)
    assert scope.client.llen(scope.broker_list("scaleout-t2i")) == 1
    assert scope.client.llen(scope.broker_list("scaleout-slow-t2i")) == 1
    assert await queue.dispatch_orphans() == []  # every queued job is carried by a message
    await queue.release(fast)  # as if the API had died between its commit and its send
    assert await queue.dispatch_orphans() == [fast]
    assert scope.client.llen(scope.broker_list("scaleout-t2i")) == 2


async def test_a_worker_process_runs_what_a_live_api_sends(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    key = await new_key(database, scale_out.scope)
    port = free_port()
    public = {"public_url": f"http://127.0.0.1:{port}"}  # the worker writes the output URLs
    app = create_app(scale_out.settings(**public), engines=TEST_ENGINES)
    worker_argv = [*HYPERLOCAL, "worker", "--models", "scaleout-*", "--concurrency", "3"]
    with (
        serve_in_thread(app, port) as url,
        spawned("worker", worker_argv, scale_out.env(**public), tmp_path / "logs") as worker,
    ):
        async with httpx.AsyncClient(base_url=url, headers=auth(key), timeout=60) as client:
            body = {"model": "scaleout-t2i", "prompt": "a harbour at night"}
            sync = await client.post("/v1/images/generate", json=body)  # waits for the worker
            assert sync.status_code == 200, sync.text
            image = await client.get(sync.json()["data"][0]["url"])
            assert image.content.startswith(PNG_MAGIC)
            ids = [await submit(client, key) for _ in range(6)]
            await _redeliver(scale_out, database, ids[0])
            await eventually(lambda: _all_done(database, ids), 60, "the jobs", interval=0.1)
            polled = (await client.get(f"/v1/jobs/{ids[-1]}")).json()
            assert polled["status"] == "completed" and polled["outputUrl"].startswith(url)
        assert worker.terminate() == 0, worker.output()  # SIGTERM: a warm, clean shutdown
    rows = await _audit.assert_exactly_once(database, [key.info.id], len(ids) + 1)
    assert {r.attempts for r in rows} == {1}


async def _redeliver(scale_out: ScaleOut, db: Database, job_id: str) -> None:
    """Send a job's message twice more, as a broker redelivery would."""
    queue = CeleryQueue(
        db, MemoryEventBus(), redis_url=REDIS_URL, namespace=scale_out.scope.namespace
    )
    try:
        await queue.redispatch(job_id)
        await queue.redispatch(job_id)
    finally:
        await queue.aclose()


async def _all_done(db: Database, ids: list[str]) -> bool:
    return await _audit.count_terminal(db, ids) == len(ids)


async def test_a_burst_worker_sends_orphans_defers_at_the_key_cap_and_exits(
    client: httpx.AsyncClient, scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    scope = scale_out.scope
    key = await new_key(database, scope, max_running=1)
    ids = [await submit(client, key, "scaleout-slow-t2i", seconds=0.4) for _ in range(3)]
    # Lose every message and every mark, as if the API had crashed after each commit.
    scope.client.delete(scope.broker_list("scaleout-slow-t2i"))
    for name in scope.client.scan_iter(match=f"{scope.namespace}:dispatched:*"):
        scope.client.delete(name)
    argv = [*TEST_WORKER, "--burst", "--concurrency", "3"]
    with spawned("burst", argv, scale_out.env(), tmp_path / "logs") as worker:
        assert worker.wait(90) == 0, worker.output()
    rows = await _audit.assert_exactly_once(database, [key.info.id], len(ids))
    assert {r.attempts for r in rows} == {1}
    spans = sorted((r.started_at or 0.0, r.finished_at or 0.0) for r in rows)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "the key's cap of one running job was exceeded"


def test_the_worker_refuses_to_start_without_scale_out_settings_or_models(
    scale_out: ScaleOut, tmp_path: Path
) -> None:
    embedded = scale_out.env()
    del embedded["HYPERLOCAL_DATABASE_URL"]  # SQLite: the embedded queue, nothing to consume
    refused = subprocess.run(
        [*HYPERLOCAL, "worker", "--burst"], env=embedded, capture_output=True, check=False
    )
    assert refused.returncode == 2
    assert b"needs scale-out mode" in refused.stdout
    nothing = [*HYPERLOCAL, "worker", "--burst", "--models", "no-such-model-*"]
    refused = subprocess.run(nothing, env=scale_out.env(), capture_output=True, check=False)
    assert refused.returncode == 2
    assert b"no installed model matches" in refused.stdout
