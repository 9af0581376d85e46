"""Issue acceptance: with nothing beyond the defaults, every model id in GET /v1/models answers
a valid request with output that an independent decoder accepts (Pillow, PyAV, soundfile,
trimesh), built from the catalogue's own input schemas. Each model runs in its sync form and as
a ``Prefer: respond-async`` job, and every job it made reads back through ``GET /v1/jobs/{id}``
and ``GET /v1/jobs``."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image, ImageDraw

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.catalog import InputSpec, InputType, ModelEntry, load_catalog
from hyperlocal.core.keys import IssuedKey, KeySpec
from tests.conftest import SettingsFactory, auth

pytestmark = pytest.mark.slow

CATALOG = [e for e in load_catalog() if e.category.value != "chat"]
ENDPOINTS = {
    "image": "/v1/images/generate",
    "image_edit": "/v1/images/edit",
    "video": "/v1/videos/generate",
    "audio": "/v1/audio/generate",
    "3d": "/v1/3d/generate",
}


def _png(color: tuple[int, int, int], size: int = 256) -> str:
    image = Image.new("RGB", (size, size), (240, 240, 245))
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=color)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _mp4(seconds: float = 2.0) -> str:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(int(12 * seconds)):
            frame = np.full((96, 160, 3), (i * 9) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return "data:video/mp4;base64," + base64.b64encode(buf.getvalue()).decode()


def _value(name: str, spec: InputSpec, speech: str) -> Any:
    media = {InputType.IMAGE: _png((200, 60, 40)), InputType.AUDIO: speech, InputType.VIDEO: _mp4()}
    if spec.type in media:
        return media[spec.type]
    if spec.type is InputType.IMAGES:
        return [_png((40, 90, 200))]
    if spec.enum:
        return (
            sorted(spec.enum, key=str)[0]
            if name in ("duration", "resolution")
            else spec.default or spec.enum[0]
        )
    if name == "duration" and spec.minimum is not None:
        return int(spec.minimum)
    if spec.type is InputType.STRING:
        return "a red ball rolling on a table, the camera zooms in"[: spec.max_length or 200]
    return spec.default


def build_inputs(entry: ModelEntry, speech: str) -> dict[str, Any]:
    chosen = {}
    for name, spec in entry.inputs.items():
        wanted = spec.required or (
            spec.type in (InputType.IMAGE, InputType.IMAGES)
            and entry.category.value == "image_edit"
        )
        if wanted or name in ("duration", "resolution"):
            value = _value(name, spec, speech)
            if value is not None:
                chosen[name] = value
    if entry.category.value == "image_edit":
        chosen["prompt"] = "make it grayscale"
    return chosen


@pytest.fixture
async def client_and_key(
    make_settings: SettingsFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, IssuedKey]]:
    app = create_app(make_settings(catalog=None))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        key = await keys.create_key(app.state.services.db, KeySpec("all", 10**9, 10**6, 15))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=600
        ) as client:
            yield client, key


async def _speech(client: httpx.AsyncClient, key: IssuedKey) -> str:
    body = {
        "model": "audio-tts",
        "input": {"text": "Hello there. This is a test of the voice.", "format": "wav"},
    }
    response = await client.post("/v1/audio/generate", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    wav = (await client.get(response.json()["outputUrl"])).content
    return "data:audio/wav;base64," + base64.b64encode(wav).decode()


async def _result(
    client: httpx.AsyncClient,
    key: IssuedKey,
    entry: ModelEntry,
    inputs: dict[str, Any],
    prefer_async: bool = False,
) -> tuple[dict[str, Any], bytes]:
    category = entry.category.value
    if category in ("image", "image_edit"):
        body: dict[str, Any] = {"model": entry.id, **inputs}
    else:
        body = {"model": entry.id, "input": inputs}
    headers = {**auth(key), "Prefer": "respond-async"} if prefer_async else auth(key)
    response = await client.post(ENDPOINTS[category], json=body, headers=headers)
    assert response.status_code in (200, 202), f"{entry.id}: {response.text}"
    assert response.status_code == 202 or not prefer_async, f"{entry.id}: not a job"
    payload = response.json()
    if response.status_code == 202:
        payload = await _wait(client, key, payload["jobId"], entry.id)
    url = payload["data"][0]["url"] if "data" in payload else payload["outputUrl"]
    return payload, (await client.get(url)).content


async def _wait(
    client: httpx.AsyncClient, key: IssuedKey, job_id: str, model: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 900  # bounds a failure only: queued behind the others
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
        assert response.status_code == 200, f"{model}: {response.status_code} {response.text}"
        job = response.json()
        if job["status"] != "processing":
            assert job["status"] == "completed", f"{model}: {job}"
            return dict(job)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{model} did not finish")


def _check_video(data: bytes, expected: float, model: str) -> None:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264", model
        seconds = float(container.duration or 0) / 1_000_000
    assert abs(seconds - expected) <= 0.1 * expected + 0.05, (
        f"{model}: {seconds} s, wanted {expected}"
    )


def _check(entry: ModelEntry, inputs: dict[str, Any], payload: dict[str, Any], data: bytes) -> None:
    category, model = entry.category.value, entry.id
    if category in ("image", "image_edit"):
        Image.open(io.BytesIO(data)).load()
    elif category == "video":
        _check_video(data, _expected_video_seconds(inputs), model)
    elif category == "3d":
        import trimesh

        mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
        assert len(mesh.faces) > 0, model
        if entry.engine in ("visual-hull-3d", "inflate-3d"):
            assert mesh.is_watertight, model
    elif entry.engine == "whisper-asr":
        assert "test" in payload["text"].lower() and payload["segments"], model
    else:
        import soundfile

        if data[:4] in (b"RIFF", b"OggS"):
            info = soundfile.info(io.BytesIO(data))
            assert abs(info.duration - payload["duration"]) < 0.1, model
        else:
            assert data[:3] == b"ID3" or data[0] == 0xFF, model  # an MP3 stream
        assert payload["duration"] > 0, model


def _expected_video_seconds(inputs: dict[str, Any]) -> float:
    import av

    for field in ("audio", "video"):
        if field in inputs:
            raw = base64.b64decode(inputs[field].split(",", 1)[1])
            with av.open(io.BytesIO(raw)) as container:
                return float(container.duration or 0) / 1_000_000
    return float(inputs.get("duration") or 5)


async def _listed_jobs(client: httpx.AsyncClient, key: IssuedKey) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/jobs", params=params, headers=auth(key))
        assert response.status_code == 200, f"GET /v1/jobs: {response.text[:300]}"
        rows += response.json()["data"]
        cursor = response.json().get("nextCursor")
        if not cursor:
            return rows


def _job_of(payload: dict[str, Any], listed: list[dict[str, Any]]) -> str | None:
    """The job behind a result: polled jobs and audio/3D answers name it; a sync image answer
    names its ``resultId``, which its job's view carries too."""
    if "jobId" in payload:
        return str(payload["jobId"])
    return next((j["jobId"] for j in listed if j.get("resultId") == payload["resultId"]), None)


