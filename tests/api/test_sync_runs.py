"""Synchronous requests that run their job in their own task (``core.generation.generate``,
``queue.inprocess``): the job is created already claimed when a worker slot is free within
``SLOT_WAIT_S``, and goes through the queue otherwise. The slots are shared with the queue's
workers, and the per-key cap on running jobs still holds.

Every job's status changes are recorded by SQLite triggers into a side table, in commit order,
so that a test can see which states a job passed through (a job run in its request's task is born
``running``)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import select, text

from hyperlocal.app import create_app
from hyperlocal.core import generation
from hyperlocal.core.keys import IssuedKey, KeySpec, create_key
from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.store import jobs as job_store
from hyperlocal.store.tables import Job
from tests.conftest import SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES, tiny_png

MODEL = "test-record-t2i"
CATALOG = f"""
[[model]]
id = "{MODEL}"
category = "image"
name = "Records its runs"
engine = "test-record"
timeout_s = 10.0
price = {{ kind = "flat", credits = 3 }}
inputs.prompt = {{ type = "string", required = true }}
inputs.seconds = {{ type = "number", minimum = 0, maximum = 30 }}
"""

_HISTORY = (
    "CREATE TABLE job_history (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, "
    "key_id TEXT NOT NULL, status TEXT NOT NULL)",
    "CREATE TRIGGER job_history_insert AFTER INSERT ON jobs BEGIN "
    "INSERT INTO job_history (job_id, key_id, status) VALUES (NEW.id, NEW.key_id, NEW.status); "
    "END",
    "CREATE TRIGGER job_history_update AFTER UPDATE OF status ON jobs "
    "WHEN NEW.status IS NOT OLD.status BEGIN "
    "INSERT INTO job_history (job_id, key_id, status) VALUES (NEW.id, NEW.key_id, NEW.status); "
    "END",
)


@dataclass
class Run:
    job_id: str
    start: float
    end: float


@dataclass
class RecordingEngine:
    """A model runtime (outside us) that takes ``params['seconds']`` and records each run, and
    how many ran at once."""

    running: int = 0
    peak: int = 0
    runs: list[Run] = field(default_factory=list)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        start = time.monotonic()
        try:
            await asyncio.sleep(float(request.params.get("seconds") or 0.5))  # type: ignore[arg-type]
        finally:
            self.running -= 1
        self.runs.append(Run(request.job_id, start, time.monotonic()))
        return GenerationResult(artifacts=[Artifact(tiny_png(), "image/png", "png")])

    async def aclose(self) -> None:
        return None


@dataclass
class Server:
    app: FastAPI
    client: httpx.AsyncClient
    engine: RecordingEngine

    async def key(self, max_running: int = 15) -> IssuedKey:
        spec = KeySpec("sync", 1000, 1000, max_running)
        return await create_key(services_of(self.app).db, spec)

    async def job_by_result(self, result_id: str) -> Job:
        async with services_of(self.app).db.read() as session:
            job = (await session.scalars(select(Job).where(Job.result_id == result_id))).one()
        return job

    async def history(self, job_id: str | None = None) -> list[tuple[str, str]]:
        """(job id, status) for every status each job has had, in commit order."""
        async with services_of(self.app).db.read() as session:
            rows = await session.execute(
                text("SELECT job_id, status FROM job_history ORDER BY seq")
            )
        return [(j, s) for j, s in rows if job_id is None or j == job_id]

    async def running_for(self, key: IssuedKey) -> int:
        async with services_of(self.app).db.read() as session:
            return await job_store.count_running_for_key(session, key.info.id)


ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
def server(make_settings: SettingsFactory, tmp_path: Path) -> ServerFactory:
    catalog = tmp_path / "sync.toml"
    catalog.write_text(CATALOG)

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Server]:
        engine = RecordingEngine()

        def create(_context: EngineContext) -> RecordingEngine:
            return engine

        settings = make_settings(catalog=catalog, **overrides)
        app = create_app(settings, engines={**TEST_ENGINES, "test-record": create})
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            async with services_of(app).db.transaction() as session:
                for statement in _HISTORY:
                    await session.execute(text(statement))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", timeout=30
            ) as client:
                yield Server(app, client, engine)

    return start


def _generate(
    srv: Server, key: IssuedKey, seconds: float, **headers: str
) -> asyncio.Task[httpx.Response]:
    body = {"model": MODEL, "prompt": "p", "seconds": seconds}
    return asyncio.create_task(
        srv.client.post("/v1/images/generate", json=body, headers={**auth(key), **headers})
    )


def _never_overlap(runs: list[Run]) -> None:
    ordered = sorted(runs, key=lambda r: r.start)
    for before, after in itertools.pairwise(ordered):
        assert after.start >= before.end, f"{after.job_id} started while {before.job_id} ran"


async def test_sync_image_runs_in_its_task_and_answers_as_the_job_shows(
    server: ServerFactory,
) -> None:
    async with server() as srv:
        key = await srv.key()
        response = await srv.client.post(
            "/v1/images/generate", json={"prompt": "a lighthouse"}, headers=auth(key)
        )
        assert response.status_code == 200, response.text
        payload = response.json()
        job = await srv.job_by_result(payload["resultId"])
        assert job.status == "completed"
        assert job.attempts == 1
        assert job.lease_owner is None and job.lease_expires_at is None
        assert job.started_at is not None and job.finished_at is not None
        # Created already claimed: the job was never queued.
        assert await srv.history(job.id) == [(job.id, "running"), (job.id, "completed")]
        shown = (await srv.client.get(f"/v1/jobs/{job.id}", headers=auth(key))).json()
        assert shown["status"] == "completed" and shown["jobId"] == job.id
        assert shown["resultId"] == payload["resultId"]
        assert shown["creditsUsed"] == payload["creditsUsed"] == job.credits
        assert shown["outputUrl"] == payload["data"][0]["url"]
        assert shown["model"] == payload["data"][0]["model"] == "gemini-3-1-flash-t2i"
        assert shown["completedAt"] == payload["created"]
        image = await srv.client.get(payload["data"][0]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"


async def test_one_slot_runs_sync_and_queued_jobs_one_at_a_time(server: ServerFactory) -> None:
    async with server(worker_concurrency=1) as srv:
        key = await srv.key()
        started = time.monotonic()
        first, second = _generate(srv, key, 0.4), _generate(srv, key, 0.4)
        queued = _generate(srv, key, 0.4, Prefer="respond-async")
        responses = await asyncio.gather(first, second)
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        accepted = await queued
        assert accepted.status_code == 202
        job_id = accepted.json()["jobId"]
        for _ in range(200):
            if len(srv.engine.runs) == 3:
                break
            await asyncio.sleep(0.02)
        assert (await srv.client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()[
            "status"
        ] == "completed"
        assert srv.engine.peak == 1
        _never_overlap(srv.engine.runs)
        assert len(srv.engine.runs) == 3
        assert time.monotonic() - started >= 1.2
        for response in responses:  # both sync jobs got the slot in time: both ran in their task
            job = await srv.job_by_result(response.json()["resultId"])
            assert (await srv.history(job.id))[0] == (job.id, "running")
            assert job.attempts == 1 and job.lease_owner is None


async def test_sync_request_is_queued_when_no_slot_frees_in_time(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generation, "SLOT_WAIT_S", 0.2)
    async with server(worker_concurrency=1) as srv:
        key = await srv.key()
        first = _generate(srv, key, 1.0)
        while srv.engine.running == 0:
            await asyncio.sleep(0.01)
        asked = time.monotonic()
        second = _generate(srv, key, 0.1)
        waiting: dict[str, Any] | None = None
        for _ in range(80):  # the second job, seen while the first still holds the slot
            listed = (await srv.client.get("/v1/jobs", headers=auth(key))).json()["data"]
            if len(listed) == 2:
                newest = listed[0]["jobId"]
                waiting = (await srv.client.get(f"/v1/jobs/{newest}", headers=auth(key))).json()
                break
            await asyncio.sleep(0.02)
        assert waiting is not None, "the second job was not created"
        assert srv.engine.running == 1 and not first.done()
        assert waiting["status"] == "processing" and "queuePosition" in waiting
        assert time.monotonic() - asked >= 0.2  # it waited SLOT_WAIT_S for a slot first
        one, two = await asyncio.gather(first, second)
        assert one.status_code == two.status_code == 200, (one.text, two.text)
        job = await srv.job_by_result(two.json()["resultId"])
        assert job.id == waiting["jobId"]
        assert await srv.history(job.id) == [
            (job.id, "queued"),
            (job.id, "running"),
            (job.id, "completed"),
        ]
        assert job.status == "completed" and job.attempts == 1 and job.lease_owner is None
        assert two.json()["data"][0]["url"].endswith(f"/images/{job.result_id}.png")
        _never_overlap(srv.engine.runs)
        assert [r.job_id for r in srv.engine.runs][-1] == job.id


async def test_running_cap_holds_for_runs_in_request_tasks(server: ServerFactory) -> None:
    async with server(worker_concurrency=4) as srv:
        key = await srv.key(max_running=1)
        requests = [_generate(srv, key, 0.4), _generate(srv, key, 0.4)]
        samples = 0
        while not all(r.done() for r in requests):
            assert await srv.running_for(key) <= 1
            samples += 1
            await asyncio.sleep(0.02)
        responses = [r.result() for r in requests]
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert samples >= 10
        assert srv.engine.peak == 1
        _never_overlap(srv.engine.runs)
        # Exactly, from every status change in commit order: never two running at once.
        running: set[str] = set()
        for job_id, status in await srv.history():
            if status == "running":
                running.add(job_id)
            else:
                running.discard(job_id)
            assert len(running) <= 1
        ids = {(await srv.job_by_result(r.json()["resultId"])).id for r in responses}
        assert len(ids) == 2 and {j for j, _ in await srv.history()} == ids
