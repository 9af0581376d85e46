"""A worker killed mid-job (SIGKILL: no warm shutdown, no ack) loses nothing: its job's lease
expires, another worker's sweep requeues it, and it completes exactly once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from hyperlocal.app import create_app
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.scaleout import _audit
from tests.scaleout._processes import TEST_WORKER, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import TEST_ENGINES

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

LEASE_S = 1.5  # short, so the test waits for an expired lease in seconds, not half a minute


async def test_a_killed_workers_job_is_recovered_and_completes_once(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    lease = {"job_lease_seconds": LEASE_S}
    key = await new_key(database, scale_out.scope)
    app = create_app(scale_out.settings(**lease), engines=TEST_ENGINES)
    body = {"model": "scaleout-slow-t2i", "prompt": "a slow sunrise", "seconds": 4}
    headers = {**auth(key), "Prefer": "respond-async"}
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post("/v1/images/generate", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    logs, env = tmp_path / "logs", scale_out.env(**lease)

    with spawned("doomed", TEST_WORKER, env, logs) as doomed:
        await eventually(lambda: _running(database, job_id), 30, "the job to start")
        doomed.kill()  # SIGKILL mid-job: its message stays unacknowledged, its lease lapses
    assert (await _audit.jobs(database, [job_id]))[job_id].status == "running"

    with spawned("rescuer", [*TEST_WORKER, "--burst"], env, logs) as rescuer:
        assert rescuer.wait(60) == 0, rescuer.output()
    assert "lease expired; job requeued" in rescuer.text()
    [row] = await _audit.assert_exactly_once(database, [key.info.id], 1)
    assert row.attempts == 2  # the lost run and the one that finished


async def _running(db: Database, job_id: str) -> bool:
    row = (await _audit.jobs(db, [job_id])).get(job_id)
    return row is not None and row.status == "running" and row.progress > 0


async def test_queued_jobs_a_killed_worker_held_are_sent_again(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    """A worker killed while it holds messages of jobs still queued (deferred: their key is at
    its running cap) leaves them unacknowledged in Redis for an hour, and their dispatch marks
    keep the sweep from sending them. The next worker finds the dead one's heartbeat gone and
    sends its models' queued jobs again: all run, each once."""
    lease = {"job_lease_seconds": LEASE_S}
    key = await new_key(database, scale_out.scope, max_running=1)
    app = create_app(scale_out.settings(**lease), engines=TEST_ENGINES)
    body = {"model": "scaleout-slow-t2i", "prompt": "one at a time", "seconds": 2}
    headers = {**auth(key), "Prefer": "respond-async"}
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ids = []
        for _ in range(3):
            response = await client.post("/v1/images/generate", json=body, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["jobId"])
    logs = tmp_path / "logs"
    env = scale_out.env(**lease, log_level="INFO")

    debug = {**env, "HYPERLOCAL_LOG_LEVEL": "DEBUG"}  # it logs each deferral
    with spawned("doomed", [*TEST_WORKER, "--concurrency", "3"], debug, logs) as doomed:
        await eventually(lambda: _deferred_twice(doomed.text()), 60, "two jobs to be deferred")
        doomed.kill()

    with spawned("rescuer", [*TEST_WORKER, "--concurrency", "3"], env, logs) as rescuer:

        async def all_done() -> bool:
            return await _audit.count_terminal(database, ids) == len(ids)

        await eventually(all_done, 90, "every job to end")
        assert "worker gone" in rescuer.text(), rescuer.output()
    await _audit.assert_exactly_once(database, [key.info.id], len(ids))


async def _deferred_twice(log: str) -> bool:
    return log.count("job deferred") >= 2