async def _check_read_back(
    client: httpx.AsyncClient, key: IssuedKey, made: list[tuple[ModelEntry, dict[str, Any]]]
) -> list[str]:
    listed = await _listed_jobs(client, key)
    by_id = {j["jobId"]: j for j in listed}
    failures = []
    for entry, payload in made:
        job_id = _job_of(payload, listed)
        if job_id is None:
            failures.append(f"{entry.id}: its job is not in GET /v1/jobs")
            continue
        response = await client.get(f"/v1/jobs/{job_id}", headers=auth(key))
        read = response.json() if response.status_code == 200 else {}
        shown = (read.get("status"), read.get("model"), by_id.get(job_id, {}).get("model"))
        if shown != ("completed", entry.id, entry.id):
            failures.append(
                f"{entry.id} {job_id}: (status, model, listed model) {shown} {response.text[:200]}"
            )
    return failures


async def test_every_model_produces_decodable_output(
    client_and_key: tuple[httpx.AsyncClient, IssuedKey],
) -> None:
    client, key = client_and_key
    listed = {m["id"] for m in (await client.get("/v1/models", headers=auth(key))).json()["data"]}
    assert {e.id for e in CATALOG} <= listed
    speech = await _speech(client, key)
    failures: list[str] = []
    made: list[tuple[ModelEntry, dict[str, Any]]] = []
    # A few at once: the engines render in threads, so both cores work (the server's four
    # worker slots take the async ones, and a sync one runs in its request's task).
    at_once = asyncio.Semaphore(3)

    async def run(entry: ModelEntry, prefer_async: bool) -> None:
        inputs = build_inputs(entry, speech)
        async with at_once:
            try:
                payload, data = await _result(client, key, entry, inputs, prefer_async)
                _check(entry, inputs, payload, data)
                made.append((entry, payload))
            except AssertionError as exc:
                failures.append(f"{'async' if prefer_async else 'sync'} {str(exc)[:300]}")

    await asyncio.gather(*(run(e, a) for e in CATALOG for a in (False, True)))
    failures += await _check_read_back(client, key, made)
    assert not failures, "\n".join(failures)
