"""Cancel (spec §12), against a real uvicorn on loopback, on SQLite and on PostgreSQL.

- A queued job is canceled and refunded at once, and never runs.
- A running media job's engine is stopped; nothing it made is stored or served; it is refunded
  once the work has stopped, and only then do its worker slot and running-cap place free up.
- A terminal job answers 409 with its status, and is never refunded twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.tables import Job
from tests.conftest import SettingsFactory, auth
from tests.support import GATE, TEST_ENGINES, eventually, serve_in_thread

STUBBORN = {"model": "test-stubborn-video", "input": {"prompt": "waves"}}
WAIT_S = 30.0  # bounds a failure only: each wait is for a condition


@dataclass
class Server:
    url: str
    settings: Settings

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        db = await open_database(self.settings)
        try:
            async with db.read() as session:
                yield session
        finally:
            await db.aclose()

    async def key(self, credits: int = 100, max_running: int = 15) -> IssuedKey:
        db = await open_database(self.settings)
        try:
            return await keys.create_key(db, KeySpec("cancel", credits, 1000, max_running))
        finally:
            await db.aclose()

    async def job(self, job_id: str) -> Job:
        async with self._read() as session:
            job = await job_store.get(session, job_id)
        assert job is not None
        return job

    async def ledger(self, key_id: str) -> list[tuple[str, int]]:
        async with self._read() as session:
            rows = await ledger_store.entries_for_key(session, key_id, limit=50, before_id=None)
        return sorted((r.kind, r.amount) for r in rows)

    async def running(self, key_id: str) -> int:
        async with self._read() as session:
            return await job_store.count_running_for_key(session, key_id)

    def files(self) -> list[Path]:
        root = self.settings.data_dir / "files"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Iterator[Server]:
    overrides: dict[str, object] = {"worker_concurrency": 1}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    settings = make_settings(**overrides)
    GATE.reset()
    try:
        with serve_in_thread(create_app(settings, engines=TEST_ENGINES)) as url:
            yield Server(url, settings.model_copy(update={"public_url": url}))
    finally:
        GATE.may_stop.set()  # a test that failed midway must not hold the server's shutdown


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as c:
        yield c


async def _submit(client: httpx.AsyncClient, key: IssuedKey, body: object) -> str:
    response = await client.post("/v1/videos/generate", json=body, headers=auth(key))
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


async def test_a_running_job_holds_its_slot_and_is_refunded_only_once_stopped(
    server: Server, client: httpx.AsyncClient
) -> None:
    key = await server.key(credits=100, max_running=1)
    job_id = await _submit(client, key, STUBBORN)
    await eventually(lambda: _is(server, job_id, "running"), WAIT_S, "the job to run")
    await asyncio.to_thread(GATE.started.wait, WAIT_S)
    second = await _submit(client, key, {"model": "test-slow-video", "input": {"prompt": "x"}})

    cancel = asyncio.ensure_future(client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key)))
    assert await asyncio.to_thread(GATE.stopping.wait, WAIT_S), "the engine was never told"
    # Told, but not stopped yet: still running, still holding the key's only place, unrefunded.
    assert (await server.job(job_id)).status == "running"
    assert await server.running(key.info.id) == 1
    assert (await server.job(second)).status == "queued"
    assert ("refund", 7) not in await server.ledger(key.info.id)

    GATE.may_stop.set()
    answer = await cancel
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["error"]) == ("failed", "canceled")
    job = await server.job(job_id)
    assert (job.status, job.error_code, job.output_url) == ("canceled", "canceled", None)
    assert await server.ledger(key.info.id) == sorted(
        [("grant", 100), ("charge", -7), ("refund", 7), ("charge", -10)]
    )
    # The place it held goes to the next job of the key.
    await eventually(lambda: _is(server, second, "completed"), WAIT_S, "the next job to run")
    assert not any(job_id in str(p) for p in server.files())


async def test_a_cancelled_video_is_never_stored_or_served(
    server: Server, client: httpx.AsyncClient
) -> None:
    """The built-in video engine, told mid-render, stops; its MP4 is neither kept nor served."""
    key = await server.key(credits=1000)
    body = {"model": "sora-2-t2v", "input": {"prompt": "a red ball rolls", "duration": 15}}
    job_id = await _submit(client, key, body)
    await eventually(lambda: _progressed(server, job_id), WAIT_S, "the render to begin")

    answer = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["error"]) == ("failed", "canceled")
    charged = -answer.json()["creditsUsed"]
    assert await server.ledger(key.info.id) == sorted(
        [("grant", 1000), ("charge", charged), ("refund", -charged)]
    )
    assert (await client.get(f"/files/videos/{job_id}.mp4")).status_code == 404
    assert not any(job_id in str(p) for p in server.files())
    again = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert (again.status_code, again.json()) == (409, {"error": "Job already canceled"})
    assert len(await server.ledger(key.info.id)) == 3


async def test_a_queued_job_is_canceled_at_once_and_never_runs(
    server: Server, client: httpx.AsyncClient
) -> None:
    key = await server.key(credits=100, max_running=1)
    first = await _submit(client, key, STUBBORN)
    await eventually(lambda: _is(server, first, "running"), WAIT_S, "the first job to run")
    queued = await _submit(client, key, {"model": "test-slow-video", "input": {"prompt": "x"}})

    answer = await client.post(f"/v1/jobs/{queued}/cancel", headers=auth(key))
    assert (answer.status_code, answer.json()["error"]) == (200, "canceled")
    assert ("refund", 10) in await server.ledger(key.info.id)

    GATE.may_stop.set()
    await client.post(f"/v1/jobs/{first}/cancel", headers=auth(key))
    job = await server.job(queued)
    assert (job.status, job.attempts, job.started_at) == ("canceled", 0, None)


async def test_a_finished_job_answers_409_and_is_not_refunded(
    server: Server, client: httpx.AsyncClient
) -> None:
    key = await server.key(credits=100)
    body = {"model": "test-slow-video", "input": {"prompt": "x", "seconds": 0.05}}
    job_id = await _submit(client, key, body)
    await eventually(lambda: _is(server, job_id, "completed"), WAIT_S, "the job to finish")
    answer = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(key))
    assert (answer.status_code, answer.json()) == (409, {"error": "Job already completed"})
    assert await server.ledger(key.info.id) == sorted([("grant", 100), ("charge", -10)])
    video = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()["outputUrl"]
    assert (await client.get(urlsplit(video).path)).status_code == 200  # served here


async def test_another_keys_job_cannot_be_cancelled(
    server: Server, client: httpx.AsyncClient
) -> None:
    owner, other = await server.key(), await server.key()
    job_id = await _submit(client, owner, STUBBORN)
    answer = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(other))
    assert (answer.status_code, answer.json()) == (404, {"error": "Job not found"})
    GATE.may_stop.set()
    assert (await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(owner))).status_code == 200


async def _is(server: Server, job_id: str, status: str) -> bool:
    return (await server.job(job_id)).status == status


async def _progressed(server: Server, job_id: str) -> bool:
    job = await server.job(job_id)
    assert job.status in ("queued", "running"), f"the job ended first: {job.status}"
    return job.progress > 0
