"""S3-compatible storage against a real S3 API server on loopback (moto in server mode)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from asgi_lifespan import LifespanManager
from moto.server import ThreadedMotoServer

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.services import Services
from hyperlocal.runtime import open_storage
from hyperlocal.settings import Settings
from hyperlocal.storage.s3 import S3Storage
from hyperlocal.store import jobs as job_store
from tests.conftest import SettingsFactory, auth, services_of
from tests.scaleout import _audit
from tests.scaleout._processes import HYPERLOCAL, spawned
from tests.scaleout.conftest import ScaleOut, new_key
from tests.support import TEST_ENGINES, SteppedClock, sweep_at, tiny_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CREDENTIALS = {"s3_access_key_id": "hltest", "s3_secret_access_key": "hltest-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = "hltest-" + secrets.token_hex(4)
    client = _admin(s3_endpoint)
    client.create_bucket(Bucket=name)
    client.close()
    return name


@pytest.fixture
def s3_values(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return {"storage_url": f"s3://{bucket}/outputs", "s3_endpoint_url": s3_endpoint, **CREDENTIALS}


@pytest.fixture
async def storage(
    make_settings: SettingsFactory, s3_values: dict[str, Any]
) -> AsyncIterator[S3Storage]:
    opened = open_storage(make_settings(**s3_values))
    assert isinstance(opened, S3Storage)
    try:
        yield opened
    finally:
        await opened.aclose()


async def fetch(url: str) -> bytes:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.content


async def test_put_returns_a_presigned_url_that_serves_the_exact_bytes(
    storage: S3Storage, s3_endpoint: str, bucket: str
) -> None:
    data = secrets.token_bytes(70_000)
    url = await storage.put("images/res_abc.png", data, "image/png")
    assert url.startswith(f"{s3_endpoint}/{bucket}/outputs/images/res_abc.png?")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=604800" in url
    assert await fetch(url) == data
    assert await storage.get("images/res_abc.png") == data


async def test_a_missing_key_is_file_not_found_and_unsafe_keys_are_refused(
    storage: S3Storage,
) -> None:
    with pytest.raises(FileNotFoundError):
        await storage.get("images/never-written.png")
    for unsafe in ("../escape.png", "/absolute.png", ""):
        with pytest.raises(ValueError, match="unsafe"):
            await storage.put(unsafe, b"x", "image/png")


async def test_public_mode_returns_plain_urls_under_the_public_base(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    _allow_public_reads(s3_endpoint, bucket)  # the operator's part of public mode
    base = f"{s3_endpoint}/{bucket}"
    public = open_storage(make_settings(**s3_values, s3_public_base_url=base + "/"))
    try:
        url = await public.put("videos/job_1.mp4", b"not really a video", "video/mp4")
    finally:
        await public.aclose()
    assert url == f"{base}/outputs/videos/job_1.mp4"
    assert await fetch(url) == b"not really a video"


async def test_the_api_stores_inputs_and_outputs_in_s3_and_answers_with_their_urls(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    async with _api(make_settings(**s3_values)) as (client, _svc, key):
        body = _edit(tiny_png(), prompt="make it pop")
        response = await client.post("/v1/images/edit", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    url = response.json()["data"][0]["url"]
    assert url.startswith(f"{s3_endpoint}/{bucket}/outputs/images/res_")
    assert (await fetch(url)).startswith(PNG_MAGIC)
    stored = _object_keys(s3_endpoint, bucket)
    inputs = [k for k in stored if k.startswith("outputs-private/inputs/job_")]
    assert len(inputs) == 1, stored  # beside the outputs' prefix, never under it
    assert not [k for k in stored if k.startswith("outputs/") and "inputs" in k], stored


async def test_a_public_bucket_does_not_serve_a_jobs_inputs_to_whoever_knows_its_id(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    _allow_public_reads(s3_endpoint, bucket)  # the operator's part of public mode
    base = f"{s3_endpoint}/{bucket}"
    secret = tiny_png((1, 2, 3))
    async with _api(make_settings(**s3_values, s3_public_base_url=base)) as (client, _svc, key):
        body = _edit(secret)
        headers = auth(key) | {"Prefer": "respond-async"}
        job_id = (await client.post("/v1/images/edit", json=body, headers=headers)).json()["jobId"]
        await _completed_url(client, key, job_id)
    # Video, audio and 3D outputs are named after the job: its id is public.
    async with httpx.AsyncClient(trust_env=False) as plain:
        for guess in (
            f"{base}/outputs/inputs/{job_id}/images-0",
            f"{base}/outputs-private/inputs/{job_id}/images-0",
            f"{base}/private/inputs/{job_id}/images-0",
        ):
            response = await plain.get(guess)
            assert response.status_code != 200 and secret not in response.content, guess


async def test_inputs_get_no_url_and_old_orphans_are_swept(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    from hyperlocal.core.stored_inputs import sweep_orphans

    async with _api(make_settings(**s3_values)) as (client, svc, key):
        edited = await client.post("/v1/images/edit", json=_edit(tiny_png()), headers=auth(key))
        assert edited.is_success
        await svc.private.put("inputs/job_gone/t0ken-images-0", b"orphan", "image/png")
        with pytest.raises(PermissionError):
            await svc.private.url("inputs/job_gone/t0ken-images-0")
        assert await sweep_orphans(svc.db, svc.private, time.time()) == []  # not an hour old
        later = time.time() + 2 * 3600  # S3 sets LastModified itself: the clock steps instead
        swept = await sweep_orphans(svc.db, svc.private, later)
    assert swept == ["inputs/job_gone/t0ken-images-0"]
    left = [k for k in _object_keys(s3_endpoint, bucket) if k.startswith("outputs-private/")]
    assert len(left) == 1 and left[0].startswith("outputs-private/inputs/job_"), left


async def test_a_jobs_presigned_url_is_signed_again_each_time_the_job_is_read(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    async with _api(make_settings(**s3_values, s3_presign_seconds=60)) as (client, svc, key):
        body = {"model": "gemini-3-1-flash-t2i", "prompt": "a lighthouse"}
        headers = auth(key) | {"Prefer": "respond-async"}
        accepted = await client.post("/v1/images/generate", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["jobId"]
        first = await _completed_url(client, key, job_id)
        await asyncio.sleep(1.1)  # X-Amz-Date counts whole seconds
        second = await _completed_url(client, key, job_id)
        row = await _job_row(svc, job_id)
    assert row.output_keys == [f"images/{row.result_id}.png"]
    assert first != second
    assert _signed_at(second) > _signed_at(first)
    assert (await fetch(second)).startswith(PNG_MAGIC)


async def _completed_url(client: httpx.AsyncClient, key: keys.IssuedKey, job_id: str) -> str:
    for _ in range(200):
        job = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()
        if job["status"] == "completed":
            return str(job["outputUrl"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not complete: {job}")


@asynccontextmanager
async def _api(
    settings: Settings, **app_options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, keys.IssuedKey]]:
    """The app on ``settings`` (S3 storage), a client on it, and a key with credits to spare."""
    app = create_app(settings, engines=TEST_ENGINES, **app_options)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        svc = services_of(app)
        yield client, svc, await keys.create_key(svc.db, keys.KeySpec("s3", 1000, 1000, 15))


def _edit(png: bytes, prompt: str = "x", **extra: Any) -> dict[str, Any]:
    """An image edit of ``png``, sent inline: its input is stored by hyperlocal."""
    source = "data:image/png;base64," + base64.b64encode(png).decode()
    return {"model": "nano-banana-edit", "prompt": prompt, "images": [source], **extra}


async def _job_row(svc: Services, job_id: str) -> Any:
    async with svc.db.read() as session:
        return await job_store.get(session, job_id)


def _signed_at(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Amz-Date"][0]


def _object_keys(endpoint: str, bucket: str) -> list[str]:
    client = _admin(endpoint)
    try:
        listing = client.list_objects_v2(Bucket=bucket)
    finally:
        client.close()
    return [item["Key"] for item in listing.get("Contents", [])]


def _allow_public_reads(endpoint: str, bucket: str) -> None:
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    client = _admin(endpoint)
    try:
        client.put_bucket_policy(Bucket=bucket, Policy=policy)
    finally:
        client.close()


def _admin(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["s3_access_key_id"],
        aws_secret_access_key=CREDENTIALS["s3_secret_access_key"],
    )


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_worker_process_writes_outputs_to_s3(
    scale_out: ScaleOut, s3_values: dict[str, Any], s3_endpoint: str, tmp_path: Path
) -> None:
    settings: Settings = scale_out.settings(**s3_values)
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        key = await new_key(services_of(app).db, scale_out.scope)
        headers = {**auth(key), "Prefer": "respond-async"}
        body = {"model": "scaleout-t2i", "prompt": "a red kite"}
        job_id = (await client.post("/v1/images/generate", json=body, headers=headers)).json()[
            "jobId"
        ]
        argv = [*HYPERLOCAL, "worker", "--burst", "--models", "scaleout-t2i"]
        with spawned("worker", argv, scale_out.env(**s3_values), tmp_path / "logs") as worker:
            assert worker.wait(60) == 0, worker.output()
        polled = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()
        await _audit.assert_exactly_once(services_of(app).db, [key.info.id], 1)
    assert polled["status"] == "completed"
    assert polled["outputUrl"].startswith(s3_endpoint)
    assert (await fetch(polled["outputUrl"])).startswith(PNG_MAGIC)


async def test_expired_outputs_and_inputs_are_deleted_from_s3_on_a_stepped_clock(
    make_settings: SettingsFactory, s3_values: dict[str, Any], s3_endpoint: str, bucket: str
) -> None:
    clock = SteppedClock()
    settings = make_settings(**s3_values, output_retention=3600, retention_sweep_interval=3600)
    async with _api(settings, clock=clock) as (client, svc, key):
        body = _edit(tiny_png(), retention=60)
        headers = auth(key) | {"Prefer": "respond-async"}
        job_id = (await client.post("/v1/images/edit", json=body, headers=headers)).json()["jobId"]
        await _completed_url(client, key, job_id)
        row = await _job_row(svc, job_id)
        before = set(_object_keys(s3_endpoint, bucket))
        await sweep_at(svc.expiry, clock, row.expires_at - 1)
        assert set(_object_keys(s3_endpoint, bucket)) == before  # not a second early
        await sweep_at(svc.expiry, clock, row.expires_at + 1)
        shown = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()
        kept = await _job_row(svc, job_id)
    output = f"outputs/{row.output_keys[0]}"
    assert output in before and any(k.startswith("outputs-private/inputs/") for k in before)
    assert _object_keys(s3_endpoint, bucket) == []  # the output and the input are deleted
    assert shown["expired"] is True and "outputUrl" not in shown
    assert kept is not None and kept.status == "completed" and kept.expired_at is not None
