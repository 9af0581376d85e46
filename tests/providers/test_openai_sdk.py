"""The loopback OpenAI driven by the official ``openai`` SDK itself (sync client), to prove that
the fake's paths, bodies, headers and errors have the shapes the real client expects."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.flac import silent_flac
from tests.providers.fakes.openai import FakeOpenAI, serve
from tests.support import tiny_png

# Every Videos method of the SDK warns that Sora shuts down on 2026-09-24; we know.
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

KEY = "sk-test-sdk-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(key=KEY)
    with serve(state):
        yield state


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[OpenAI]:
    with OpenAI(api_key=KEY, base_url=fake.url, max_retries=0) as sdk:
        yield sdk


def _decoded(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_images_generate(client: OpenAI) -> None:
    reply = client.images.generate(
        model="gpt-image-2", prompt="a red kite", size="1536x1024", quality="low", n=1
    )

    assert reply.data is not None
    assert _decoded(reply.data[0].b64_json).size == (1536, 1024)
    assert (reply.output_format, reply.quality, reply.size) == ("png", "low", "1536x1024")
    assert reply.usage is not None
    assert reply.usage.total_tokens > 0
    assert reply._request_id is not None


def test_images_edit_uploads_files(client: OpenAI, fake: FakeOpenAI) -> None:
    first, second = tiny_png(size=(16, 16)), tiny_png((1, 2, 3), size=(16, 16))
    reply = client.images.edit(
        model="gpt-image-1",
        prompt="make it night",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("mask.png", first, "image/png"),
        output_format="jpeg",
    )

    assert reply.data is not None
    assert _decoded(reply.data[0].b64_json).format == "JPEG"
    [request] = fake.find("POST", "/v1/images/edits")
    assert [u.data for u in request.files["image[]"]] == [first, second]
    assert request.files["mask"][0].filename == "mask.png"


def test_videos_create_poll_and_download(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.queued_polls, fake.running_polls = 1, 2
    reference = tiny_png(size=(720, 1280))
    created = client.videos.create(
        prompt="a paper boat",
        model="sora-2",
        seconds="4",
        size="720x1280",
        input_reference=("ref.png", reference, "image/png"),
    )
    assert (created.status, created.progress) == ("queued", 0)

    raw = client.videos.with_raw_response.retrieve(created.id)
    assert raw.headers["openai-poll-after-ms"] == "10"
    assert raw.parse().status == "queued"
    done = client.videos.poll(created.id)  # follows openai-poll-after-ms
    assert (done.status, done.progress) == ("completed", 100)
    assert done.expires_at is not None

    video = client.videos.download_content(created.id, variant="video").content
    assert video[4:8] == b"ftyp"
    thumbnail = client.videos.download_content(created.id, variant="thumbnail").content
    assert Image.open(io.BytesIO(thumbnail)).format == "WEBP"
    assert fake.find("POST", "/v1/videos")[0].files["input_reference"][0].data == reference


def test_a_failed_video_carries_its_error(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.queued_polls, fake.running_polls, fake.fail_videos = 0, 0, "the render broke"
    video = client.videos.poll(client.videos.create(prompt="x").id)

    assert video.status == "failed"
    assert video.error is not None
    assert video.error.message == "the render broke"


def test_videos_delete_then_not_found(client: OpenAI) -> None:
    created = client.videos.create(prompt="x", model="sora-2-pro")
    deleted = client.videos.delete(created.id)

    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(created.id)


def test_videos_remix(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.queued_polls, fake.running_polls = 0, 0
    source = client.videos.poll(client.videos.create(prompt="a cat", seconds="8").id)
    remix = client.videos.remix(source.id, prompt="the same cat, at night")

    assert remix.remixed_from_video_id == source.id
    assert (remix.seconds, remix.prompt) == ("8", "the same cat, at night")
    assert client.videos.poll(remix.id).status == "completed"


def test_transcriptions_verbose_json(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.sentences = ["One.", "Two."]
    reply = client.audio.transcriptions.create(
        file=("speech.flac", silent_flac(2, 16000), "audio/flac"),
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["segment"],
        language="en",
    )

    assert (reply.text, reply.language, reply.duration) == ("One. Two.", "english", 2.0)
    assert reply.segments is not None
    assert [(s.text, s.start, s.end) for s in reply.segments] == [
        (" One.", 0.0, 1.0),
        (" Two.", 1.0, 2.0),
    ]


def test_transcriptions_text(client: OpenAI) -> None:
    reply = client.audio.transcriptions.create(
        file=("speech.flac", silent_flac(1, 16000)), model="whisper-1", response_format="text"
    )
    assert reply.strip() == "Hello from the loopback."


def test_a_bad_request_raises_bad_request_error(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gpt-image-1", prompt="x", size="999x999")

    assert caught.value.status_code == 400
    assert caught.value.param == "size"
    assert caught.value.code == "invalid_value"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"].startswith("Invalid value: '999x999'")


def test_an_audio_file_of_no_known_format_is_a_bad_request(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="Invalid file format"):
        client.audio.transcriptions.create(file=("notes.txt", b"hello"), model="whisper-1")


def test_a_rate_limit_raises_with_retry_after(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.fail_next(429, retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model="gpt-image-1", prompt="x")

    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"


def test_a_wrong_key_raises_authentication_error(fake: FakeOpenAI) -> None:
    with (
        OpenAI(api_key="sk-not-the-key", base_url=fake.url, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        sdk.images.generate(model="gpt-image-1", prompt="x")
    assert caught.value.code == "invalid_api_key"
