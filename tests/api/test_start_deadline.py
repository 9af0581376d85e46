"""``X-Start-Deadline`` (spec §12), embedded, on SQLite and on PostgreSQL: a job that has not
started within that many seconds of its submit fails (E1005) and is refunded, whether the
sweep finds it waiting or a worker claims it late, and its webhook tells so; a synchronous call
honours it too. An invalid header is a 400 that charges nothing; a deadline that is met changes
nothing. Each wait is for a condition: the queue is held by an engine the test lets go of."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import update

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.generation import SubmitRequest, submit
from hyperlocal.core.keys import KeySpec
from hyperlocal.core.lease import ClaimOutcome
from hyperlocal.core.services import Services
from hyperlocal.engines.base import Category
from hyperlocal.runtime import close_services, open_services
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.tables import Job
from tests.conftest import KeyFactory, SettingsFactory, auth, services_of
from tests.core.test_priority import HELD_IMAGE_MODEL, HELD_MODEL, HeldEngine, held_catalog
from tests.receiver import Receiver, running_receiver
from tests.support import TEST_ENGINES, eventually

WAIT_S = 60.0  # bounds a failure only: the sweep that fails a late job runs every 5 s
PRICE = 4  # the held models' flat price
TINY = {"X-Start-Deadline": "0.05"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, tmp_path: Path
) -> Settings:
    """One worker slot, which a held job can fill; on SQLite, then on PostgreSQL."""
    values: dict[str, Any] = {
        "worker_concurrency": 1,
        "catalog": held_catalog(tmp_path),
        "webhook_poll_interval": 0.05,
    }
    if request.param == "postgres":
        values["database_url"] = request.getfixturevalue("postgres_url")
    return make_settings(**values)


@pytest.fixture
def engine() -> HeldEngine:
    return HeldEngine()


@pytest.fixture
async def app(settings: Settings, engine: HeldEngine) -> AsyncIterator[Any]:
    application = create_app(settings, engines={**TEST_ENGINES, "test-held": engine.factory()})
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        try:
            yield application
        finally:
            engine.release.set()  # a test that failed midway must not hold the shutdown


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


async def _video(
    client: httpx.AsyncClient, key: dict[str, str], headers: dict[str, str], **body: Any
) -> httpx.Response:
    payload = {"model": HELD_MODEL, "input": {"prompt": "a storm at sea"}, **body}
    return await client.post("/v1/videos/generate", json=payload, headers={**key, **headers})


async def _hold_the_slot(client: httpx.AsyncClient, key: dict[str, str], engine: HeldEngine) -> str:
    """A job that takes the only worker slot and keeps it until ``engine.release``."""
    held = await _video(client, key, {})
    assert held.status_code == 202, held.text

    async def holding() -> bool:
        return len(engine.started) == 1

    await eventually(holding, WAIT_S, "the first job to hold the slot")
    return str(held.json()["jobId"])


async def _job(client: httpx.AsyncClient, key: dict[str, str], job_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}", headers=key)).json()
    return shown


async def _status_is(
    client: httpx.AsyncClient, key: dict[str, str], job_id: str, status: str
) -> bool:
    return bool((await _job(client, key, job_id))["status"] == status)


async def _credits(client: httpx.AsyncClient, key: dict[str, str]) -> int:
    return int((await client.get("/v1/account", headers=key)).json()["credits"])


async def test_a_job_still_queued_at_its_deadline_fails_refunded_and_its_webhook_fires(
    client: httpx.AsyncClient, issue_key: KeyFactory, engine: HeldEngine, receiver: Receiver
) -> None:
    key = auth(await issue_key(credits=100))
    held = await _hold_the_slot(client, key, engine)
    late = await _video(client, key, TINY, webhook_url=receiver.url("late"))
    assert late.status_code == 202, late.text
    job_id = str(late.json()["jobId"])
    assert await _credits(client, key) == 100 - 2 * PRICE

    # Nobody claims it: the sweep fails it while the slot is still held.
    await eventually(lambda: _status_is(client, key, job_id, "failed"), WAIT_S, "the failure")
    shown = await _job(client, key, job_id)
    assert shown["code"] == "E1005"
    assert "X-Start-Deadline" in shown["error"] and "queued" in shown["error"]
    assert await _credits(client, key) == 100 - PRICE  # refunded in full

    async def delivered() -> bool:
        return bool(receiver.on("late"))

    await eventually(delivered, WAIT_S, "the webhook")
    payload = json.loads(receiver.on("late")[0].body)
    assert (payload["jobId"], payload["status"]) == (job_id, "failed")
    assert payload["error"] == shown["error"]

    engine.release.set()
    await eventually(lambda: _status_is(client, key, held, "completed"), WAIT_S, "the held job")
    assert engine.started == [held]  # the late job never ran


async def test_a_synchronous_call_honours_its_deadline(
    client: httpx.AsyncClient, issue_key: KeyFactory, engine: HeldEngine
) -> None:
    key = auth(await issue_key(credits=100))
    held = await _hold_the_slot(client, key, engine)
    body = {"model": HELD_IMAGE_MODEL, "prompt": "a lighthouse"}
    answer = await client.post(
        "/v1/images/generate", json=body, headers={**key, **TINY}, timeout=WAIT_S
    )
    assert answer.status_code == 500, answer.text
    assert answer.json()["code"] == "E1005"
    assert "X-Start-Deadline" in answer.json()["error"]
    assert await _credits(client, key) == 100 - PRICE
    engine.release.set()
    await eventually(lambda: _status_is(client, key, held, "completed"), WAIT_S, "the held job")
    assert engine.started == [held]


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "inf", "", "2592001"])
async def test_an_invalid_deadline_is_a_400_that_charges_nothing(
    client: httpx.AsyncClient, issue_key: KeyFactory, value: str
) -> None:
    key = auth(await issue_key(credits=100))
    headers = {"X-Start-Deadline": value}
    for answer in (
        await _video(client, key, headers),
        await client.post(
            "/v1/images/generate",
            json={"model": HELD_IMAGE_MODEL, "prompt": "x"},
            headers={**key, **headers},
        ),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "E1004"
        assert answer.json()["error"].startswith("X-Start-Deadline: must be a number of seconds")
    assert await _credits(client, key) == 100


async def test_a_deadline_that_is_met_runs_normally(
    app: Any, client: httpx.AsyncClient, issue_key: KeyFactory, engine: HeldEngine
) -> None:
    key = auth(await issue_key(credits=100))
    engine.release.set()
    queued = await _video(client, key, {"X-Start-Deadline": "30"})
    job_id = str(queued.json()["jobId"])
    await eventually(lambda: _status_is(client, key, job_id, "completed"), WAIT_S, "the job")
    body = {"model": HELD_IMAGE_MODEL, "prompt": "a lighthouse"}
    sync = await client.post(
        "/v1/images/generate", json=body, headers={**key, "X-Start-Deadline": "30"}
    )
    assert sync.status_code == 200, sync.text
    assert await _credits(client, key) == 100 - 2 * PRICE
    async with services_of(app).db.read() as session:
        row = await job_store.get(session, job_id)
    assert row is not None and row.start_deadline_at is not None
    assert row.start_deadline_at - row.created_at == pytest.approx(30.0)


# -- at the claim: the lifecycle itself, with no queue or sweep running ------------------------


@pytest.fixture
async def services(settings: Settings, engine: HeldEngine) -> AsyncIterator[Services]:
    engines = {**TEST_ENGINES, "test-held": engine.factory()}
    svc = await open_services(settings, engines, start_queue=False)
    try:
        yield svc
    finally:
        await close_services(svc)


async def _submitted(svc: Services, deadline: float) -> tuple[str, str]:
    issued = await keys.create_key(svc.db, KeySpec("deadline", 100, 1000, 15))
    request = SubmitRequest(
        key=issued.info,
        model=HELD_MODEL,
        categories=(Category.VIDEO,),
        inputs={"prompt": "x"},
        start_deadline=deadline,
    )
    return (await submit(svc, request)).id, issued.info.id


async def _row(svc: Services, job_id: str) -> Job:
    async with svc.db.read() as session:
        job = await job_store.get(session, job_id)
    assert job is not None
    return job


async def test_a_claim_after_the_deadline_fails_the_job_instead_of_running_it(
    services: Services,
) -> None:
    job_id, key_id = await _submitted(services, deadline=0.01)
    deadline = (await _row(services, job_id)).start_deadline_at
    assert deadline is not None

    async def passed() -> bool:
        return time.time() > deadline

    await eventually(passed, WAIT_S, "the deadline to pass")
    claim = await services.lifecycle.start(job_id, "w1", lease_s=30)
    assert claim.outcome == ClaimOutcome.GONE
    row = await _row(services, job_id)
    assert (row.status, row.error_code) == ("failed", "E1005")
    assert (row.started_at, row.attempts) == (None, 0)  # it never started
    async with services.db.read() as session:
        lines = await ledger_store.entries_for_key(session, key_id, limit=10, before_id=None)
    assert sorted((line.kind, line.amount) for line in lines) == [
        ("charge", -PRICE),
        ("grant", 100),
        ("refund", PRICE),
    ]


async def test_a_job_that_started_once_has_met_its_deadline(services: Services) -> None:
    """Requeued after its worker was lost, a job that had started is neither failed by the
    sweep nor refused at its next claim, however late that is."""
    job_id, _ = await _submitted(services, deadline=3600)
    first = await services.lifecycle.start(job_id, "w1", lease_s=30)
    assert first.outcome == ClaimOutcome.CLAIMED
    past = time.time() - 10
    async with services.db.transaction() as session:
        values = {"lease_expires_at": past, "start_deadline_at": past}
        await session.execute(update(Job).where(Job.id == job_id).values(**values))
    assert await services.lifecycle.expire(max_attempts=3) == [job_id]
    assert (await _row(services, job_id)).status == "queued"
    second = await services.lifecycle.start(job_id, "w2", lease_s=30)
    assert second.outcome == ClaimOutcome.CLAIMED
    assert (await _row(services, job_id)).attempts == 2
