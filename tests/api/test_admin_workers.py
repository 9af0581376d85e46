"""``GET /admin/workers`` in the embedded shape: the API process is the one worker. It shows the
CPU before any model was placed, the tiny SD pipeline with its measured size once a
``diffusers-image`` job has run, and the jobs it runs by model beside the queue's depth."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hyperlocal.engines.local.weights import loaded_bytes
from hyperlocal.settings import Settings
from tests.conftest import KeyFactory, SettingsFactory, auth
from tests.support import TEST_CATALOG, eventually

LOCAL_SD = """
[[model]]
id = "local-sd"
category = "image"
name = "Tiny SD"
engine = "diffusers-image"
engine_options = { weights = "tiny-sd", steps = 1 }
price = { kind = "flat", credits = 1 }
inputs.prompt = { type = "string", required = true }
inputs.size = { type = "string" }
"""
HELD = {"model": "test-slow-video", "input": {"prompt": "waves", "seconds": 20}}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.engines.tiny_models import one_torch_thread, tiny_sd

    root = tmp_path_factory.mktemp("models")
    with one_torch_thread():
        tiny_sd(root / "tiny-sd")
        yield root


@pytest.fixture
def settings(make_settings: SettingsFactory, models_dir: Path, tmp_path: Path) -> Settings:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(TEST_CATALOG.read_text() + LOCAL_SD)
    return make_settings(catalog=catalog, models_dir=models_dir)


async def view(client: httpx.AsyncClient, admin: Any) -> dict[str, Any]:
    response = await client.get("/admin/workers", headers=auth(admin))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_only_an_admin_key_sees_the_workers(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    assert (await client.get("/admin/workers")).status_code == 401
    user = await issue_key()
    assert (await client.get("/admin/workers", headers=auth(user))).status_code == 403


@pytest.mark.filterwarnings(  # diffusers' Euler scheduler vs numpy 2; see the image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
async def test_the_server_is_one_worker_showing_its_cpu_then_the_model_a_job_loaded(
    client: httpx.AsyncClient, issue_key: KeyFactory, models_dir: Path
) -> None:
    admin, user = await issue_key(admin=True), await issue_key()
    (worker,) = (await view(client, admin))["workers"]
    assert worker["pid"] == os.getpid() and not worker["probed"]
    assert worker["startedAt"] <= time.time() <= worker["reportedAt"] + 60
    (cpu,) = worker["devices"]
    assert cpu["device"] == "cpu" and cpu["models"] == [] and cpu["used"] == 0
    assert 0 < cpu["budget"] < cpu["total"] and 0 < cpu["free"] <= cpu["total"]

    body = {"model": "local-sd", "prompt": "a lighthouse", "size": "64x64"}
    done = await client.post("/v1/images/generate", json=body, headers=auth(user))
    assert done.status_code == 200, done.text

    (worker,) = (await view(client, admin))["workers"]
    assert worker["probed"] and worker["running"] == {}
    (cpu,) = worker["devices"]  # torch on this machine sees no CUDA device
    (model,) = cpu["models"]
    assert (model["name"], model["engine"], model["users"]) == ("tiny-sd", "diffusers-image", 0)
    assert not model["pinned"] and not model["loading"] and model["idleSeconds"] >= 0
    estimate = loaded_bytes(models_dir / "tiny-sd", "float32")
    assert estimate / 2 < model["size"] < estimate * 2  # measured: its tensors, as loaded
    assert cpu["used"] == model["size"]


async def test_running_jobs_by_model_and_the_queue_depth(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    admin, capped = await issue_key(admin=True), await issue_key(max_running=1)
    held = [
        (await client.post("/v1/videos/generate", json=HELD, headers=auth(capped))).json()["jobId"]
        for _ in range(2)  # the second waits behind the first: the key's cap
    ]
    try:

        async def one_running() -> bool:
            (worker,) = (await view(client, admin))["workers"]
            return bool(worker["running"] == {"test-slow-video": 1})

        await eventually(one_running, 30, "the first held job to run")
        (queue,) = (await view(client, admin))["queues"]
        assert queue == {"model": "test-slow-video", "queued": 1, "running": 1}
    finally:
        for job_id in held:
            await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(capped))
