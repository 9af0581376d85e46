"""``AsyncClient`` does what ``Client`` does, awaited: the same calls, results and errors."""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import pytest
from PIL import Image

from hyperlocal.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    GenerationFailed,
    InsufficientCredits,
    JobStatus,
    NotFound,
)
from tests.client.conftest import IssuedClientKey, Live


def _public_methods(obj: object) -> dict[str, inspect.Signature]:
    """Name -> parameters (the return types differ: ``ChatStream`` and ``AsyncChatStream``)."""
    return {
        name: inspect.signature(getattr(obj, name)).replace(
            return_annotation=inspect.Parameter.empty
        )
        for name in dir(obj)
        if not name.startswith("_") and callable(getattr(obj, name))
    }


def test_same_surface() -> None:
    sync, aio = Client("http://x", "ck"), AsyncClient("http://x", "ck")
    resources = ("images", "videos", "audio", "three_d", "chat", "jobs", "account", "models")
    for name in resources:
        assert _public_methods(getattr(sync, name)) == _public_methods(getattr(aio, name)), name
        for method in _public_methods(getattr(aio, name)):
            assert inspect.iscoroutinefunction(getattr(getattr(aio, name), method)), method
    assert set(_public_methods(sync)) - {"close"} == set(_public_methods(aio)) - {"aclose"}
    sync.close()


async def test_generate_wait_download(live: Live, user: IssuedClientKey, tmp_path: Path) -> None:
    async with AsyncClient(live.url, user.key) as client:
        image = await client.images.generate("a sunset", aspect_ratio="16:9")
        saved = await client.download(image.url, tmp_path / "s.png")
        picture = Image.open(io.BytesIO(saved.read_bytes()))
        assert picture.format == "PNG" and abs(picture.width / picture.height - 16 / 9) < 0.01
        accepted = await client.videos.generate("test-slow-video", prompt="x", seconds=1.5)
        seen: list[tuple[JobStatus, float | None]] = []
        job = await client.jobs.wait(accepted.job_id, progress=lambda s, f: seen.append((s, f)))
        assert job.status is JobStatus.COMPLETED and seen[-1] == (JobStatus.COMPLETED, 1.0)
        polled = await client.jobs.wait(accepted.job_id, events=False)
        assert polled.output_url == job.output_url
        speech = await client.audio.tts("hi", model="test-slow-audio", seconds=0.1)
        assert speech.credits_used == 2
        page = await client.jobs.list()
        assert page.jobs[0].job_id == speech.job_id
        account = await client.account.get()
        assert account.credits == 1000 - 4 - 10 - 2
        assert any(m.id == "test-slow-audio" for m in await client.models.list())


async def test_errors(live: Live) -> None:
    poor = live.issue(credits=1)
    async with AsyncClient(live.url, poor.key) as client:
        with pytest.raises(InsufficientCredits) as err:
            await client.images.generate("x")
        assert (err.value.required, err.value.available) == (4, 1)
        with pytest.raises(NotFound):
            await client.jobs.get("job_nope")
    async with AsyncClient(live.url, "ck_wrong") as client:
        with pytest.raises(AuthenticationError):
            await client.account.get()


async def test_failed_and_canceled_jobs_raise(live: Live, user: IssuedClientKey) -> None:
    async with AsyncClient(live.url, user.key) as client:
        slow = await client.videos.generate("test-slow-video", prompt="x", seconds=3)
        await client.jobs.cancel(slow.job_id)
        with pytest.raises(GenerationFailed, match="canceled"):
            await client.jobs.wait(slow.job_id, timeout=5)
