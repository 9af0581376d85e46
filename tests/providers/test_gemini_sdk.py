"""The Gemini fake, driven by the official ``google-genai`` SDK itself: proof that the fake
answers in the shapes the SDK reads (and that the adapter's assumptions about the SDK hold)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.providers.fakes.gemini import GeminiState, create_app, mp3_bytes, mp4_bytes, png_bytes
from tests.providers.servers import Served, served
from tests.support import tiny_png

IMAGE_MODEL = "gemini-2.5-flash-image"
VEO = "veo-3.1-fast-generate-preview"
GOOGLE = "https://generativelanguage.googleapis.com"


Fake = Served[GeminiState]


@pytest.fixture
def fake() -> Iterator[Fake]:
    with served(GeminiState(), create_app) as running:
        yield running


@pytest.fixture
def client(fake: Fake) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=fake.url, api_version="v1beta")
    with genai.Client(api_key=fake.state.key, http_options=options) as sdk:
        yield sdk


def start_video(fake: Fake) -> str:
    """POST :predictLongRunning as the Veo REST docs do: google-genai 3.x no longer sends it
    in Gemini API mode (see the next test), but it polls and downloads."""
    body = {"instances": [{"prompt": "a cat"}], "parameters": {"durationSeconds": 8}}
    response = httpx.post(
        f"{fake.url}/v1beta/models/{VEO}:predictLongRunning",
        json=body,
        headers={"x-goog-api-key": fake.state.key},
    )
    response.raise_for_status()
    return str(response.json()["name"])


def test_generate_content_with_an_inline_image_reads_the_image_back(
    fake: Fake, client: genai.Client
) -> None:
    response = client.models.generate_content(
        model=IMAGE_MODEL,
        contents=types.Content(
            role="user",
            parts=[
                types.Part.from_text(text="make it blue"),
                types.Part.from_bytes(data=tiny_png(), mime_type="image/png"),
            ],
        ),
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
        ),
    )

    (part,) = response.parts or []
    assert part.inline_data is not None
    assert part.inline_data.mime_type == "image/png"
    assert part.inline_data.data == png_bytes("16:9")
    assert response.response_id
    (sent,) = fake.state.generates()
    assert sent.path == f"/v1beta/models/{IMAGE_MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == fake.state.key


def test_a_pro_models_interim_image_is_marked_as_a_thought(client: genai.Client) -> None:
    response = client.models.generate_content(model="gemini-3-pro-image-preview", contents="a fox")

    thought, final = response.parts or []
    assert thought.thought is True
    assert final.thought is None
    assert final.inline_data is not None
    assert final.inline_data.data == png_bytes()


def test_lyria_answers_lyrics_and_an_mp3(client: genai.Client) -> None:
    response = client.models.generate_content(model="lyria-3-pro-preview", contents="folk")

    lyrics, audio = response.parts or []
    assert lyrics.text is not None
    assert audio.inline_data is not None
    assert audio.inline_data.mime_type == "audio/mpeg"
    assert audio.inline_data.data == mp3_bytes()


def test_the_sdk_no_longer_submits_veo_in_gemini_api_mode(fake: Fake, client: genai.Client) -> None:
    """Why the adapter sends :predictLongRunning itself. Should a later SDK send it again,
    this fails, and the adapter may go back to ``generate_videos``."""
    source = types.GenerateVideosSource(prompt="a cat")
    with pytest.raises(ValueError, match="not in Gemini Developer API mode"):
        client.models.generate_videos(model=VEO, source=source)
    assert fake.state.requests == []


def test_a_video_operation_is_polled_and_downloaded(fake: Fake, client: genai.Client) -> None:
    fake.state.pending_polls = 2
    fake.state.uri_base = GOOGLE  # the SDK takes the file id out of Google's https URI
    operation = types.GenerateVideosOperation.model_validate({"name": start_video(fake)})

    polls = 0
    while not operation.done and polls < 10:
        operation = client.operations.get(operation)
        polls += 1

    assert polls == 3
    assert operation.error is None
    assert operation.response is not None
    (sample,) = operation.response.generated_videos or []
    assert sample.video is not None
    (stored,) = fake.state.operations.values()
    assert sample.video.uri == f"{GOOGLE}/v1beta/files/{stored.file_id}:download?alt=media"
    assert client.files.download(file=sample.video) == mp4_bytes()
    (download,) = fake.state.downloads()
    assert download.headers["x-goog-api-key"] == fake.state.key


def test_an_operation_failure_and_a_safety_filter_read_back(
    fake: Fake, client: genai.Client
) -> None:
    fake.state.pending_polls = 0
    fake.state.operation_error = {"code": 3, "message": "bad frame"}
    failed = types.GenerateVideosOperation.model_validate({"name": start_video(fake)})
    assert client.operations.get(failed).error == {"code": 3, "message": "bad frame"}

    fake.state.operation_error = None
    fake.state.filtered_reasons = ["unsafe"]
    filtered = client.operations.get(
        types.GenerateVideosOperation.model_validate({"name": start_video(fake)})
    )
    assert filtered.done is True
    assert filtered.response is not None
    assert filtered.response.rai_media_filtered_count == 1
    assert filtered.response.rai_media_filtered_reasons == ["unsafe"]
    assert not filtered.response.generated_videos


def test_an_invalid_request_raises_client_error(fake: Fake, client: genai.Client) -> None:
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="7:3"))
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=IMAGE_MODEL, contents="x", config=config)

    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert caught.value.message == "Unsupported aspect ratio: 7:3"


def test_scripted_errors_read_back_with_their_details(fake: Fake, client: genai.Client) -> None:
    fake.state.fail_next("generate", 429, "quota", retry_delay="7s")
    with pytest.raises(errors.ClientError) as limited:
        client.models.generate_content(model=IMAGE_MODEL, contents="x")
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    (detail,) = limited.value.details["error"]["details"]
    assert detail["retryDelay"] == "7s"

    fake.state.fail_next("poll", 503, "overloaded")
    operation = types.GenerateVideosOperation.model_validate({"name": start_video(fake)})
    with pytest.raises(errors.ServerError) as unavailable:
        client.operations.get(operation)
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")


def test_a_wrong_key_is_refused_as_google_refuses_it(fake: Fake) -> None:
    options = types.HttpOptions(base_url=fake.url, api_version="v1beta")
    with (
        genai.Client(api_key="wrong", http_options=options) as wrong,
        pytest.raises(errors.ClientError) as caught,
    ):
        wrong.models.generate_content(model=IMAGE_MODEL, contents="x")

    assert caught.value.code == 400
    (info,) = caught.value.details["error"]["details"]
    assert info["reason"] == "API_KEY_INVALID"
