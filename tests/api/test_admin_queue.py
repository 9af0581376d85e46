"""``GET /admin/queue``: jobs queued and running by model (the gauges' numbers), and how long the
window's ended jobs waited and ran, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select, update

from hyperlocal.app import create_app
from hyperlocal.core import keys, queue_stats
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.settings import Settings
from hyperlocal.store.tables import Job
from tests.conftest import KeyFactory, auth, services_of
from tests.support import TEST_ENGINES, eventually

AUDIO = {"model": "test-slow-audio", "input": {"text": "hello", "seconds": 0.2}}
HELD = {"model": "test-slow-video", "input": {"prompt": "waves", "seconds": 20}}
COMPLETED = 4


def _by_model(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["model"]: row for row in body["data"]}


async def test_only_an_admin_key_reads_the_queue(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    assert (await client.get("/admin/queue")).status_code == 401
    user = await issue_key()
    assert (await client.get("/admin/queue", headers=auth(user))).status_code == 403
    admin = await issue_key(admin=True)
    assert (await client.get("/admin/queue", headers=auth(admin))).status_code == 200
    refused = await client.get("/admin/queue?hours=0", headers=auth(admin))
    assert refused.status_code == 400


async def test_a_workload_is_counted_by_model(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    admin, user = await issue_key(admin=True), await issue_key()
    for _ in range(COMPLETED):
        done = await client.post("/v1/audio/generate", json=AUDIO, headers=auth(user))
        assert done.status_code == 200, done.text
    failed = {"model": "test-fail-t2i", "prompt": "x"}
    assert (await client.post("/v1/images/generate", json=failed, headers=auth(user))).is_error
    capped = await issue_key(max_running=1)  # its second job waits behind its first
    held = [
        (await client.post("/v1/videos/generate", json=HELD, headers=auth(capped))).json()["jobId"]
        for _ in range(2)
    ]
    try:
        await _check_the_workload(client, admin)
    finally:
        for job_id in held:
            await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(capped))


async def _check_the_workload(client: httpx.AsyncClient, admin: IssuedKey) -> None:
    async def one_running() -> bool:
        body = (await client.get("/admin/queue", headers=auth(admin))).json()
        return bool(_by_model(body)["test-slow-video"]["running"] == 1)

    await eventually(one_running, 30, "the first held job to start")
    body = (await client.get("/admin/queue", headers=auth(admin))).json()
    assert (body["hours"], body["sampleLimit"]) == (24, queue_stats.SAMPLE_LIMIT)
    rows = _by_model(body)
    video = rows["test-slow-video"]
    assert (video["queued"], video["running"], video["finished"]) == (1, 1, 0)
    assert video["queueSeconds"] is None and video["runSeconds"] is None
    audio = rows["test-slow-audio"]
    assert (audio["queued"], audio["running"]) == (0, 0)
    assert (audio["finished"], audio["completed"], audio["sampled"]) == (COMPLETED,) * 3
    assert 0.15 <= audio["runSeconds"]["p50"] <= audio["runSeconds"]["p99"]  # ran 0.2 s each
    assert 0 <= audio["queueSeconds"]["p50"] <= audio["queueSeconds"]["p99"]
    fail = rows["test-fail-t2i"]
    assert (fail["finished"], fail["failed"], fail["completed"]) == (1, 1, 0)
    idle = rows["gemini-3-1-flash-t2i"]  # in the catalogue, never used: shown at 0
    assert (idle["queued"], idle["running"], idle["finished"], idle["sampled"]) == (0, 0, 0, 0)

    text = (await client.get("/metrics", headers=auth(admin))).text
    queued, running = (
        _gauge(text, "hyperlocal_jobs_queued"),
        _gauge(text, "hyperlocal_jobs_running"),
    )
    assert queued == {model: row["queued"] for model, row in rows.items()}  # the gauges' numbers
    assert running == {model: row["running"] for model, row in rows.items()}


def _gauge(text: str, name: str) -> dict[str, float]:
    """A per-model gauge's samples in a scrape, by model."""
    prefix = name + '{model="'
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            model, _, value = line.removeprefix(prefix).partition('"} ')
            found[model] = float(value)
    return found


# Of four jobs (oldest first), the seconds each waited and ran; a fifth is older than the window.
WAITED = (0.5, 1.0, 2.0, 8.0)
RAN = (3.0, 1.0, 4.0, 10.0)


@pytest.fixture
async def db_app(db_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(db_settings, engines=TEST_ENGINES)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


async def _set_times(app: FastAPI, now: float) -> None:
    """Gives the model's five ended jobs known times: four in the last hour, one before it."""
    db = services_of(app).db
    async with db.read() as session:
        stmt = select(Job.id).where(Job.model == "test-slow-audio").order_by(Job.created_at)
        ids = list((await session.execute(stmt)).scalars())
    assert len(ids) == len(WAITED) + 1
    created = [now - 7200.0] + [now - 600.0 + i for i in range(len(WAITED))]
    waited, ran = (5.0, *WAITED), (5.0, *RAN)
    async with db.transaction() as session:
        for job_id, at, wait, run in zip(ids, created, waited, ran, strict=True):
            times = {"created_at": at, "started_at": at + wait, "finished_at": at + wait + run}
            await session.execute(update(Job).where(Job.id == job_id).values(**times))


async def test_percentiles_over_the_window_from_known_times(db_app: FastAPI) -> None:
    db = services_of(db_app).db
    admin = await keys.create_key(db, KeySpec("ops", 0, 1000, 15, True))
    user = await keys.create_key(db, KeySpec("user", 100, 1000, 15))
    transport = httpx.ASGITransport(app=db_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(len(WAITED) + 1):
            done = await client.post("/v1/audio/generate", json=AUDIO, headers=auth(user))
            assert done.status_code == 200, done.text
        now = time.time()
        await _set_times(db_app, now)
        hour = (await client.get("/admin/queue?hours=1", headers=auth(admin))).json()
        day = (await client.get("/admin/queue", headers=auth(admin))).json()
    row = _by_model(hour)["test-slow-audio"]
    assert (row["finished"], row["sampled"]) == (4, 4)
    # Nearest rank: p50 is the 2nd of 4 in order, p99 the 4th.
    assert row["queueSeconds"] == {"p50": 1.0, "p99": 8.0}
    assert row["runSeconds"] == {"p50": 3.0, "p99": 10.0}
    assert _by_model(day)["test-slow-audio"]["finished"] == 5

    # At most ``per_model`` jobs of each model are read, the newest; all are counted.
    capped = await queue_stats.by_model(db, [], now - 3600, per_model=2)
    (audio,) = [m for m in capped if m.model == "test-slow-audio"]
    assert (audio.finished, audio.sampled) == (4, 2)
    assert audio.queue_s == queue_stats.Percentiles(2.0, 8.0)
    assert audio.run_s == queue_stats.Percentiles(4.0, 10.0)
