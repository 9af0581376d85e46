"""The whole scale-out shape at once: two API server processes and two worker processes on one
PostgreSQL database, one Redis and one shared storage directory, 500 jobs submitted
concurrently across both servers. Every job must complete exactly once, the ledger must add up
to the last credit, and every job's webhook must arrive (exactly once, de-duplicated by id)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from hyperlocal.core.keys import IssuedKey
from hyperlocal.store.db import Database
from tests.conftest import auth
from tests.receiver import Receiver, running_receiver
from tests.scaleout import _audit
from tests.scaleout._processes import HYPERLOCAL, api_server, eventually, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

JOBS = 500
IN_FLIGHT = 32  # concurrent submits
WORKER = [*HYPERLOCAL, "worker", "--models", "scaleout-*", "--concurrency", "4"]


async def test_two_servers_and_two_workers_run_500_jobs_exactly_once(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    keys = [await new_key(database, scale_out.scope, credits=5_000) for _ in range(2)]
    ports = [free_port(), free_port()]
    # One public URL for every process, as behind a load balancer: workers write output URLs,
    # and either server serves /files from the shared directory.
    env = scale_out.env(
        public_url=f"http://127.0.0.1:{ports[0]}", webhook_poll_interval=0.1, webhook_jitter=0
    )
    verbose = {**env, "HYPERLOCAL_LOG_LEVEL": "INFO"}  # the workers' INFO log shows who ran what
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        receiver = stack.enter_context(running_receiver())
        workers = [
            stack.enter_context(spawned(f"worker-{i}", WORKER, verbose, logs)) for i in (0, 1)
        ]
        urls = [stack.enter_context(api_server(f"api-{i}", env, logs, ports[i])) for i in (0, 1)]
        ids = await submit_all(urls, keys, receiver.url("fleet"))
        assert len(set(ids)) == JOBS
        await eventually(lambda: _all_done(database, ids), 150, f"{JOBS} jobs", interval=0.5)
        await eventually(lambda: _all_delivered(receiver, ids), 60, "webhooks", interval=0.5)
        await poll_across_servers(urls, keys, ids)
        for worker in workers:
            assert worker.terminate() == 0, worker.output()
    for worker in workers:  # the work was shared: each process finished jobs of its own
        assert "'finished'" in worker.text(), worker.output()
    rows = await _audit.assert_exactly_once(database, [k.info.id for k in keys], JOBS)
    assert {r.attempts for r in rows} == {1}  # no lease expired, so nothing ran twice
    _assert_webhooks_once(receiver, keys, ids)


def _assert_webhooks_once(
    receiver: Receiver, keys: Sequence[IssuedKey], ids: Sequence[str]
) -> None:
    """At-least-once delivery, de-duplicated by webhook-id, is exactly one event per job."""
    secrets = {k.info.id: k.webhook_secret for k in keys}
    by_message: dict[str, dict[str, object]] = {}
    for hit in receiver.on("fleet"):
        payload = None
        for secret in secrets.values():
            try:
                payload = Webhook(secret).verify(hit.body, hit.headers)
                break
            except Exception:  # signed with the other key's secret
                continue
        assert payload is not None, "a webhook that verifies with neither key's secret"
        by_message.setdefault(hit.headers["webhook-id"], payload)
    job_ids = [str(p["jobId"]) for p in by_message.values()]
    assert sorted(job_ids) == sorted(ids)
    assert all(p["status"] == "completed" for p in by_message.values())


async def _all_delivered(receiver: Receiver, ids: Sequence[str]) -> bool:
    return {json.loads(r.body)["jobId"] for r in receiver.on("fleet")} == set(ids)


async def submit_all(urls: Sequence[str], keys: Sequence[IssuedKey], hook: str) -> list[str]:
    slots = asyncio.Semaphore(IN_FLIGHT)
    # Drop idle connections well before uvicorn does (5 s): reusing one that the server is
    # closing at that moment fails with a ReadError on a busy machine.
    limits = httpx.Limits(keepalive_expiry=1.0)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) for url in urls
    ]

    async def submit(i: int) -> str:
        body = {"model": "scaleout-t2i", "prompt": f"lighthouse number {i}", "webhook_url": hook}
        headers = {**auth(keys[i % 2]), "Prefer": "respond-async"}
        async with slots:
            response = await clients[i // 2 % 2].post(
                "/v1/images/generate", json=body, headers=headers
            )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["jobId"]
        return job_id

    try:
        return list(await asyncio.gather(*(submit(i) for i in range(JOBS))))
    finally:
        for client in clients:
            await client.aclose()


async def poll_across_servers(
    urls: Sequence[str], keys: Sequence[IssuedKey], ids: Sequence[str]
) -> None:
    """Any server answers for any job: the status lives in the database, not in a process."""
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        for i in random.Random(7).sample(range(JOBS), 20):
            for url in urls:
                response = await client.get(f"{url}/v1/jobs/{ids[i]}", headers=auth(keys[i % 2]))
                job = response.json()
                assert job["status"] == "completed" and job["outputUrl"], job
            output = job["outputUrl"].replace(urls[0], urls[1])  # via the other server
            assert (await client.get(output)).content.startswith(b"\x89PNG")


async def _all_done(db: Database, ids: Sequence[str]) -> bool:
    return await _audit.count_terminal(db, ids) == len(ids)
