"""The fal adapter against its loopback fake, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request, Response

from hyperlocal.engines.base import Category, MediaInput, MediaKind, Segment
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    Provider,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
)
from hyperlocal.engines.providers.fal import FalProvider, create, result_of
from hyperlocal.engines.providers.registry import ProviderRegistry
from tests.conftest import SettingsFactory
from tests.providers.fakes.fal import (
    FalState,
    JobScript,
    Recorded,
    Reply,
    file_bytes,
    serve_fal,
)
from tests.providers.watch import RecordingWatch
from tests.support import eventually, free_port, serve_in_thread, tiny_png

FLUX = "fal-ai/flux/dev"
KLING = "fal-ai/kling-video/v3/pro/image-to-video"
WAIT_S = 60.0  # bounds a failure only: each wait is for a condition


@pytest.fixture
def fal() -> Iterator[FalState]:
    with serve_fal() as state:
        yield state


def context(fal: FalState, http: httpx.AsyncClient, **overrides: Any) -> ProviderContext:
    values: dict[str, Any] = {
        "name": "fal",
        "key": fal.key,
        "base_url": fal.url,
        "http": http,
        "jwks_url": fal.jwks_url,
        "poll_interval": 0.01,
    }
    return ProviderContext(**{**values, **overrides})


@pytest.fixture
def provider(fal: FalState, http: httpx.AsyncClient) -> FalProvider:
    return create(context(fal, http))


@pytest.fixture
def polling(fal: FalState, http: httpx.AsyncClient) -> FalProvider:
    """An adapter told not to use status streams: it follows requests by polls alone."""
    return create(context(fal, http, stream_status=False))


def job(
    endpoint: str = FLUX,
    payload: Payload | None = None,
    category: Category = Category.IMAGE,
    webhook_url: str | None = None,
) -> ProviderCall:
    return ProviderCall(
        job_id="job-1",
        model="test-model",
        category=category,
        endpoint=endpoint,
        payload={"prompt": "a red fox"} if payload is None else payload,
        webhook_url=webhook_url,
    )


def media(data: bytes, content_type: str, kind: MediaKind = MediaKind.IMAGE) -> MediaInput:
    return MediaInput(field="image", kind=kind, content_type=content_type, data=data, source="x")


def decoded(uri: str) -> tuple[str, bytes]:
    header, _, payload = uri.removeprefix("data:").partition(",")
    assert header.endswith(";base64")
    return header.removesuffix(";base64"), base64.b64decode(payload)


async def failure(provider: FalProvider, call: ProviderCall) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.run(call, RecordingWatch())
    return caught.value


# --- a job that succeeds --------------------------------------------------------------------


async def test_is_a_provider(provider: FalProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "fal"


async def test_queued_job_reports_its_place_in_line_and_returns_the_files(
    fal: FalState, polling: FalProvider, http: httpx.AsyncClient
) -> None:
    fal.script(JobScript(queued=2, running=1))
    watch = RecordingWatch()

    result = await polling.run(job(), watch)

    request_id = result.request_id
    assert request_id is not None and watch.request_ids == [request_id]
    assert watch.queue_positions == [2, 1, 0]
    assert watch.waits[0] == 0.01 and watch.waits == sorted(watch.waits)
    assert watch.waits[-1] > watch.waits[0]  # the polls back off
    [output] = result.outputs
    assert output.url == f"{fal.url}/files/image.png" and output.content_type == "image/png"
    assert (await http.get(output.url)).content == file_bytes("image.png")
    [submit] = fal.of("POST")
    assert submit.path == f"/{FLUX}" and submit.json == {"prompt": "a red fox"}
    assert submit.headers["authorization"] == f"Key {fal.key}"
    polls = fal.of("GET", "/status")
    assert len(polls) == 4  # two queued, one running, one completed
    assert {p.path for p in polls} == {f"/fal-ai/flux/requests/{request_id}/status"}
    assert all(p.query == {"logs": "1"} for p in polls)
    assert [r.path for r in fal.of("GET", request_id)] == [f"/fal-ai/flux/requests/{request_id}"]
    assert result.cost_usd is None  # fal's queue reports no cost


async def test_follows_the_request_at_owner_and_app_only_with_media_as_data_uris(
    fal: FalState, provider: FalProvider
) -> None:
    png = tiny_png()
    payload: Payload = {"prompt": "fly", "start_image_url": media(png, "image/png")}
    fal.script(JobScript(running=1))

    result = await provider.run(job(KLING, payload, Category.VIDEO), RecordingWatch())

    [submit] = fal.of("POST")
    assert submit.path == f"/{KLING}"
    assert decoded(submit.json["start_image_url"]) == ("image/png", png)
    followed = [r.path for r in fal.requests if r.method == "GET"]
    assert followed and all(p.startswith("/fal-ai/kling-video/requests/") for p in followed)
    [video] = result.outputs
    assert video.url == f"{fal.url}/files/video.mp4" and video.content_type == "video/mp4"
    assert result.duration == 1.0


async def test_a_list_of_images_goes_as_a_list_of_data_uris(
    fal: FalState, provider: FalProvider
) -> None:
    first, second = tiny_png((1, 2, 3)), tiny_png((4, 5, 6))
    images = [media(first, "image/png"), media(second, "image/png")]
    payload: Payload = {"prompt": "merge", "image_urls": images}

    await provider.run(
        job("fal-ai/nano-banana/edit", payload, Category.IMAGE_EDIT), RecordingWatch()
    )

    [submit] = fal.of("POST")
    assert [decoded(uri)[1] for uri in submit.json["image_urls"]] == [first, second]


async def test_speech_recognition_returns_text_and_segments(
    fal: FalState, provider: FalProvider
) -> None:
    audio = media(file_bytes("audio.wav"), "audio/wav", MediaKind.AUDIO)

    result = await provider.run(
        job("fal-ai/wizper", {"audio_url": audio}, Category.AUDIO), RecordingWatch()
    )

    assert result.outputs == []
    assert result.text == "Hello there. General Kenobi."
    assert result.segments == [
        Segment("Hello there.", 0.0, 1.2),
        Segment("General Kenobi.", 1.2, 1.2),  # whisper leaves the last end open
    ]
    assert decoded(fal.of("POST")[0].json["audio_url"])[0] == "audio/wav"


@pytest.mark.parametrize(
    "endpoint",
    ["fal-ai/meshy/v6/text-to-3d", "tripo3d/tripo/v2.5/image-to-3d", "fal-ai/hunyuan3d/v2"],
)
async def test_a_3d_app_gives_one_mesh(fal: FalState, provider: FalProvider, endpoint: str) -> None:
    fal.required[endpoint] = ()
    result = await provider.run(job(endpoint, {}, Category.THREE_D), RecordingWatch())
    [mesh] = result.outputs
    assert mesh.url == f"{fal.url}/files/model.glb" and mesh.content_type == "model/gltf-binary"


# --- outputs, by category -------------------------------------------------------------------


def _file(url: str, **more: Any) -> dict[str, Any]:
    return {"url": url, **more}


@pytest.mark.parametrize(
    ("category", "output", "urls"),
    [
        (
            Category.IMAGE,
            {"images": [_file("https://a/1.png"), _file("https://a/2.png")]},
            ["https://a/1.png", "https://a/2.png"],
        ),
        (Category.IMAGE_EDIT, {"image": _file("https://a/e.png")}, ["https://a/e.png"]),
        (
            Category.VIDEO,
            {"video": _file("https://a/v.mp4"), "image": _file("https://a/t.png")},
            ["https://a/v.mp4"],
        ),
        (Category.AUDIO, {"audio_file": _file("https://a/s.mp3")}, ["https://a/s.mp3"]),
        (Category.AUDIO, {"audio": _file("https://a/m.mp3"), "lyrics": "la"}, ["https://a/m.mp3"]),
        (
            Category.THREE_D,
            {"pbr_model": _file("https://a/p.glb"), "model_mesh": _file("https://a/m.glb")},
            ["https://a/p.glb"],
        ),
        (
            Category.THREE_D,
            {"model_urls": {"glb": _file("https://a/u.glb"), "fbx": _file("https://a/u.fbx")}},
            ["https://a/u.glb"],
        ),
    ],
)
def test_output_files_are_found_by_category(
    category: Category, output: dict[str, Any], urls: list[str]
) -> None:
    result = result_of(category, output, "r-1")
    assert [o.url for o in result.outputs] == urls and result.request_id == "r-1"


def test_a_sync_mode_data_uri_output_comes_back_as_bytes() -> None:
    png = tiny_png()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    result = result_of(Category.IMAGE, {"images": [{"url": uri, "content_type": "image/png"}]}, "r")
    [output] = result.outputs
    assert (output.url, output.data, output.content_type) == (None, png, "image/png")


def test_a_result_without_outputs_is_a_failure() -> None:
    with pytest.raises(ProviderError) as caught:
        result_of(Category.VIDEO, {"seed": 1, "images": []}, "r-2")
    assert caught.value.kind is FailureKind.FAILED and caught.value.request_id == "r-2"
    assert "images, seed" in caught.value.message


# --- refusals before fal accepts the job ----------------------------------------------------


async def test_a_422_at_submit_is_invalid_with_fals_messages(
    fal: FalState, provider: FalProvider
) -> None:
    fal.fail_submit(Reply.validation(prompt="String should have at most 5000 characters"))
    error = await failure(provider, job())
    assert (error.kind, error.status) == (FailureKind.INVALID, 422)
    assert error.message == "fal: prompt: String should have at most 5000 characters"
    assert error.request_id is None


async def test_a_5xx_at_submit_is_unavailable(fal: FalState, provider: FalProvider) -> None:
    fal.fail_submit(Reply.server_error())
    error = await failure(provider, job())
    assert (error.kind, error.status) == (FailureKind.UNAVAILABLE, 500)


async def test_an_infrastructure_error_at_submit_is_unavailable(
    fal: FalState, provider: FalProvider
) -> None:
    fal.fail_submit(Reply.infrastructure("startup_timeout", 504))
    error = await failure(provider, job())
    assert (error.kind, error.status) == (FailureKind.UNAVAILABLE, 504)
    assert "Startup timeout" in error.message


async def test_a_429_is_unavailable_with_its_retry_after(
    fal: FalState, provider: FalProvider
) -> None:
    fal.fail_submit(Reply.rate_limited(3))
    error = await failure(provider, job())
    assert (error.kind, error.status, error.retry_after) == (FailureKind.UNAVAILABLE, 429, 3.0)
    assert fal.of("GET") == []  # nothing was retried or followed


async def test_a_retry_after_date_becomes_seconds(fal: FalState, provider: FalProvider) -> None:
    when = formatdate(time.time() + 120, usegmt=True)
    fal.fail_submit(Reply(429, {"detail": "Too many requests"}, {"Retry-After": when}))
    error = await failure(provider, job())
    assert error.retry_after is not None and 100 < error.retry_after <= 121


async def test_a_refused_key_is_unavailable_and_names_the_variable(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    provider = create(context(fal, http, key="not-the-key"))
    error = await failure(provider, job())
    assert (error.kind, error.status) == (FailureKind.UNAVAILABLE, 401)
    assert "FAL_KEY" in error.message and "not-the-key" not in error.message


async def test_a_refused_connection_is_unavailable(http: httpx.AsyncClient) -> None:
    state = FalState()
    state.url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    error = await failure(create(context(state, http)), job())
    assert error.kind is FailureKind.UNAVAILABLE and "ConnectError" in error.message


# --- after acceptance -----------------------------------------------------------------------


async def test_an_input_the_app_refuses_is_invalid_with_its_messages(
    fal: FalState, provider: FalProvider
) -> None:
    error = await failure(provider, job(payload={"image_size": "square_hd"}))
    assert (error.kind, error.status) == (FailureKind.INVALID, 422)
    assert error.message == "fal: prompt: Field required"
    assert error.request_id is not None and error.request_id in fal.jobs


async def test_a_failed_generation_is_failed_with_the_apps_words(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(running=1, error=Reply(500, {"detail": "CUDA out of memory"})))
    error = await failure(provider, job())
    assert error.kind is FailureKind.FAILED and error.message == "fal: CUDA out of memory"
    assert error.request_id in fal.jobs


async def test_an_infrastructure_failure_after_acceptance_is_unavailable(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(queued=1, error=Reply.infrastructure("runner_disconnected")))
    error = await failure(provider, job())
    assert error.kind is FailureKind.UNAVAILABLE and error.request_id in fal.jobs


async def test_transient_poll_errors_are_polled_through(
    fal: FalState, polling: FalProvider
) -> None:
    fal.script(JobScript(running=1))
    fal.fail_status(Reply.server_error(), Reply.rate_limited(0), Reply.infrastructure())
    result = await polling.run(job(), RecordingWatch())
    assert result.outputs and len(fal.of("GET", "/status")) == 5


async def test_a_status_fal_client_does_not_know_ends_the_job(
    fal: FalState, polling: FalProvider
) -> None:
    fal.script(JobScript(running=1))
    fal.fail_status(Reply(200, {"status": "CANCELED", "logs": None}))
    error = await failure(polling, job())
    assert error.kind is FailureKind.FAILED and "CANCELED" in error.message


async def test_cancel_reaches_fal(fal: FalState, provider: FalProvider) -> None:
    fal.script(JobScript(hold=True))
    watch = RecordingWatch()
    task = asyncio.create_task(provider.run(job(), watch))
    await watch.submitted_event.wait()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [request_id] = watch.request_ids
    [cancel] = fal.of("PUT")
    assert cancel.path == f"/fal-ai/flux/requests/{request_id}/cancel"
    assert cancel.headers["authorization"] == f"Key {fal.key}"
    assert fal.jobs[request_id].canceled


# --- the status stream ----------------------------------------------------------------------


def streams(fal: FalState) -> list[Recorded]:
    return fal.of("GET", "/status/stream")


def polls(fal: FalState) -> list[Recorded]:
    return fal.of("GET", "/status")


async def test_without_a_webhook_the_status_stream_tells_the_end_with_no_poll(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    # One poll an hour: only the stream can end this job within the test's patience.
    provider = create(context(fal, http, poll_interval=3600.0))
    fal.script(JobScript(queued=2, running=1))
    watch = RecordingWatch()

    async with asyncio.timeout(WAIT_S):
        result = await provider.run(job(), watch)

    assert watch.queue_positions == [2, 1, 0] and watch.waits == [] and polls(fal) == []
    [stream] = streams(fal)
    assert stream.path == f"/fal-ai/flux/requests/{result.request_id}/status/stream"
    assert stream.headers["authorization"] == f"Key {fal.key}"
    assert stream.query == {}  # statuses only: no logs asked for
    assert [o.url for o in result.outputs] == [f"{fal.url}/files/image.png"]
    [fetched] = fal.of("GET", f"/requests/{result.request_id}")  # the result: not asking for SSE
    assert "event-stream" not in fetched.headers.get("accept", "")


async def test_a_long_job_is_followed_on_its_stream_until_it_ends(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    provider = create(context(fal, http, poll_interval=3600.0))
    fal.script(JobScript(hold=True))
    watch = RecordingWatch()
    task = asyncio.create_task(provider.run(job(), watch))
    await watch.submitted_event.wait()
    [request_id] = watch.request_ids

    async def running_at_fal() -> bool:
        return fal.jobs[request_id].state == "IN_PROGRESS"

    await eventually(running_at_fal, WAIT_S, "the stream to see the job run")
    assert not task.done()
    fal.release(request_id)
    async with asyncio.timeout(WAIT_S):
        result = await task
    assert result.request_id == request_id and len(streams(fal)) == 1 and polls(fal) == []


async def test_a_dropped_stream_is_polled_then_opened_again(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(queued=3))
    fal.cut_stream()  # the first stream ends after one event, the request still queued
    watch = RecordingWatch()

    result = await provider.run(job(), watch)

    assert watch.queue_positions == [3, 2, 1, 0]  # stream, poll, then the second stream
    assert len(streams(fal)) == 2 and len(polls(fal)) == 1
    assert watch.waits == [0.01] and result.outputs


async def test_a_stream_answering_a_5xx_is_opened_again_after_a_poll(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(running=2))
    fal.fail_stream(Reply.server_error())
    result = await provider.run(job(), RecordingWatch())
    assert result.outputs and len(streams(fal)) == 2 and len(polls(fal)) == 1


async def test_a_refused_stream_leaves_the_request_to_polls(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(running=2))
    fal.fail_stream(Reply(404, {"detail": "Not Found"}))
    watch = RecordingWatch()
    result = await provider.run(job(), watch)
    assert result.outputs and len(streams(fal)) == 1 and len(polls(fal)) == 3
    assert watch.waits[0] == 0.01 and watch.waits[-1] > watch.waits[0]  # backing off


async def test_a_stream_of_something_else_leaves_the_request_to_polls(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(running=1))
    fal.fail_stream(Reply(200, {"status": "IN_PROGRESS"}))  # JSON, not server-sent events
    result = await provider.run(job(), RecordingWatch())
    assert result.outputs and len(streams(fal)) == 1 and len(polls(fal)) == 2


async def test_a_failure_told_on_the_stream_fails_with_the_apps_words(
    fal: FalState, provider: FalProvider
) -> None:
    fal.script(JobScript(running=1))
    error = await failure(provider, job(payload={}))  # no prompt: the app refuses it
    assert error.kind is FailureKind.INVALID and "prompt" in error.message
    assert len(streams(fal)) == 1 and polls(fal) == []


async def test_cancel_while_streaming_reaches_fal(fal: FalState, provider: FalProvider) -> None:
    fal.script(JobScript(hold=True))
    watch = RecordingWatch()
    task = asyncio.create_task(provider.run(job(), watch))
    await watch.submitted_event.wait()

    async def streaming() -> bool:
        return bool(streams(fal))

    await eventually(streaming, WAIT_S, "the status stream to open")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [request_id] = watch.request_ids
    assert fal.jobs[request_id].canceled and len(fal.of("PUT", "/cancel")) == 1


# --- webhooks -------------------------------------------------------------------------------


class SteppedClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def notice_body(request_id: str, **fields: Any) -> bytes:
    body = {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK",
        "payload": {"images": []},
        **fields,
    }
    return json.dumps(body).encode()


async def test_a_signed_webhook_verifies(fal: FalState, provider: FalProvider) -> None:
    body = notice_body("req-1")
    notice = await provider.verify_webhook(fal.sign("req-1", body), body)
    assert notice.request_id == "req-1"
    assert notice.answer == {"images": []}  # the output: the job may end on it


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "ERROR", "error": "Invalid status code: 422", "payload": {"detail": []}},
        {"payload": None, "payload_error": "Output not JSON serializable"},
        {"payload": ["not", "an", "object"]},
    ],
)
async def test_a_webhook_without_a_usable_output_is_only_a_wake_up(
    fal: FalState, provider: FalProvider, fields: dict[str, Any]
) -> None:
    body = notice_body("req-1", **fields)
    notice = await provider.verify_webhook(fal.sign("req-1", body), body)
    assert notice.request_id == "req-1" and notice.answer is None


async def test_webhooks_with_a_bad_signature_are_refused(
    fal: FalState, provider: FalProvider
) -> None:
    body = notice_body("req-1")
    headers = fal.sign("req-1", body)
    other = dict(
        headers, **{"X-Fal-Webhook-Signature": Ed25519PrivateKey.generate().sign(b"x").hex()}
    )
    for bad_headers, bad_body in [
        (headers, notice_body("req-2")),  # the body changed after signing
        (other, body),  # signed by someone else
        ({**headers, "X-Fal-Webhook-User-Id": "someone-else"}, body),
        ({**headers, "X-Fal-Webhook-Signature": "not hex"}, body),
        ({k: v for k, v in headers.items() if k != "X-Fal-Webhook-Signature"}, body),
    ]:
        with pytest.raises(ProviderError) as caught:
            await provider.verify_webhook(bad_headers, bad_body)
        assert caught.value.kind is FailureKind.INVALID


async def test_a_stale_webhook_is_refused(fal: FalState, provider: FalProvider) -> None:
    body = notice_body("req-1")
    for skew in (-301, 301):
        headers = fal.sign("req-1", body, timestamp=int(time.time()) + skew)
        with pytest.raises(ProviderError, match="stale") as caught:
            await provider.verify_webhook(headers, body)
        assert caught.value.kind is FailureKind.INVALID


async def test_the_key_set_is_cached_and_fetched_again_after_a_rotation(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    clock = SteppedClock()
    provider = FalProvider(context(fal, http), clock=clock)

    async def verify(request_id: str) -> None:
        body = notice_body(request_id)
        headers = fal.sign(request_id, body, timestamp=int(clock.now))
        assert (await provider.verify_webhook(headers, body)).request_id == request_id

    await verify("a")
    await verify("b")
    assert len(fal.of("GET", "/jwks.json")) == 1
    fal.rotate_key()
    with pytest.raises(ProviderError):  # refetched a moment ago: a forgery gets no new fetch
        await verify("c")
    assert len(fal.of("GET", "/jwks.json")) == 1
    clock.now += 61
    await verify("d")  # no held key verifies: fetched once more, and the new one does
    assert len(fal.of("GET", "/jwks.json")) == 2
    clock.now += 24 * 3600
    await verify("e")  # a day old: fetched again although the held key still verifies
    assert len(fal.of("GET", "/jwks.json")) == 3


async def test_a_key_set_that_cannot_be_fetched_is_unavailable(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    provider = create(context(fal, http, jwks_url=f"{fal.url}/files/missing.json"))
    body = notice_body("req-1")
    with pytest.raises(ProviderError) as caught:
        await provider.verify_webhook(fal.sign("req-1", body), body)
    assert caught.value.kind is FailureKind.UNAVAILABLE


@dataclass
class Receiver:
    url: str
    deliveries: asyncio.Queue[tuple[dict[str, str], bytes]]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A loopback receiver that hands each delivery to the test's event loop."""
    loop = asyncio.get_running_loop()
    deliveries: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        delivery = (dict(request.headers), await request.body())
        loop.call_soon_threadsafe(deliveries.put_nowait, delivery)
        return Response(status_code=200)

    with serve_in_thread(app) as url:
        yield Receiver(f"{url}/hook", deliveries)


