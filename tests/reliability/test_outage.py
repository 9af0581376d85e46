"""Webhook outage: the receiver is down (connections refused), then comes back. Every event
is delivered, every signature verifies, and each job's retries carry one webhook-id."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
from asgi_lifespan import LifespanManager
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.routing import Route

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from tests.conftest import SettingsFactory, auth
from tests.receiver import Receiver, wait_until
from tests.support import (
    SOAK_SCALE,
    TEST_ENGINES,
    eventually,
    free_port,
    serve_in_thread,
    work_deadline,
)

JOBS = 20 * SOAK_SCALE
JOB_SECONDS = 0.05  # each job's run in the slow stand-in engine
WORKERS = 4  # the server's default
PRICE = 10  # test-slow-video at its default duration: 10 credits per 5 s, 5 s
WEBHOOK_PER_RECEIVER = 8  # the server's default
DELIVERY_SECONDS = 0.05  # one webhook POST on loopback, answered at once
SUBMIT_SECONDS = 0.03  # one submit through the ASGI transport, as measured on 2 busy cores
# The receiver stays down while the jobs are submitted and the first job's first attempts
# fail. Retries every 2 s must outlast that, or a delivery is given up before it is back.
OUTAGE = work_deadline(JOBS, SUBMIT_SECONDS, 1, overhead=30)
SCHEDULE = [0, 0.5, 0.5, 1, 1, *[2] * math.ceil(OUTAGE / 2)]


@pytest.mark.slow
async def test_receiver_down_then_back(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        webhook_schedule=SCHEDULE,
        webhook_jitter=0.1,
        webhook_poll_interval=0.05,
        webhook_timeout=1.0,
    )
    app = create_app(settings, engines=TEST_ENGINES)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        spec = KeySpec("outage", PRICE * JOBS, 10_000, 20)
        key = await keys.create_key(app.state.services.db, spec)
        body = {
            "model": "test-slow-video",
            "input": {"prompt": "x", "seconds": JOB_SECONDS},
            "webhook_url": hook,
        }
        began = time.monotonic()
        ids = [
            (await client.post("/v1/videos/generate", json=body, headers=auth(key))).json()["jobId"]
            for _ in range(JOBS)
        ]
        # Several attempts fail against the closed port (at 0, 0.5 and 1 s: about 1 s).
        await eventually(
            lambda: _failed_attempts(client, key, ids[0], 3), 30, "3 failed deliveries"
        )
        failed_before = await _attempt_errors(client, key, ids[0])
        assert all("connection failed" in e for e in failed_before)
        assert time.monotonic() - began < OUTAGE, "the outage outlasted the retry schedule"
        receiver = Receiver()
        receiver_app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
        with serve_in_thread(receiver_app, port=port):  # type: ignore[arg-type]
            # Each job's next retry is at most 2 s away; then all of them are delivered.
            deliver = work_deadline(JOBS, JOB_SECONDS, WORKERS, 30) + work_deadline(
                JOBS, DELIVERY_SECONDS, WEBHOOK_PER_RECEIVER, 0
            )
            await wait_until(lambda: _delivered(receiver) == set(ids), timeout=deliver)
    for hit in receiver.on("hook"):
        Webhook(key.webhook_secret).verify(hit.body, hit.headers)
    by_job: dict[str, set[str]] = {}
    for hit in receiver.on("hook"):
        by_job.setdefault(json.loads(hit.body)["jobId"], set()).add(hit.headers["webhook-id"])
    assert all(len(ids_seen) == 1 for ids_seen in by_job.values())


def _delivered(receiver: Receiver) -> set[str]:
    return {json.loads(r.body)["jobId"] for r in receiver.on("hook")}


async def _failed_attempts(
    client: httpx.AsyncClient, key: keys.IssuedKey, job_id: str, at_least: int
) -> bool:
    return len(await _attempt_errors(client, key, job_id)) >= at_least


async def _attempt_errors(client: httpx.AsyncClient, key: keys.IssuedKey, job_id: str) -> list[str]:
    response = await client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth(key))
    return [a["error"] for a in response.json()["data"]]
