"""``hypereal-upstream`` against a real upstream: a second hyperlocal in a subprocess, with the
test engines and catalogue, on loopback. The engine is driven directly and through the app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.upstream import UpstreamEngine, create
from hyperlocal.errors import GenerationError, GenerationTimeoutError
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import KeyFactory, SettingsFactory, auth
from tests.processes import server_env, server_process
from tests.support import TEST_CATALOG, free_port, tiny_png

KEY_ENV = "UPSTREAM_TEST_KEY"
BAD_KEY_ENV = "UPSTREAM_TEST_BAD_KEY"
UPSTREAM_CREDITS = 100_000


@dataclass(frozen=True)
class Upstream:
    url: str  # its API, at 127.0.0.1; its outputs are at localhost (its public URL)
    key: str

    async def get(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get(path, headers={"Authorization": f"Bearer {self.key}"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def credits(self) -> int:
        return int((await self.get("/v1/account"))["credits"])

    async def newest_job(self) -> dict[str, Any]:
        job: dict[str, Any] = (await self.get("/v1/jobs?limit=1"))["data"][0]
        return job

    async def newest_output(self) -> bytes:
        job = await self.newest_job()
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(job["outputUrl"])).content


async def _create_key(settings: Settings) -> str:
    db = await open_database(settings)
    try:
        return (await keys.create_key(db, KeySpec("front", UPSTREAM_CREDITS, 100_000, 50))).key
    finally:
        await db.aclose()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    data = tmp_path_factory.mktemp("upstream")
    settings = Settings(_env_file=None, data_dir=data, catalog=TEST_CATALOG)
    with ThreadPoolExecutor(1) as pool:  # its own event loop, outside the tests' loops
        key = pool.submit(asyncio.run, _create_key(settings)).result()
    port = free_port()
    env = server_env(
        data,
        HYPERLOCAL_PUBLIC_URL=f"http://localhost:{port}",
        HYPERLOCAL_BOOTSTRAP_KEYS="false",
    )
    with server_process(port, env, data / "server.log"):
        yield Upstream(f"http://127.0.0.1:{port}", key)


@pytest.fixture(autouse=True)
def upstream_keys(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, upstream.key)
    monkeypatch.setenv(BAD_KEY_ENV, "ck_not_a_key_the_upstream_issued")


def _closed_port() -> int:
    return free_port()  # bound and released again: nobody listens there


# --- the engine, driven directly -----------------------------------------------------------


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[UpstreamEngine]:
    upstream_engine = create(EngineContext(settings))
    yield upstream_engine
    await upstream_engine.aclose()


class Progress:
    def __init__(self) -> None:
        self.seen: list[float] = []

    async def __call__(self, fraction: float, _message: str | None) -> None:
        self.seen.append(fraction)


def _options(upstream: Upstream, model: str, **extra: InputValue) -> dict[str, InputValue]:
    options: dict[str, InputValue] = {
        "base_url": upstream.url,
        "upstream_model": model,
        "api_key_env": KEY_ENV,
        "poll_interval": 0.1,
        "timeout": 30,
    }
    options.update(extra)
    return options


def _request(
    category: Category,
    options: dict[str, InputValue],
    params: dict[str, InputValue],
    media: dict[str, list[MediaInput]] | None = None,
    job_id: str | None = None,
) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id or f"job_{time.monotonic_ns()}",
        model="upstream-model",
        category=category,
        params=params,
        media=media or {},
        options=options,
    )


async def test_image_comes_back_as_the_upstream_made_it_and_is_charged_once(
    engine: UpstreamEngine, upstream: Upstream
) -> None:
    before = await upstream.credits()
    request = _request(
        Category.IMAGE, _options(upstream, "gemini-3-1-flash-t2i"), {"prompt": "a red fox"}
    )
    result = await engine.generate(request, Progress())
    artifact = result.artifacts[0]
    assert (artifact.content_type, artifact.extension) == ("image/png", "png")
    assert artifact.data == await upstream.newest_output()
    again = await engine.generate(request, Progress())  # same job id: same Idempotency-Key
    assert again.artifacts[0].data == artifact.data
    assert await upstream.credits() == before - 4


async def test_edit_sends_the_fetched_images_inline(
    engine: UpstreamEngine, upstream: Upstream
) -> None:
    image = MediaInput("images[0]", MediaKind.IMAGE, "image/png", tiny_png(), "data:")
    request = _request(
        Category.IMAGE_EDIT,
        _options(upstream, "nano-banana-edit"),
        {"prompt": "make it blue", "images": ["data:"]},
        {"images": [image]},
    )
    result = await engine.generate(request, Progress())
    assert result.artifacts[0].data.startswith(b"\x89PNG")
    assert (await upstream.newest_job())["model"] == "nano-banana-edit"


async def test_video_job_is_followed_to_completion_with_progress(
    engine: UpstreamEngine, upstream: Upstream
) -> None:
    progress = Progress()
    request = _request(
        Category.VIDEO,
        _options(upstream, "test-slow-video"),
        {"prompt": "waves", "seconds": 1.5, "duration": 5},
    )
    result = await engine.generate(request, progress)
    assert result.artifacts[0].data == await upstream.newest_output()
    assert any(0 < fraction < 1 for fraction in progress.seen), progress.seen
    assert progress.seen == sorted(progress.seen)


async def test_audio_is_synchronous(engine: UpstreamEngine, upstream: Upstream) -> None:
    request = _request(
        Category.AUDIO, _options(upstream, "test-slow-audio"), {"text": "hi", "seconds": 0.1}
    )
    result = await engine.generate(request, Progress())
    assert result.artifacts[0].data == await upstream.newest_output()


async def test_upstream_failure_carries_the_upstream_error(
    engine: UpstreamEngine, upstream: Upstream
) -> None:
    before = await upstream.credits()
    request = _request(Category.IMAGE, _options(upstream, "test-fail-t2i"), {"prompt": "x"})
    with pytest.raises(GenerationError) as caught:
        await engine.generate(request, Progress())
    assert caught.value.message == "upstream: the model ran out of memory"
    assert caught.value.code == "E1001"
    assert await upstream.credits() == before  # the upstream refunded its own job


async def test_wrong_key_says_so(engine: UpstreamEngine, upstream: Upstream) -> None:
    options = _options(upstream, "gemini-3-1-flash-t2i", api_key_env=BAD_KEY_ENV)
    with pytest.raises(GenerationError) as caught:
        await engine.generate(_request(Category.IMAGE, options, {"prompt": "x"}), Progress())
    assert caught.value.message.startswith("upstream: Unauthorized.")
    assert BAD_KEY_ENV in caught.value.message
    assert "ck_not_a_key" not in caught.value.message


async def test_unset_key_variable_fails_before_calling(
    engine: UpstreamEngine, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    request = _request(Category.IMAGE, _options(upstream, "gemini-3-1-flash-t2i"), {"prompt": "x"})
    with pytest.raises(GenerationError, match=f"{KEY_ENV} is not set"):
        await engine.generate(request, Progress())


async def test_upstream_down_is_e1001(engine: UpstreamEngine, upstream: Upstream) -> None:
    options = _options(upstream, "gemini-3-1-flash-t2i", retries=1)
    options["base_url"] = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(GenerationError) as caught:
        await engine.generate(_request(Category.IMAGE, options, {"prompt": "x"}), Progress())
    assert caught.value.code == "E1001"
    assert "could not connect" in caught.value.message


async def test_timeout_is_e1002_and_cancels_the_upstream_job(
    engine: UpstreamEngine, upstream: Upstream
) -> None:
    before = await upstream.credits()
    options = _options(upstream, "test-slow-video", timeout=0.8)
    request = _request(Category.VIDEO, options, {"prompt": "waves", "seconds": 10})
    with pytest.raises(GenerationTimeoutError) as caught:
        await engine.generate(request, Progress())
    assert caught.value.code == "E1002"
    job = await upstream.newest_job()
    assert (job["status"], job["error"]) == ("failed", "canceled")
    assert await upstream.credits() == before


async def test_outputs_elsewhere_pass_the_address_guard(
    make_settings: SettingsFactory, upstream: Upstream
) -> None:
    engine = create(EngineContext(make_settings(allow_private_urls=False)))
    try:
        # The API at 127.0.0.1 is the operator's choice; the outputs it names at localhost
        # are another host, and a loopback one.
        options = _options(upstream, "gemini-3-1-flash-t2i")
        request = _request(Category.IMAGE, options, {"prompt": "x"})
        with pytest.raises(GenerationError, match="private address"):
            await engine.generate(request, Progress())
        # Named at the upstream's own origin, the same outputs come home.
        options["base_url"] = upstream.url.replace("127.0.0.1", "localhost")
        result = await engine.generate(
            _request(Category.IMAGE, options, {"prompt": "x"}), Progress()
        )
        assert result.artifacts[0].data.startswith(b"\x89PNG")
    finally:
        await engine.aclose()


# --- through our app -----------------------------------------------------------------------


def _entry(model_id: str, category: str, credits: int, options: dict[str, InputValue]) -> str:
    inputs = {
        "image": 'inputs.prompt = { type = "string", required = true }',
        "video": 'inputs.prompt = { type = "string", required = true }\n'
        'inputs.seconds = { type = "number" }',
    }[category]
    inline = ", ".join(f"{name} = {json.dumps(value)}" for name, value in options.items())
    return f"""