async def test_a_webhook_wakes_the_poll_loop(fal: FalState, http: httpx.AsyncClient) -> None:
    """A wake-up alone (as from a notice without the output): the loop polls at once."""
    provider = create(context(fal, http, poll_interval=60.0))  # no poll before the webhook
    watch = RecordingWatch()

    async def forward(receiver: Receiver) -> str:
        headers, body = await receiver.deliveries.get()
        notice = await provider.verify_webhook(headers, body)
        watch.wake(notice.request_id)
        return notice.request_id

    with webhook_receiver() as receiver:
        forwarder = asyncio.create_task(forward(receiver))
        async with asyncio.timeout(45):  # well under the 60 s pause the webhook cuts short
            result: ProviderResult = await provider.run(job(webhook_url=receiver.url), watch)
        assert await forwarder == result.request_id

    assert watch.waits == [60.0]
    [submit] = fal.of("POST")
    assert submit.query == {"fal_webhook": receiver.url}

    async def recorded() -> bool:
        return bool(fal.webhooks)

    await eventually(recorded, 20, "the fake to record its delivery")
    [delivery] = fal.webhooks
    assert delivery.status_code == 200 and delivery.body["status"] == "OK"
    assert delivery.body["payload"]["images"][0]["url"] == result.outputs[0].url


