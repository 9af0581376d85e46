"""Key priorities (spec §12), embedded, on SQLite and on PostgreSQL: with one worker slot
held, the waiting jobs of a priority-2 key start before the earlier jobs of a priority-0 key of
the same model, and the queue shows them in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from hyperlocal.app import create_app
from hyperlocal.core.keys import KeySpec
from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    EngineFactory,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.errors import InputError
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from tests.cli._cli import Cli, cli_env
from tests.conftest import KeyFactory, SettingsFactory, auth, services_of
from tests.support import TEST_CATALOG, TEST_ENGINES, eventually, tiny_png

WAIT_S = 60.0  # bounds a failure only: each wait is for a condition
HELD_MODEL = "priority-held-video"
HELD_IMAGE_MODEL = "priority-held-t2i"


@dataclass
class HeldEngine:
    """A model runtime that records the order in which jobs start, and holds each job until
    the test lets them all go."""

    started: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        self.started.append(request.job_id)
        await self.release.wait()
        return GenerationResult(artifacts=[Artifact(tiny_png(), "image/png", "png")])

    async def aclose(self) -> None:
        return None

    def factory(self) -> EngineFactory:
        def create(_context: EngineContext) -> HeldEngine:
            return self

        return create


def held_catalog(tmp_path: Path) -> Path:
    """The test catalogue, plus a video and an image model served by the ``test-held``
    engine (``HeldEngine``)."""
    extra = "".join(
        f"""
[[model]]
id = "{model}"
category = "{category}"
name = "Held until the test lets go"
engine = "test-held"
timeout_s = 60
price = {{ kind = "flat", credits = 4 }}
inputs.prompt = {{ type = "string", required = true }}
"""
        for model, category in ((HELD_MODEL, "video"), (HELD_IMAGE_MODEL, "image"))
    )
    path = tmp_path / "catalog.toml"
    path.write_text(TEST_CATALOG.read_text() + extra)
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, tmp_path: Path
) -> Settings:
    """One worker slot, so jobs wait in the queue; on SQLite, then on PostgreSQL."""
    values: dict[str, Any] = {"worker_concurrency": 1, "catalog": held_catalog(tmp_path)}
    if request.param == "postgres":
        values["database_url"] = request.getfixturevalue("postgres_url")
    return make_settings(**values)


@pytest.fixture
def engine() -> HeldEngine:
    return HeldEngine()


@pytest.fixture
async def app(settings: Settings, engine: HeldEngine) -> AsyncIterator[Any]:
    engines = {**TEST_ENGINES, "test-held": engine.factory()}
    application = create_app(settings, engines=engines)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        try:
            yield application
        finally:
            engine.release.set()  # a test that failed midway must not hold the shutdown


async def _submit(client: httpx.AsyncClient, key: dict[str, str]) -> str:
    body = {"model": HELD_MODEL, "input": {"prompt": "a lighthouse"}}
    response = await client.post("/v1/videos/generate", json=body, headers=key)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


async def _create_key(
    client: httpx.AsyncClient, admin: dict[str, str], priority: int
) -> dict[str, str]:
    """A key made through ``POST /admin/keys``; its auth header."""
    body = {"name": f"priority-{priority}", "credits": 100, "priority": priority}
    created = await client.post("/admin/keys", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["priority"] == priority
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def test_a_higher_priority_key_s_jobs_start_first(
    app: Any, client: httpx.AsyncClient, issue_key: KeyFactory, engine: HeldEngine
) -> None:
    admin = auth(await issue_key(admin=True, credits=0))
    low = await _create_key(client, admin, 0)
    high = await _create_key(client, admin, 2)

    first = await _submit(client, low)
    await eventually(lambda: _started(engine, 1), WAIT_S, "the first job to hold the slot")
    waiting_low = [await _submit(client, low) for _ in range(2)]
    waiting_high = [await _submit(client, high) for _ in range(2)]
    owner = dict.fromkeys(waiting_low, low) | dict.fromkeys(waiting_high, high)

    # The queue shows the order they will start in: both of the higher key's jobs first.
    expected = [*waiting_high, *waiting_low]
    async with services_of(app).db.read() as session:
        assert await job_store.queued_ids(session) == expected
    for place, job_id in enumerate(expected):
        shown = (await client.get(f"/v1/jobs/{job_id}", headers=owner[job_id])).json()
        assert shown["queuePosition"] == place, shown

    engine.release.set()

    async def all_completed() -> bool:
        return all([await _completed(client, owner[job_id], job_id) for job_id in expected])

    await eventually(all_completed, WAIT_S, "every job to complete")
    assert engine.started == [first, *expected]


async def _started(engine: HeldEngine, count: int) -> bool:
    return len(engine.started) >= count


async def _completed(client: httpx.AsyncClient, key: dict[str, str], job_id: str) -> bool:
    shown = (await client.get(f"/v1/jobs/{job_id}", headers=key)).json()
    assert shown["status"] != "failed", shown
    return bool(shown["status"] == "completed")


async def test_a_priority_outside_0_to_2_is_refused(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    admin = auth(await issue_key(admin=True, credits=0))
    for priority in (-1, 3):
        refused = await client.post(
            "/admin/keys", json={"name": "x", "priority": priority}, headers=admin
        )
        assert refused.status_code == 400, refused.text
        assert "priority" in refused.json()["error"]
    with pytest.raises(InputError, match="priority"):
        KeySpec("x", 0, 1000, 15, priority=3)
    default = await client.post("/admin/keys", json={"name": "plain"}, headers=admin)
    assert default.json()["priority"] == 0


def test_keys_create_takes_a_priority(tmp_path: Path) -> None:
    cli = Cli(tmp_path, cli_env(tmp_path / "data"))
    helped = cli.run("keys", "create", "--help").stdout
    assert "--priority" in helped and "highest" in helped
    created = cli.json("keys", "create", "--name", "urgent", "--priority", "2", "--json")
    listed = {row["id"]: row for row in cli.json("keys", "list", "--json")}
    assert listed[created["id"]]["priority"] == 2
    refused = cli.run("keys", "create", "--name", "x", "--priority", "3", ok=False)
    assert refused.returncode != 0 and "priority" in refused.stderr
