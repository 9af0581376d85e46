"""The sync ``Client`` against a live server: every surface, and the outputs on disk."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from hyperlocal.client import (
    Client,
    GenerationFailed,
    ImageResult,
    JobStatus,
    JobTimeoutError,
    MediaInput,
    MediaResult,
)
from tests.client.conftest import IssuedClientKey, Live
from tests.support import tiny_png

Progress = list[tuple[JobStatus, float | None]]


@pytest.fixture
def client(live: Live, user: IssuedClientKey) -> Iterator[Client]:
    with Client(live.url, user.key) as c:
        yield c


def _open(path: Path) -> Image.Image:
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    return image


def test_image_generate_and_download(client: Client, tmp_path: Path) -> None:
    result = client.images.generate("a sunset over the ocean", aspect_ratio="16:9")
    assert isinstance(result, ImageResult)
    assert result.result_id and result.result_id.startswith("res_")
    assert result.credits_used == 4
    assert result.images[0].model == "gemini-3-1-flash-t2i"
    assert result.raw["data"][0]["url"] == result.url
    saved = client.download(result.url, tmp_path / "out" / "sunset.png")
    assert saved == tmp_path / "out" / "sunset.png"
    image = _open(saved)
    assert image.format == "PNG"
    assert abs(image.width / image.height - 16 / 9) < 0.01
    assert not list(saved.parent.glob("*.part"))


def test_image_options_and_edit_with_local_media(client: Client, tmp_path: Path) -> None:
    jpeg = client.images.generate(
        "a tower", model="gpt-4o-image", size="1024x1792", output_format="jpeg"
    )
    assert _open(client.download(jpeg.url, tmp_path / "t.jpg")).size == (1024, 1792)
    source = tmp_path / "red.png"
    source.write_bytes(tiny_png((255, 0, 0), (64, 64)))
    inputs: list[MediaInput | list[MediaInput]] = [
        source,
        [source, tiny_png((0, 0, 255), (64, 64))],
    ]
    for images in inputs:
        edited = client.images.edit("make it blue", images, model="nano-banana-edit")
        assert edited.url.endswith(".png")
        assert _open(client.download(edited.url, tmp_path / "e.png")).format == "PNG"


def test_a_plain_string_is_never_read_as_a_file(client: Client, tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(tiny_png())
    with pytest.raises(ValueError, match="Path"):
        client.images.edit("x", str(tmp_path / "secret.png"), model="nano-banana-edit")


def test_video_job_waits_with_progress_over_events(client: Client, tmp_path: Path) -> None:
    accepted = client.videos.generate("test-slow-video", prompt="waves", duration=5, seconds=2.0)
    assert accepted.job_id.startswith("job_") and accepted.status is JobStatus.PROCESSING
    assert accepted.credits_used == 10
    assert accepted.poll_url and accepted.poll_url.endswith("model=test-slow-video&type=video")
    seen: Progress = []
    job = client.jobs.wait(accepted.job_id, timeout=30, progress=lambda s, f: seen.append((s, f)))
    assert job.status is JobStatus.COMPLETED and job.output_url
    assert seen[-1] == (JobStatus.COMPLETED, 1.0)
    fractions = [f for s, f in seen if s is JobStatus.PROCESSING and f is not None]
    # The server writes progress at most twice a second: some of the five steps show.
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)
    assert client.download(job.output_url, tmp_path / "v.bin").stat().st_size > 0


def test_wait_by_polling(client: Client) -> None:
    accepted = client.videos.generate("test-slow-video", prompt="waves", seconds=0.6)
    seen: Progress = []
    job = client.jobs.wait(
        accepted.job_id, poll_interval=0.1, events=False, progress=lambda s, f: seen.append((s, f))
    )
    assert job.status is JobStatus.COMPLETED
    assert seen[0][0] is JobStatus.PROCESSING and seen[-1] == (JobStatus.COMPLETED, 1.0)


def test_wait_gives_up_at_its_timeout(client: Client) -> None:
    slow = client.videos.generate("test-slow-video", prompt="x", seconds=3)
    for events in (True, False):
        started = time.monotonic()
        with pytest.raises(JobTimeoutError) as err:
            client.jobs.wait(slow.job_id, timeout=0.5, poll_interval=0.1, events=events)
        assert time.monotonic() - started < 2.0
        assert err.value.job_id == slow.job_id and isinstance(err.value, TimeoutError)
    assert client.jobs.wait(slow.job_id, timeout=20).status is JobStatus.COMPLETED


def test_jobs_list_get_cancel(client: Client) -> None:
    first = client.videos.generate("test-slow-video", prompt="a", seconds=0.2)
    slow = client.videos.generate("test-slow-video", prompt="b", seconds=3)
    page = client.jobs.list(limit=1)
    assert [j.job_id for j in page.jobs] == [slow.job_id] and page.next_cursor
    older = client.jobs.list(limit=5, cursor=page.next_cursor)
    assert [j.job_id for j in older.jobs] == [first.job_id] and older.next_cursor is None
    assert client.jobs.get(slow.job_id).model == "test-slow-video"
    balance = client.account.get().credits
    canceled = client.jobs.cancel(slow.job_id)
    assert canceled.status is JobStatus.FAILED and canceled.error == "canceled"
    assert client.account.get().credits == balance + slow.credits_used
    with pytest.raises(GenerationFailed, match="canceled"):
        client.jobs.wait(slow.job_id, timeout=5)


def test_audio_and_account_and_models(client: Client, tmp_path: Path) -> None:
    before = client.account.get()
    assert before.credits == 1000 and before.rate_limit == 1000
    speech = client.audio.tts("hello there", model="test-slow-audio", seconds=0.2)
    assert isinstance(speech, MediaResult)
    assert speech.credits_used == 2 and speech.raw["success"] is True
    assert client.download(speech.output_url, tmp_path / "a.bin").stat().st_size > 0
    assert client.account.get().credits == before.credits - 2
    models = {m.id: m for m in client.models.list()}
    assert models["test-slow-video"].category == "video"
    assert models["gemini-3-1-flash-t2i"].price["credits"] == 4
    assert "prompt" in models["test-slow-video"].inputs


def test_three_d_from_a_prompt(client: Client, tmp_path: Path) -> None:
    result = client.three_d.generate("meshy6-text-to-3d", prompt="a small house")
    assert result.output_url.endswith(".glb") and result.credits_used == 84
    glb = client.download(result.output_url, tmp_path / "house.glb")
    assert glb.read_bytes()[:4] == b"glTF"
