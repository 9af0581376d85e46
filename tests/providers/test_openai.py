"""The OpenAI adapter against its loopback fake, over real HTTP: images (generate, edit), Sora 2
videos (progress, the poll-after header, failure, cancel), Whisper transcription, and OpenAI's
errors turned into the router's three kinds of failure."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from PIL import Image

from hyperlocal.engines.base import Category, MediaInput, MediaKind, Segment
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
    next_poll,
)
from hyperlocal.engines.providers.openai import OpenAIProvider, create
from tests.flac import silent_flac
from tests.providers.fakes.openai import FakeOpenAI, Received, serve
from tests.providers.watch import RecordingWatch
from tests.support import eventually, free_port, tiny_png

KEY = "sk-test-openai-0123456789"
SECRET_SOURCE = "https://private.example/never-sent.png"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(key=KEY)
    with serve(state):
        yield state


@asynccontextmanager
async def _provider(
    base_url: str, key: str = KEY, poll: float = 0.01
) -> AsyncIterator[OpenAIProvider]:
    async with httpx.AsyncClient() as http:  # the context's; the SDK brings its own client
        adapter = create(ProviderContext("openai", key, base_url, http, poll_interval=poll))
        try:
            yield adapter
        finally:
            await adapter.aclose()


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    async with _provider(fake.url) as adapter:
        yield adapter


def _call(category: Category, endpoint: str, payload: Payload) -> ProviderCall:
    return ProviderCall("job-1", "test-model", category, endpoint, payload)


def _image(size: tuple[int, int] = (8, 8), field: str = "image") -> MediaInput:
    data = tiny_png(size=size)
    return MediaInput(field, MediaKind.IMAGE, "image/png", data, SECRET_SOURCE)


def _opened(data: bytes | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(data))


def _no_urls_sent(request: Received) -> None:
    sent = repr((request.json, request.form))
    assert SECRET_SOURCE not in sent
    assert "http" not in sent


async def _fails(provider: OpenAIProvider, call: ProviderCall) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.run(call, RecordingWatch())
    return caught.value


# --- images -----------------------------------------------------------------------------------


async def test_a_generated_image_is_the_png_that_openai_sent(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    payload = {"prompt": "a lighthouse", "size": "1536x1024", "quality": "high"}
    result = await provider.run(_call(Category.IMAGE, "gpt-image-1", payload), RecordingWatch())

    [output] = result.outputs
    assert output.content_type == "image/png"
    assert output.url is None
    assert _opened(output.data).size == (1536, 1024)
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/images/generations")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {**payload, "model": "gpt-image-1", "n": 1}
    assert result.request_id is not None
    assert result.request_id.startswith("req_")
    assert result.cost_usd is None  # OpenAI reports tokens, not a price


async def test_the_output_format_sets_the_content_type(provider: OpenAIProvider) -> None:
    payload = {"prompt": "a fox", "output_format": "webp", "size": "1024x1024"}
    result = await provider.run(_call(Category.IMAGE, "gpt-image-2", payload), RecordingWatch())

    assert result.outputs[0].content_type == "image/webp"
    assert _opened(result.outputs[0].data).format == "WEBP"


async def test_an_edit_uploads_its_images_and_mask_as_files(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    images = [_image((16, 16)), _image((24, 24))]
    mask = _image((16, 16), field="mask")
    payload: Payload = {"prompt": "add a hat", "image": images, "mask": mask}
    result = await provider.run(
        _call(Category.IMAGE_EDIT, "gpt-image-1", payload), RecordingWatch()
    )

    assert _opened(result.outputs[0].data).format == "PNG"
    [request] = fake.requests
    assert request.path == "/v1/images/edits"
    assert [upload.data for upload in request.files["image[]"]] == [i.data for i in images]
    assert [upload.content_type for upload in request.files["image[]"]] == ["image/png"] * 2
    assert request.files["mask"][0].data == mask.data
    assert request.form["prompt"] == ["add a hat"]
    assert request.form["n"] == ["1"]
    _no_urls_sent(request)


async def test_reference_images_turn_a_generation_into_an_edit(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    reference = _image((32, 32))
    payload: Payload = {"prompt": "in this style", "image": reference, "size": "1024x1536"}
    result = await provider.run(_call(Category.IMAGE, "gpt-image-2", payload), RecordingWatch())

    assert _opened(result.outputs[0].data).size == (1024, 1536)
    [request] = fake.requests
    assert request.path == "/v1/images/edits"
    assert request.files["image"][0].data == reference.data
    assert request.files["image"][0].filename == "image.png"
    _no_urls_sent(request)


async def test_an_edit_without_an_image_is_invalid(provider: OpenAIProvider) -> None:
    error = await _fails(provider, _call(Category.IMAGE_EDIT, "gpt-image-1", {"prompt": "x"}))
    assert error.kind is FailureKind.INVALID
    assert "'image'" in error.message


# --- errors -----------------------------------------------------------------------------------


async def test_invalid_input_is_invalid_with_openais_own_message(provider: OpenAIProvider) -> None:
    payload = {"prompt": "a lighthouse", "size": "999x999"}
    error = await _fails(provider, _call(Category.IMAGE, "gpt-image-1", payload))

    assert error.kind is FailureKind.INVALID
    assert error.status == 400
    assert error.message.startswith("Invalid value: '999x999'. Supported values are: ")


async def test_a_server_error_is_unavailable(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(500)
    error = await _fails(provider, _call(Category.IMAGE, "gpt-image-1", {"prompt": "x"}))

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 500
    assert "The server had an error" in error.message


@pytest.mark.parametrize(
    ("seconds", "milliseconds", "expected"), [(7, None, 7.0), (None, 1500, 1.5), (9, 250, 0.25)]
)
async def test_a_rate_limit_is_unavailable_with_its_retry_after(
    provider: OpenAIProvider,
    fake: FakeOpenAI,
    seconds: float | None,
    milliseconds: int | None,
    expected: float,
) -> None:
    fake.fail_next(429, retry_after=seconds, retry_after_ms=milliseconds)
    error = await _fails(provider, _call(Category.IMAGE, "gpt-image-1", {"prompt": "x"}))

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 429
    assert error.retry_after == expected
    assert len(fake.requests) == 1  # the router decides whether to try again, not the SDK


async def test_a_refused_key_names_the_variable_and_never_the_key(fake: FakeOpenAI) -> None:
    async with _provider(fake.url, key="sk-wrong-key-98765") as adapter:
        error = await _fails(adapter, _call(Category.IMAGE, "gpt-image-1", {"prompt": "x"}))

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 401
    assert "check OPENAI_API_KEY" in error.message
    assert "8765" not in error.message  # OpenAI's own 401 message quotes the key's tail


async def test_an_unreachable_openai_is_unavailable() -> None:
    async with _provider(f"http://127.0.0.1:{free_port()}/v1") as adapter:
        error = await _fails(adapter, _call(Category.IMAGE, "gpt-image-1", {"prompt": "x"}))

    assert error.kind is FailureKind.UNAVAILABLE
    assert "could not be reached" in error.message


async def test_a_category_that_openai_does_not_serve_is_invalid(provider: OpenAIProvider) -> None:
    error = await _fails(provider, _call(Category.THREE_D, "gpt-image-1", {"prompt": "x"}))
    assert error.kind is FailureKind.INVALID


async def test_webhooks_are_refused_since_openai_sends_none(provider: OpenAIProvider) -> None:
    headers = {"webhook-id": "wh_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    with pytest.raises(ProviderError) as caught:
        await provider.verify_webhook(headers, b'{"type": "video.completed"}')
    assert caught.value.kind is FailureKind.INVALID
    assert "polled" in caught.value.message


# --- videos -----------------------------------------------------------------------------------


async def _video(
    provider: OpenAIProvider, payload: Payload, watch: RecordingWatch | None = None
) -> ProviderResult:
    call = _call(Category.VIDEO, "sora-2", payload)
    return await provider.run(call, watch or RecordingWatch())


async def test_a_video_reports_progress_and_returns_the_mp4(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.queued_polls, fake.running_polls, fake.poll_after_ms = 2, 3, 30
    reference = _image((1280, 720))
    payload: Payload = {
        "prompt": "waves",
        "seconds": "8",
        "size": "1280x720",
        "input_reference": reference,
    }
    watch = RecordingWatch()
    result = await _video(provider, payload, watch)

    [output] = result.outputs
    assert output.content_type == "video/mp4"
    assert output.data is not None
    assert output.data[4:8] == b"ftyp"
    [video_id] = watch.request_ids
    assert result.request_id == video_id
    assert result.duration == 8.0
    assert watch.fractions == sorted(watch.fractions)
    assert watch.fractions[0] == 0.0
    assert 0 < watch.fractions[-1] < 1
    assert set(watch.waits) == {0.03}  # the pause that openai-poll-after-ms asked for
    [create] = fake.find("POST", "/v1/videos")
    assert create.form == {
        "prompt": ["waves"],
        "model": ["sora-2"],
        "seconds": ["8"],
        "size": ["1280x720"],
    }
    assert create.files["input_reference"][0].data == reference.data
    _no_urls_sent(create)
    [content] = fake.find("GET", f"/v1/videos/{video_id}/content")
    assert content.query == {"variant": "video"}


async def test_a_reference_of_another_size_is_fitted_to_the_video(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    payload: Payload = {"prompt": "waves", "size": "720x1280", "input_reference": _image((64, 64))}
    await _video(provider, payload)

    [create] = fake.find("POST", "/v1/videos")
    assert _opened(create.files["input_reference"][0].data).size == (720, 1280)


async def test_without_the_header_polls_back_off(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.queued_polls, fake.running_polls, fake.poll_after_ms = 1, 2, None
    watch = RecordingWatch()
    await _video(provider, {"prompt": "waves"}, watch)

    assert watch.waits == [0.01, next_poll(0.01), next_poll(next_poll(0.01))]


async def test_transient_poll_errors_are_polled_through(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(502, path="/v1/videos/")
    fake.fail_next(429, path="/v1/videos/", retry_after_ms=50)
    watch = RecordingWatch()
    result = await _video(provider, {"prompt": "waves"}, watch)

    assert result.outputs[0].content_type == "video/mp4"
    assert watch.waits[:2] == [0.01, 0.05]  # the backoff, then the pause the 429 asked for


async def test_a_failed_video_fails_with_openais_message(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_videos = "The video could not be generated: moderation"
    watch = RecordingWatch()
    with pytest.raises(ProviderError) as caught:
        await _video(provider, {"prompt": "waves"}, watch)

    assert caught.value.kind is FailureKind.FAILED
    assert caught.value.message == "The video could not be generated: moderation"
    assert caught.value.request_id == watch.request_ids[0]


async def test_a_rate_limited_create_is_never_submitted(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.fail_next(429, path="/v1/videos", retry_after=3)
    watch = RecordingWatch()
    with pytest.raises(ProviderError) as caught:
        await _video(provider, {"prompt": "waves"}, watch)

    assert (caught.value.kind, caught.value.status) == (FailureKind.UNAVAILABLE, 429)
    assert caught.value.retry_after == 3.0
    assert watch.request_ids == []


async def test_an_invalid_video_request_is_invalid(provider: OpenAIProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await _video(provider, {"prompt": "waves", "seconds": "5"})
    assert caught.value.kind is FailureKind.INVALID
    assert "Invalid value: '5'" in caught.value.message


async def test_cancel_deletes_the_video_at_openai(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.gate = threading.Event()  # the video stays in_progress
    watch = RecordingWatch()
    task = asyncio.create_task(_video(provider, {"prompt": "waves"}, watch))

    async def rendering() -> bool:
        return any(v.status == "in_progress" for v in fake.videos.values())

    await eventually(rendering, 30, "the video to be in progress")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [video_id] = watch.request_ids
    assert len(fake.find("DELETE", f"/v1/videos/{video_id}")) == 1
    assert fake.videos[video_id].deleted


async def test_a_webhook_wake_ends_the_wait_early(fake: FakeOpenAI) -> None:
    fake.queued_polls, fake.running_polls, fake.poll_after_ms = 1, 0, None
    watch = RecordingWatch()
    async with _provider(fake.url, poll=600) as adapter:
        task = asyncio.create_task(_video(adapter, {"prompt": "waves"}, watch))
        await watch.submitted_event.wait()
        watch.wake(watch.request_ids[0])
        async with asyncio.timeout(60):  # bounds a failure; the wait asked for was 600 s
            result = await task

    assert result.outputs[0].content_type == "video/mp4"
    assert watch.waits == [600]


# --- speech recognition -----------------------------------------------------------------------


async def test_a_transcription_returns_text_and_segments(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.sentences = ["Hello there.", "General Kenobi."]
    audio = MediaInput("audio", MediaKind.AUDIO, "audio/flac", silent_flac(3, 16000), SECRET_SOURCE)
    payload: Payload = {"file": audio, "language": "en"}
    result = await provider.run(_call(Category.AUDIO, "whisper-1", payload), RecordingWatch())

    assert result.text == "Hello there. General Kenobi."
    assert result.segments == [
        Segment("Hello there.", 0.0, 1.5),
        Segment("General Kenobi.", 1.5, 3.0),
    ]
    assert result.duration == 3.0
    assert result.outputs == ()
    [request] = fake.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.form["response_format"] == ["verbose_json"]
    assert request.form["timestamp_granularities[]"] == ["segment"]
    assert request.form["language"] == ["en"]
    assert request.form["model"] == ["whisper-1"]
    [upload] = request.files["file"]
    assert (upload.filename, upload.data) == ("audio.flac", audio.data)
    _no_urls_sent(request)


async def test_a_transcription_needs_its_audio(provider: OpenAIProvider) -> None:
    error = await _fails(provider, _call(Category.AUDIO, "whisper-1", {"language": "en"}))
    assert error.kind is FailureKind.INVALID