[[model]]
id = "{model_id}"
category = "{category}"
name = "{model_id}"
engine = "hypereal-upstream"
timeout_s = 60
price = {{ kind = "flat", credits = {credits} }}
{inputs}
engine_options = {{ {inline} }}
"""


@pytest.fixture
def front_catalog(tmp_path: Path, upstream: Upstream) -> Path:
    down = _options(upstream, "gemini-3-1-flash-t2i", retries=1)
    down["base_url"] = f"http://127.0.0.1:{_closed_port()}"
    entries = [
        _entry("upstream-gemini", "image", 7, _options(upstream, "gemini-3-1-flash-t2i")),
        _entry("upstream-slow-video", "video", 30, _options(upstream, "test-slow-video")),
        _entry("upstream-fail", "image", 9, _options(upstream, "test-fail-t2i")),
        _entry(
            "upstream-bad-key",
            "image",
            9,
            _options(upstream, "gemini-3-1-flash-t2i", api_key_env=BAD_KEY_ENV),
        ),
        _entry("upstream-down", "image", 9, down),
    ]
    path = tmp_path / "front.toml"
    path.write_text("".join(entries))
    return path


@pytest.fixture
async def front(make_settings: SettingsFactory, front_catalog: Path) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(catalog=front_catalog), engines={"hypereal-upstream": create})
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        yield app


@pytest.fixture
async def front_client(front: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=front)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def front_key(front: FastAPI) -> KeyFactory:
    async def issue(credits: int = 1000, **_: Any) -> keys.IssuedKey:
        spec = KeySpec("front", credits, 10_000, 15)
        return await keys.create_key(front.state.services.db, spec)

    return issue


async def _credits(client: httpx.AsyncClient, key: keys.IssuedKey) -> int:
    return int((await client.get("/v1/account", headers=auth(key))).json()["credits"])


async def test_image_is_rehosted_in_our_storage(
    front_client: httpx.AsyncClient, front_key: KeyFactory, upstream: Upstream
) -> None:
    key = await front_key()
    body = {"model": "upstream-gemini", "prompt": "a lighthouse"}
    response = await front_client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    payload = response.json()
    url = payload["data"][0]["url"]
    assert url == f"http://testserver/files/images/{payload['resultId']}.png"
    assert payload["creditsUsed"] == 7
    ours = await front_client.get(url)
    assert ours.headers["content-type"] == "image/png"
    assert ours.content == await upstream.newest_output()
    assert await _credits(front_client, key) == 993


async def test_video_job_follows_the_upstream_to_completion(
    front_client: httpx.AsyncClient, front_key: KeyFactory, upstream: Upstream
) -> None:
    key = await front_key()
    body = {"model": "upstream-slow-video", "input": {"prompt": "waves", "seconds": 1.5}}
    response = await front_client.post("/v1/videos/generate", json=body, headers=auth(key))
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    seen: list[float] = []
    deadline = time.monotonic() + 30
    while (job := (await front_client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json())[
        "status"
    ] == "processing":
        seen.append(job.get("progress", 0.0))
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)
    assert job["status"] == "completed", job
    assert job["outputUrl"].startswith(f"http://testserver/files/videos/{job_id}.")
    assert any(0 < fraction < 1 for fraction in seen), seen
    ours = await front_client.get(job["outputUrl"])
    assert ours.content == await upstream.newest_output()


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("upstream-fail", "upstream: the model ran out of memory"),
        ("upstream-bad-key", "upstream: Unauthorized."),
        ("upstream-down", "upstream: could not connect to http://127.0.0.1:"),
    ],
)
async def test_upstream_trouble_fails_our_job_and_refunds(
    front_client: httpx.AsyncClient, front_key: KeyFactory, model: str, error: str
) -> None:
    key = await front_key()
    body = {"model": model, "prompt": "x"}
    response = await front_client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 500, response.text
    assert response.json()["error"].startswith(error)
    assert response.json()["code"] == "E1001"
    assert await _credits(front_client, key) == 1000
