"""``GET /admin/workers`` in the scale-out shape: real worker processes publish their reports to
Redis with each heartbeat, and an API server on the same PostgreSQL and Redis shows them, with
their running jobs; ``hyperlocal worker --gpus 0,1`` runs one such worker per device."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.scaleout._processes import HYPERLOCAL, TEST_WORKER, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import TEST_ENGINES

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FAST_SWEEPS = {"job_lease_seconds": 3}  # a heartbeat, and so a report, every second
GPU_WORKERS = [*HYPERLOCAL, "worker", "--gpus", "0,1", "--models", "scaleout-*"]


@pytest.fixture
async def client(scale_out: ScaleOut, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(scale_out.settings(), engines=TEST_ENGINES)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def admin(database: Database, scale_out: ScaleOut) -> IssuedKey:
    issued = await keys.create_key(database, KeySpec("admin", 0, 10_000, 15, True))
    scale_out.scope.track(issued.info.id)
    return issued


async def workers(client: httpx.AsyncClient, admin: IssuedKey) -> list[dict[str, Any]]:
    response = await client.get("/admin/workers", headers=auth(admin))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["workers"]
    return found


async def test_a_worker_process_reports_its_devices_and_running_jobs(
    client: httpx.AsyncClient,
    admin: IssuedKey,
    scale_out: ScaleOut,
    database: Database,
    tmp_path: Path,
) -> None:
    assert await workers(client, admin) == []  # the API server runs no job itself
    key = await new_key(database, scale_out.scope)
    env = scale_out.env(**FAST_SWEEPS)
    with spawned("worker", TEST_WORKER, env, tmp_path / "logs") as worker:

        async def reported() -> bool:
            return [w["pid"] for w in await workers(client, admin)] == [worker.popen.pid]

        await eventually(reported, 60, "the worker's report")
        (report,) = await workers(client, admin)
        assert report["gpus"] == os.environ.get("CUDA_VISIBLE_DEVICES")
        assert report["running"] == {} and not report["probed"]
        assert [d["device"] for d in report["devices"]] == ["cpu"]  # no model placed yet
        job_id = await _submit_slow(client, key)
        try:

            async def running() -> bool:
                (found,) = await workers(client, admin)
                return bool(found["running"] == {"scaleout-slow-t2i": 1})

            await eventually(running, 60, "the running job in the worker's report")
            response = await client.get("/admin/workers", headers=auth(admin))
            assert {"model": "scaleout-slow-t2i", "queued": 0, "running": 1} in (
                response.json()["queues"]
            )
        finally:
            await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
        assert worker.terminate() == 0, worker.output()
    await eventually(lambda: _none(client, admin), 30, "the report to go with the worker")


async def _submit_slow(client: httpx.AsyncClient, key: IssuedKey) -> str:
    body = {"model": "scaleout-slow-t2i", "prompt": "waves", "seconds": 30}
    headers = {**auth(key), "Prefer": "respond-async"}
    response = await client.post("/v1/images/generate", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


async def test_gpus_runs_one_real_worker_per_device_and_sigterm_stops_them(
    client: httpx.AsyncClient, admin: IssuedKey, scale_out: ScaleOut, tmp_path: Path
) -> None:
    env = scale_out.env(**FAST_SWEEPS)
    with spawned("gpus", GPU_WORKERS, env, tmp_path / "logs") as parent:
        children = await _two_children(client, admin, parent.popen.pid)
        assert parent.terminate(60) == 0, parent.output()  # each child stopped as asked
    await eventually(lambda: _none(client, admin), 30, "the children's reports to go")
    assert all(_gone(pid) for pid in children.values())


async def test_a_gpu_worker_that_dies_stops_its_sibling_and_fails_the_set(
    client: httpx.AsyncClient, admin: IssuedKey, scale_out: ScaleOut, tmp_path: Path
) -> None:
    env = scale_out.env(**FAST_SWEEPS)
    with spawned("gpus", GPU_WORKERS, env, tmp_path / "logs") as parent:
        children = await _two_children(client, admin, parent.popen.pid)
        os.kill(children["0"], signal.SIGKILL)
        assert parent.wait(60) == 128 + signal.SIGKILL, parent.output()
    assert _gone(children["1"])


async def _two_children(client: httpx.AsyncClient, admin: IssuedKey, parent: int) -> dict[str, int]:
    """The pids of the two children by their CUDA_VISIBLE_DEVICES, once both reported."""

    async def both() -> bool:
        return sorted(w["gpus"] for w in await workers(client, admin)) == ["0", "1"]

    await eventually(both, 90, "a report from each GPU's worker")
    children = {w["gpus"]: w["pid"] for w in await workers(client, admin)}
    assert parent not in children.values() and len(set(children.values())) == 2
    return children


async def _none(client: httpx.AsyncClient, admin: IssuedKey) -> bool:
    return await workers(client, admin) == []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
