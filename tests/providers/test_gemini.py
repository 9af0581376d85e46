"""The Gemini adapter against its loopback fake, over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from hyperlocal.core.catalog import load_catalog
from hyperlocal.engines.base import Category, GenerationRequest, MediaInput, MediaKind
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    ProviderCall,
    ProviderContext,
    ProviderError,
)
from hyperlocal.engines.providers.gemini import GeminiProvider, create
from hyperlocal.engines.providers.mapping import map_inputs
from tests.providers.fakes.gemini import (
    GeminiState,
    b64decode,
    create_app,
    mp3_bytes,
    mp4_bytes,
    png_bytes,
)
from tests.providers.servers import Served, served
from tests.providers.watch import RecordingWatch
from tests.support import eventually, free_port, tiny_png

PROMPT = "a lighthouse at dusk"
IMAGE_MODEL = "gemini-2.5-flash-image"
PRO_IMAGE_MODEL = "gemini-3-pro-image-preview"
VEO = "veo-3.1-fast-generate-preview"
LYRIA = "lyria-3-pro-preview"
GOOGLE = "https://generativelanguage.googleapis.com"


Fake = Served[GeminiState]


@pytest.fixture
def fake() -> Iterator[Fake]:
    with served(GeminiState(), create_app) as running:
        yield running


Make = Callable[..., GeminiProvider]


@pytest.fixture
async def make(fake: Fake, http: httpx.AsyncClient) -> AsyncIterator[Make]:
    """Adapters on the fake (or on ``url``), closed after the test."""
    made: list[GeminiProvider] = []

    def provider(*, key: str | None = None, poll: float = 0.01, url: str | None = None) -> Any:
        context = ProviderContext(
            name="gemini",
            key=fake.state.key if key is None else key,
            base_url=fake.url if url is None else url,
            http=http,
            poll_interval=poll,
        )
        made.append(create(context))
        return made[-1]

    yield provider
    for gemini in made:
        await gemini.aclose()


def image(color: tuple[int, int, int] = (200, 30, 30), field: str = "images") -> MediaInput:
    return MediaInput(field, MediaKind.IMAGE, "image/png", tiny_png(color), source="data:")


def call(category: Category, endpoint: str, payload: Payload, **extra: Any) -> ProviderCall:
    return ProviderCall("job-1", "model", category, endpoint, payload, **extra)


def picture(**fields: Any) -> ProviderCall:
    return call(Category.IMAGE, IMAGE_MODEL, {"prompt": PROMPT, **fields})


def video(**fields: Any) -> ProviderCall:
    payload = {"prompt": PROMPT, "image": image(field="image"), **fields}
    return call(Category.VIDEO, VEO, payload)


async def failure(gemini: GeminiProvider, job: ProviderCall) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await gemini.run(job, RecordingWatch())
    return caught.value


def inline_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts = body["contents"][0]["parts"]
    return [part["inlineData"] for part in parts if "inlineData" in part]


def mime(inline: dict[str, Any]) -> str:
    return str(inline.get("mimeType", inline.get("mime_type")))


# --- images ----------------------------------------------------------------------------------


async def test_an_image_is_one_generate_content_with_the_inputs_inline(
    fake: Fake, make: Make
) -> None:
    sources = [image((10, 10, 10)), image((20, 20, 20))]
    job = call(
        Category.IMAGE_EDIT,
        IMAGE_MODEL,
        {"prompt": PROMPT, "images": sources, "aspectRatio": "16:9", "imageSize": "2K"},
    )
    watch = RecordingWatch()
    result = await make().run(job, watch)

    (sent,) = fake.state.generates()
    assert sent.path == f"/v1beta/models/{IMAGE_MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == fake.state.key
    assert sent.json["contents"][0]["parts"][0] == {"text": PROMPT}
    inline = inline_parts(sent.json)
    assert [b64decode(part["data"]) for part in inline] == [m.data for m in sources]  # no URLs
    assert {mime(part) for part in inline} == {"image/png"}
    config = sent.json["generationConfig"]
    assert config["responseModalities"] == ["IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
    (output,) = result.outputs
    assert output.data == png_bytes("16:9")
    assert output.content_type == "image/png"
    assert output.url is None
    assert result.request_id  # Google's responseId
    assert watch.request_ids == []  # synchronous: nothing to follow


async def test_jpeg_asked_for_is_transcoded_from_geminis_png(fake: Fake, make: Make) -> None:
    result = await make().run(picture(output_format="jpeg", aspectRatio="4:3"), RecordingWatch())

    (output,) = result.outputs
    assert output.content_type == "image/jpeg"
    assert output.data is not None
    assert output.data.startswith(b"\xff\xd8\xff")
    assert "output_format" not in str(fake.state.generates()[0].json)  # Gemini API has no such


async def test_interim_thought_images_are_not_outputs(fake: Fake, make: Make) -> None:
    job = call(Category.IMAGE, PRO_IMAGE_MODEL, {"prompt": PROMPT, "aspectRatio": "3:2"})
    result = await make().run(job, RecordingWatch())

    (output,) = result.outputs
    assert output.data == png_bytes("3:2")  # the final image, not the grey interim one


async def test_a_blocked_prompt_fails_with_googles_reason(fake: Fake, make: Make) -> None:
    fake.state.block_prompt = "PROHIBITED_CONTENT"
    error = await failure(make(), picture())

    assert error.kind is FailureKind.FAILED
    assert "PROHIBITED_CONTENT" in error.message


# --- Veo -------------------------------------------------------------------------------------


async def test_veo_is_submitted_polled_and_downloaded_with_the_key(fake: Fake, make: Make) -> None:
    fake.state.pending_polls = 2
    last = image((1, 2, 3), field="end_image")
    job = video(
        last_frame=last,
        duration_seconds=6,
        aspect_ratio="9:16",
        resolution="1080p",
        negative_prompt="blur",
    )
    watch = RecordingWatch()
    result = await make().run(job, watch)

    (submit,) = fake.state.submits()
    assert submit.path == f"/v1beta/models/{VEO}:predictLongRunning"
    (instance,) = submit.json["instances"]
    assert instance["prompt"] == PROMPT
    assert b64decode(instance["image"]["bytesBase64Encoded"]) == image().data  # inline
    assert instance["image"]["mimeType"] == "image/png"
    assert b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last.data
    assert submit.json["parameters"] == {
        "aspectRatio": "9:16",
        "durationSeconds": 6,
        "resolution": "1080p",
        "negativePrompt": "blur",
    }
    (operation,) = fake.state.operations.values()
    assert watch.request_ids == [operation.name] == [result.request_id]
    assert len(fake.state.polls()) == 3
    assert watch.waits == [0.01, 0.015, 0.0225]
    (download,) = fake.state.downloads()
    assert download.path == f"/v1beta/files/{operation.file_id}:download"
    assert download.query == {"alt": "media"}
    assert all(r.headers["x-goog-api-key"] == fake.state.key for r in fake.state.requests)
    (output,) = result.outputs
    assert (output.data, output.content_type, output.url) == (mp4_bytes(), "video/mp4", None)


async def test_a_video_uri_on_googles_host_is_fetched_from_our_base_url(
    fake: Fake, make: Make
) -> None:
    fake.state.uri_base = GOOGLE  # Google's exact shape; the guard would stop a real fetch
    result = await make().run(video(), RecordingWatch())

    assert result.outputs[0].data == mp4_bytes()
    assert len(fake.state.downloads()) == 1


async def test_a_download_redirect_does_not_carry_the_key_elsewhere(fake: Fake, make: Make) -> None:
    fake.state.redirect_downloads = True
    result = await make().run(video(), RecordingWatch())

    assert result.outputs[0].data == mp4_bytes()
    (stored,) = [r for r in fake.state.requests if r.path.startswith("/storage/")]
    assert stored.headers["host"].startswith("localhost:")
    assert "x-goog-api-key" not in stored.headers


async def test_a_flaky_poll_is_polled_through(fake: Fake, make: Make) -> None:
    fake.state.fail_next("poll", 503, "The service is currently unavailable.")
    fake.state.fail_next("poll", 429, "Quota exceeded", retry_delay="1s")
    result = await make().run(video(), RecordingWatch())

    assert result.outputs[0].data == mp4_bytes()
    assert len(fake.state.polls()) == 2 + fake.state.pending_polls + 1


async def test_a_refused_key_while_polling_is_not_polled_through(fake: Fake, make: Make) -> None:
    fake.state.fail_next("poll", 403, "The caller does not have permission")
    error = await failure(make(), video())

    assert error.kind is FailureKind.UNAVAILABLE
    assert "GEMINI_API_KEY" in error.message
    assert error.request_id == next(iter(fake.state.operations.values())).name


@pytest.mark.parametrize(("code", "kind"), [(3, FailureKind.FAILED), (13, FailureKind.UNAVAILABLE)])
async def test_an_operation_ending_in_error_carries_its_message(
    fake: Fake, make: Make, code: int, kind: FailureKind
) -> None:
    fake.state.operation_error = {"code": code, "message": "Veo could not render the scene."}
    error = await failure(make(), video())

    (operation,) = fake.state.operations.values()
    assert error.kind is kind
    assert error.request_id == operation.name
    assert "Veo could not render the scene." in error.message
    assert fake.state.downloads() == []


async def test_a_video_filtered_for_safety_fails_with_the_reasons(fake: Fake, make: Make) -> None:
    reason = "Your prompt may violate our policies on minors."
    fake.state.filtered_reasons = [reason]
    error = await failure(make(), video())

    assert error.kind is FailureKind.FAILED
    assert reason in error.message


# --- Lyria -----------------------------------------------------------------------------------


async def test_lyria_returns_its_mp3_and_hears_the_duration_in_the_prompt(
    fake: Fake, make: Make
) -> None:
    job = call(Category.AUDIO, LYRIA, {"prompt": "calm piano", "duration": 45})
    result = await make().run(job, RecordingWatch())

    (sent,) = fake.state.generates()
    assert sent.path == f"/v1beta/models/{LYRIA}:generateContent"
    (part,) = sent.json["contents"][0]["parts"]
    assert part["text"].startswith("calm piano")
    assert "about 45 seconds long" in part["text"]
    (output,) = result.outputs
    assert (output.data, output.content_type) == (mp3_bytes(), "audio/mpeg")


# --- refusals before acceptance --------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (picture(aspectRatio="7:3"), "Unsupported aspect ratio: 7:3"),
        (video(duration_seconds=5), "The durationSeconds you specified (5) is not supported."),
    ],
    ids=["image", "video"],
)
async def test_invalid_input_is_invalid_with_googles_own_message(
    fake: Fake, make: Make, job: ProviderCall, message: str
) -> None:
    error = await failure(make(), job)

    assert error.kind is FailureKind.INVALID
    assert error.status == 400
    assert error.message == message
    assert fake.state.operations == {}


async def test_a_duration_that_is_no_number_is_invalid_before_sending(
    fake: Fake, make: Make
) -> None:
    error = await failure(make(), video(duration_seconds="long"))

    assert error.kind is FailureKind.INVALID
    assert fake.state.requests == []


async def test_a_failed_precondition_is_unavailable_not_invalid(fake: Fake, make: Make) -> None:
    location = "User location is not supported for the API use."
    fake.state.fail_next("generate", 400, location, grpc_status="FAILED_PRECONDITION")
    error = await failure(make(), picture())

    assert error.kind is FailureKind.UNAVAILABLE
    assert location in error.message


@pytest.mark.parametrize(("route", "job"), [("generate", picture()), ("submit", video())])
async def test_a_server_error_is_unavailable(
    fake: Fake, make: Make, route: str, job: ProviderCall
) -> None:
    fake.state.fail_next(route, 503, "The model is overloaded. Please try again later.")
    error = await failure(make(), job)

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 503
    assert "overloaded" in error.message
    assert len(fake.state.requests) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(
    ("delay", "headers", "expected"),
    [("7s", {}, 7.0), (None, {"Retry-After": "3"}, 3.0), (None, {}, None)],
    ids=["retry-info", "retry-after", "none"],
)
async def test_a_rate_limit_is_unavailable_with_its_retry_after(
    fake: Fake, make: Make, delay: str | None, headers: dict[str, str], expected: float | None
) -> None:
    quota = "You exceeded your current quota, please check your plan and billing details."
    fake.state.fail_next("submit", 429, quota, retry_delay=delay, headers=headers)
    error = await failure(make(), video())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 429
    assert error.retry_after == expected
    assert quota in error.message
    assert len(fake.state.submits()) == 1


async def test_a_wrong_key_names_its_variable_and_not_the_key(fake: Fake, make: Make) -> None:
    error = await failure(make(key="wrong-secret-key"), picture())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 400  # Google says API_KEY_INVALID with a 400
    assert "GEMINI_API_KEY" in error.message
    assert "wrong-secret-key" not in error.message


async def test_a_forbidden_key_is_unavailable(fake: Fake, make: Make) -> None:
    fake.state.fail_next("submit", 403, "Generative Language API has not been used in project")
    error = await failure(make(), video())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 403
    assert "GEMINI_API_KEY" in error.message


@pytest.mark.parametrize("job", [picture(), video()], ids=["generate", "submit"])
async def test_an_unreachable_gemini_is_unavailable(make: Make, job: ProviderCall) -> None:
    error = await failure(make(url=f"http://127.0.0.1:{free_port()}"), job)

    assert error.kind is FailureKind.UNAVAILABLE
    assert "ConnectError" in error.message


async def test_a_category_gemini_does_not_serve_is_refused(fake: Fake, make: Make) -> None:
    error = await failure(make(), call(Category.THREE_D, IMAGE_MODEL, {"prompt": PROMPT}))

    assert error.kind is FailureKind.INVALID
    assert fake.state.requests == []


# --- cancel, webhooks, waking ----------------------------------------------------------------


async def test_cancel_stops_polling_since_gemini_cannot_cancel_an_operation(
    fake: Fake, make: Make
) -> None:
    fake.state.gate = threading.Event()  # the operation stays running
    task = asyncio.create_task(make().run(video(), RecordingWatch()))

    async def polled() -> bool:
        return len(fake.state.polls()) >= 2

    await eventually(polled, 20, "the adapter polling the running operation")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.state.gate.set()
    (operation,) = fake.state.operations.values()
    posts = [r.path for r in fake.state.requests if r.method == "POST"]
    assert posts == [f"/v1beta/models/{VEO}:predictLongRunning"]  # there is no :cancel
    assert {r.path for r in fake.state.polls()} == {f"/v1beta/{operation.name}"}
    assert fake.state.downloads() == []


async def test_webhooks_are_neither_asked_for_nor_accepted(fake: Fake, make: Make) -> None:
    gemini = make()
    job = call(Category.VIDEO, VEO, {"prompt": PROMPT}, webhook_url="https://hl.example/wh")
    await gemini.run(job, RecordingWatch())
    assert "hl.example" not in str(fake.state.submits()[0].json)

    with pytest.raises(ProviderError) as caught:
        await gemini.verify_webhook({"content-type": "application/json"}, b'{"name": "x"}')
    assert caught.value.kind is FailureKind.INVALID
    assert "no webhooks" in caught.value.message


async def test_a_wake_cuts_a_long_pause_between_polls(fake: Fake, make: Make) -> None:
    fake.state.gate = threading.Event()
    fake.state.pending_polls = 0  # once the gate opens, the next poll finds the video done
    watch = RecordingWatch()
    task = asyncio.create_task(make(poll=600.0).run(video(), watch))

    async def submitted() -> bool:
        return bool(watch.request_ids)

    await eventually(submitted, 20, "the adapter pausing after its submit")
    fake.state.gate.set()
    watch.wake(watch.request_ids[0])
    async with asyncio.timeout(60):  # bounds a failure only: the pause asked for is 600 s
        result = await task
    assert result.outputs[0].data == mp4_bytes()
    assert watch.waits == [600.0]


# --- the shipped catalogue's Gemini routes ---------------------------------------------------

PARAMS: dict[str, Any] = {
    "prompt": PROMPT,
    "aspect_ratio": "9:16",
    "output_format": "jpeg",
    "resolution": "1080p",
    "duration": 6,
    "negative_prompt": "blur",
}
MEDIA = {
    "image": [image((1, 1, 1), "image")],
    "end_image": [image((2, 2, 2), "end_image")],
    "images": [image((3, 3, 3)), image((4, 4, 4))],
    "reference_images": [image((5, 5, 5), "reference_images")],
}


def catalogue_calls() -> list[tuple[str, ProviderCall]]:
    """Every Gemini route of the shipped catalogue, with a valid request mapped onto it."""
    calls = []
    for entry in load_catalog():
        for route in entry.routes:
            if route.provider != "gemini":
                continue
            params = {k: v for k, v in PARAMS.items() if k in entry.inputs}
            if entry.category is Category.IMAGE_EDIT and "resolution" in entry.inputs:
                params["resolution"] = "2k"
            media = {k: v for k, v in MEDIA.items() if k in entry.inputs}
            params |= {k: [m.source for m in v] for k, v in media.items() if k.endswith("s")}
            request = GenerationRequest("job-1", entry.id, entry.category, params, media)
            payload = map_inputs(request, route)
            calls.append((entry.id, call(entry.category, route.target, payload)))
    return calls


CATALOGUE_CALLS = catalogue_calls()


def test_the_catalogue_routes_models_of_every_kind_to_gemini() -> None:
    assert {job.category for _, job in CATALOGUE_CALLS} == {
        Category.IMAGE,
        Category.IMAGE_EDIT,
        Category.VIDEO,
        Category.AUDIO,
    }


@pytest.mark.parametrize(("model", "job"), CATALOGUE_CALLS, ids=[m for m, _ in CATALOGUE_CALLS])
async def test_each_catalogue_route_is_accepted_by_the_fake(
    fake: Fake, make: Make, model: str, job: ProviderCall
) -> None:
    result = await make().run(job, RecordingWatch())

    sent = fake.state.requests[0]
    assert sent.path.startswith(f"/v1beta/models/{job.endpoint}:")
    assert PROMPT in str(sent.json)
    (output,) = result.outputs
    assert output.data
    if job.category is Category.IMAGE_EDIT:
        assert len(inline_parts(sent.json)) == 2
        assert output.content_type == "image/jpeg"