async def test_a_webhook_with_the_output_ends_the_job_without_polling(
    fal: FalState, http: httpx.AsyncClient
) -> None:
    provider = create(context(fal, http, poll_interval=60.0))
    watch = RecordingWatch()

    async def forward(receiver: Receiver) -> None:
        headers, body = await receiver.deliveries.get()
        notice = await provider.verify_webhook(headers, body)
        watch.wake(notice.request_id, notice.answer)

    with webhook_receiver() as receiver:
        forwarder = asyncio.create_task(forward(receiver))
        async with asyncio.timeout(45):
            result: ProviderResult = await provider.run(job(webhook_url=receiver.url), watch)
        await forwarder

    assert watch.waits == [60.0]
    assert [r.path for r in fal.of("GET") if "/requests/" in r.path] == []  # no status, no result

    async def recorded() -> bool:
        return bool(fal.webhooks)

    await eventually(recorded, 20, "the fake to record its delivery")
    [delivery] = fal.webhooks
    assert [o.url for o in result.outputs] == [
        image["url"] for image in delivery.body["payload"]["images"]
    ]
    assert result.request_id == delivery.body["request_id"]


async def test_a_failed_job_sends_an_error_webhook(fal: FalState, provider: FalProvider) -> None:
    with webhook_receiver() as receiver:
        await failure(provider, job(payload={}, webhook_url=receiver.url))
        headers, body = await receiver.deliveries.get()
    notice = json.loads(body)
    assert notice["status"] == "ERROR" and notice["error"] == "Invalid status code: 422"
    assert notice["payload"]["detail"][0]["loc"] == ["body", "prompt"]
    assert (await provider.verify_webhook(headers, body)).request_id == notice["request_id"]


# --- the connection pool ------------------------------------------------------------------


async def test_a_stream_for_every_job_in_flight_fits_the_providers_connection_pool(
    fal: FalState, make_settings: SettingsFactory
) -> None:
    # More jobs in flight than httpx's default pool of 100 connections: each holds one open
    # for its stream, and none may wait for another's to end.
    cap = 110
    settings = make_settings(
        fal_key=fal.key,
        fal_base_url=fal.url,
        provider_concurrency={"fal": cap},
        provider_poll_interval=3600.0,
    )
    registry = ProviderRegistry(settings)
    try:
        provider = await registry.get("fal")
        fal.script(*[JobScript(hold=True)] * cap)
        runs = [asyncio.create_task(provider.run(job(), RecordingWatch())) for _ in range(cap)]

        async def all_streaming() -> bool:
            return len(streams(fal)) == cap and all(not run.done() for run in runs)

        await eventually(all_streaming, WAIT_S, f"{cap} status streams open at once")
        for request_id in list(fal.jobs):
            fal.release(request_id)
        async with asyncio.timeout(WAIT_S):
            results = await asyncio.gather(*runs)
    finally:
        await registry.aclose()
    assert len({result.request_id for result in results}) == cap
