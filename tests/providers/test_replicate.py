"""The Replicate adapter against its loopback fake, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from hyperlocal.engines.base import Category, MediaInput, MediaKind
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
)
from hyperlocal.engines.providers.replicate import (
    CREATE_MARGIN_S,
    DATA_URI_MAX,
    ReplicateProvider,
    _widen_wait_timeout,
    create,
)
from tests.providers.fakes.replicate import ReplicateState, Script, running, tqdm_line
from tests.providers.watch import RecordingWatch
from tests.receiver import running_receiver
from tests.support import eventually, free_port, tiny_png

MODEL = "black-forest-labs/flux-schnell"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MakeProvider = Callable[..., ReplicateProvider]


@pytest.fixture
def fake() -> Iterator[ReplicateState]:
    with running() as state:
        yield state


@pytest.fixture
async def make_provider(fake: ReplicateState) -> AsyncIterator[MakeProvider]:
    made: list[ReplicateProvider] = []
    async with httpx.AsyncClient() as http:

        def make(**overrides: Any) -> ReplicateProvider:
            values: dict[str, Any] = {
                "name": "replicate",
                "key": fake.token,
                "base_url": fake.url,
                "http": http,
                "poll_interval": 0.01,
                **overrides,
            }
            provider = create(ProviderContext(**values))
            made.append(provider)
            return provider

        yield make
        for provider in made:
            await provider.aclose()


def call(
    payload: Payload | None = None, endpoint: str = MODEL, webhook_url: str | None = None
) -> ProviderCall:
    return ProviderCall(
        job_id="job-1",
        model="flux-1-schnell",
        category=Category.IMAGE,
        endpoint=endpoint,
        payload=payload if payload is not None else {"prompt": "a red fox"},
        webhook_url=webhook_url,
    )


async def run(provider: ReplicateProvider, the_call: ProviderCall | None = None) -> ProviderResult:
    return await provider.run(the_call or call(), RecordingWatch())


async def failure_of(provider: ReplicateProvider, the_call: ProviderCall | None = None) -> Any:
    with pytest.raises(ProviderError) as caught:
        await run(provider, the_call)
    return caught.value


def creates(fake: ReplicateState, model: str = MODEL) -> list[Any]:
    return fake.requests_to(f"/v1/models/{model}/predictions", "POST")


def polls(fake: ReplicateState, prediction_id: str) -> list[Any]:
    return fake.requests_to(f"/v1/predictions/{prediction_id}", "GET")


def media(data: bytes, content_type: str = "image/png", name: str = "image") -> MediaInput:
    return MediaInput(
        field=name, kind=MediaKind.IMAGE, content_type=content_type, data=data, source="data:"
    )


# --- a prediction, start to end -----------------------------------------------------------------


async def test_an_official_model_runs_with_progress(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script = Script(starting_polls=1, progress=(30, 60))
    watch = RecordingWatch()
    result = await make_provider().run(call(), watch)

    [created] = creates(fake)
    assert created.headers["authorization"] == f"Bearer {fake.token}"
    assert created.headers["prefer"] == "wait=5"
    assert created.json == {"input": {"prompt": "a red fox"}}
    [prediction_id] = watch.request_ids
    assert result.request_id == prediction_id
    assert watch.fractions == [0.3, 0.6]
    assert len(polls(fake, prediction_id)) == 4  # starting, 30 %, 60 %, succeeded
    assert watch.waits[0] == 0.01
    assert watch.waits == sorted(watch.waits) and watch.waits[-1] > watch.waits[0]
    [output] = result.outputs
    assert output.url is not None and output.url.startswith(f"{fake.url}/output/{prediction_id}/")
    async with httpx.AsyncClient() as client:
        served = await client.get(output.url)
    assert served.headers["content-type"] == "image/png"
    assert served.content.startswith(PNG_MAGIC)


async def test_a_quick_prediction_answers_within_the_prefer_wait(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    watch = RecordingWatch()
    result = await make_provider().run(call(), watch)

    assert result.request_id == watch.request_ids[0]
    assert fake.predictions[watch.request_ids[0]]["status"] == "succeeded"
    assert polls(fake, watch.request_ids[0]) == []
    assert watch.waits == []


async def test_a_release_during_the_prefer_wait_answers_the_create(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script, fake.max_wait = Script(hold=True), 60.0
    task = asyncio.create_task(run(make_provider()))
    await eventually(lambda: _true(bool(fake.predictions)), 10, "the prediction to be created")
    fake.release()
    result = await asyncio.wait_for(task, 30)

    assert result.request_id is not None
    assert polls(fake, result.request_id) == []


async def test_a_version_runs_through_predictions(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    version = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
    fake.versions[version] = "stability-ai/sdxl"
    result = await run(make_provider(), call(endpoint=f"stability-ai/sdxl:{version}"))

    [created] = fake.requests_to("/v1/predictions", "POST")
    assert created.json == {"version": version, "input": {"prompt": "a red fox"}}
    assert result.request_id is not None
    assert fake.predictions[result.request_id]["model"] == "stability-ai/sdxl"


@pytest.mark.parametrize(
    ("output", "count", "suffix"),
    [("images", 2, ".png"), ("video", 1, ".mp4"), ("audio", 1, ".wav")],
)
async def test_output_files_are_urls_for_the_router(
    fake: ReplicateState, make_provider: MakeProvider, output: Any, count: int, suffix: str
) -> None:
    fake.script = Script(output=output)
    result = await run(make_provider())

    urls = [item.url for item in result.outputs]
    assert len(urls) == count
    assert all(url is not None and url.endswith(suffix) for url in urls)
    assert all(item.data is None for item in result.outputs)  # the router downloads them
    async with httpx.AsyncClient() as client:
        served = await client.get(str(urls[0]))
    assert served.status_code == 200 and len(served.content) > 32


async def test_a_data_uri_output_is_passed_on(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script = Script(output="data_uri")
    [output] = (await run(make_provider())).outputs

    assert output.url is not None and output.url.startswith("data:image/png;base64,")


async def test_a_text_output_is_the_text(fake: ReplicateState, make_provider: MakeProvider) -> None:
    fake.script = Script(output="text")
    result = await run(make_provider())

    assert result.text == "a transcript from the fake"
    assert result.outputs == []


async def test_a_prefer_wait_create_has_time_to_answer() -> None:
    """The SDK allows a ``Prefer: wait=5`` create 5.5 s; ours allows a margin that the internet
    can meet, so an accepted prediction is not taken for a timeout (and run twice)."""
    sdk_timeout = httpx.Timeout(5.0, read=5.5).as_dict()
    request = httpx.Request(
        "POST",
        f"http://127.0.0.1/v1/models/{MODEL}/predictions",
        headers={"Prefer": "wait=5"},
        extensions={"timeout": sdk_timeout},
    )
    await _widen_wait_timeout(request)

    assert request.extensions["timeout"]["read"] == 5 + CREATE_MARGIN_S
    assert request.extensions["timeout"]["connect"] == 5.0


# --- inputs ---------------------------------------------------------------------------------


async def test_small_media_goes_as_data_uris(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    png = tiny_png()
    payload: Payload = {"prompt": "p", "image": media(png), "refs": [media(png), media(png)]}
    await run(make_provider(), call(payload))

    [created] = creates(fake)
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode()
    assert created.json["input"] == {"prompt": "p", "image": data_uri, "refs": [data_uri] * 2}
    assert fake.requests_to("/v1/files", "POST") == []


async def test_large_media_goes_through_the_files_api(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    big = tiny_png() + bytes(DATA_URI_MAX)
    await run(make_provider(), call({"prompt": "p", "image": media(big, name="start_image")}))

    [upload] = fake.requests_to("/v1/files", "POST")
    sent = upload.files["content"]
    assert (sent.data, sent.content_type, sent.filename) == (big, "image/png", "start_image.png")
    [file_id] = fake.uploads
    [created] = creates(fake)
    assert created.json["input"]["image"] == f"{fake.url}/v1/files/{file_id}"


# --- refusals before the prediction exists ----------------------------------------------------


async def test_invalid_input_is_invalid_with_replicates_words(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.require[MODEL] = ["prompt"]
    error = await failure_of(make_provider(), call({"seed": 1}))

    assert error.kind is FailureKind.INVALID
    assert error.message == "- input.prompt: prompt is required"
    assert error.status == 422


async def test_a_400_is_invalid(fake: ReplicateState, make_provider: MakeProvider) -> None:
    fake.fail_next(400, "The image is not a valid PNG")
    error = await failure_of(make_provider())

    assert (error.kind, error.message, error.status) == (
        FailureKind.INVALID,
        "The image is not a valid PNG",
        400,
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_is_unavailable_and_not_retried(
    fake: ReplicateState, make_provider: MakeProvider, status: int
) -> None:
    fake.fail_next(status)
    error = await failure_of(make_provider())

    assert (error.kind, error.status) == (FailureKind.UNAVAILABLE, status)
    assert len(creates(fake)) == 1  # the SDK's RetryTransport is out of the way


async def test_a_refused_connection_is_unavailable(make_provider: MakeProvider) -> None:
    error = await failure_of(make_provider(base_url=f"http://127.0.0.1:{free_port()}"))

    assert error.kind is FailureKind.UNAVAILABLE


async def test_a_bad_token_is_unavailable_and_names_the_variable(
    make_provider: MakeProvider,
) -> None:
    error = await failure_of(make_provider(key="r8_wrong"))

    assert (error.kind, error.status) == (FailureKind.UNAVAILABLE, 401)
    assert "REPLICATE_API_TOKEN" in error.message
    assert "r8_wrong" not in error.message


async def test_a_429_carries_its_retry_after(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.throttle_next(retry_after=7)
    error = await failure_of(make_provider())

    assert (error.kind, error.status, error.retry_after) == (FailureKind.UNAVAILABLE, 429, 7.0)
    assert "Request was throttled" in error.message
    assert len(creates(fake)) == 1


async def test_a_429_without_the_header_reads_the_body(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.fail_next(429, "Request was throttled. Your rate limit resets in ~12s.")
    error = await failure_of(make_provider())

    assert (error.status, error.retry_after) == (429, 12.0)


# --- after acceptance -------------------------------------------------------------------------


async def test_poll_hiccups_are_polled_through(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script = Script(starting_polls=1)
    fake.fail_next(503, on="get")
    fake.throttle_next(retry_after=1, on="get")
    watch = RecordingWatch()
    result = await make_provider().run(call(), watch)

    assert result.request_id is not None
    assert len(polls(fake, result.request_id)) == 4  # 503, 429, starting, succeeded
    assert watch.waits[2] == 1.0  # the 429's Retry-After, before the third poll
    assert watch.waits[3] < 1.0  # then the backoff goes on as before


@pytest.mark.parametrize("end", ["failed", "canceled", "aborted"])
async def test_a_prediction_that_does_not_succeed_fails(
    fake: ReplicateState, make_provider: MakeProvider, end: Any
) -> None:
    fake.script = Script(starting_polls=1, end=end, error="CUDA out of memory")
    error = await failure_of(make_provider())

    assert error.kind is FailureKind.FAILED
    assert error.request_id in fake.predictions
    expected = "CUDA out of memory" if end == "failed" else f"replicate: the prediction was {end}"
    assert error.message == expected


async def test_an_interrupted_prediction_is_unavailable(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script = Script(end="failed", error="Prediction interrupted; please retry (code: PA)")
    error = await failure_of(make_provider())

    assert error.kind is FailureKind.UNAVAILABLE


async def test_a_cancel_reaches_replicate(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script, fake.max_wait = Script(hold=True), 0.01
    watch = RecordingWatch()
    task = asyncio.create_task(make_provider().run(call(), watch))
    await asyncio.wait_for(watch.submitted_event.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [prediction_id] = watch.request_ids
    assert len(fake.requests_to(f"/v1/predictions/{prediction_id}/cancel", "POST")) == 1
    assert fake.predictions[prediction_id]["status"] == "canceled"


# --- webhooks ---------------------------------------------------------------------------------


def _signed_prediction(fake: ReplicateState, **headers_args: Any) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": "gm3qorzdhgbfurvjtvhg6dckhu", "status": "succeeded"}).encode()
    return fake.signed(body, **headers_args), body


async def test_a_signed_webhook_names_its_prediction(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    headers, body = _signed_prediction(fake)
    notice = await make_provider(webhook_secret=fake.secret).verify_webhook(headers, body)

    assert notice.request_id == "gm3qorzdhgbfurvjtvhg6dckhu"
    assert fake.requests_to("/v1/webhooks/default/secret") == []


async def test_the_secret_is_read_once_when_not_configured(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    for _ in range(2):
        headers, body = _signed_prediction(fake)
        assert (await provider.verify_webhook(headers, body)).request_id

    assert len(fake.requests_to("/v1/webhooks/default/secret", "GET")) == 1


@pytest.mark.parametrize("tamper", ["body", "signature", "stale", "future", "missing"])
async def test_a_bad_webhook_is_refused(
    fake: ReplicateState, make_provider: MakeProvider, tamper: str
) -> None:
    now = int(time.time())
    stamp = {"stale": now - 600, "future": now + 600}.get(tamper)
    headers, body = _signed_prediction(fake, timestamp=stamp)
    if tamper == "body":
        body = body.replace(b"succeeded", b"failed")
    if tamper == "signature":
        headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
    if tamper == "missing":
        del headers["webhook-signature"]
    provider = make_provider(webhook_secret=fake.secret)

    with pytest.raises(ProviderError) as caught:
        await provider.verify_webhook(headers, body)
    assert caught.value.kind is FailureKind.INVALID


async def test_a_webhook_wakes_the_poll_loop(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script, fake.max_wait = Script(hold=True), 0.01
    provider = make_provider(poll_interval=300.0)  # only a webhook ends this wait in time
    watch = RecordingWatch()
    with running_receiver() as receiver:
        hook = receiver.url("replicate")
        task = asyncio.create_task(provider.run(call(webhook_url=hook), watch))
        await asyncio.wait_for(watch.submitted_event.wait(), 30)
        fake.release()
        await eventually(lambda: _true(len(receiver.on("replicate")) == 2), 20, "2 webhooks")
        completed = receiver.on("replicate")[-1]
        notice = await provider.verify_webhook(completed.headers, completed.body)
        watch.wake(notice.request_id)
        result = await asyncio.wait_for(task, 30)

    assert result.request_id == notice.request_id == watch.request_ids[0]
    assert json.loads(completed.body)["status"] == "succeeded"
    [created] = creates(fake)
    assert created.json["webhook"] == hook
    assert created.json["webhook_events_filter"] == ["start", "completed"]
    assert len(polls(fake, notice.request_id)) == 1


async def test_a_webhook_with_the_succeeded_prediction_ends_the_job_without_a_poll(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script, fake.max_wait = Script(hold=True), 0.01
    provider = make_provider(poll_interval=300.0)
    watch = RecordingWatch()
    with running_receiver() as receiver:
        task = asyncio.create_task(provider.run(call(webhook_url=receiver.url("replicate")), watch))
        await asyncio.wait_for(watch.submitted_event.wait(), 30)
        fake.release()
        await eventually(lambda: _true(len(receiver.on("replicate")) == 2), 20, "2 webhooks")
        started, completed = receiver.on("replicate")
        for delivery in (started, completed):
            notice = await provider.verify_webhook(delivery.headers, delivery.body)
            assert (notice.answer is None) is (delivery is started)  # only the end is an answer
        watch.wake(notice.request_id, notice.answer)
        result = await asyncio.wait_for(task, 30)

    assert polls(fake, notice.request_id) == []
    output = json.loads(completed.body)["output"]
    assert [o.url for o in result.outputs] == (output if isinstance(output, list) else [output])


async def test_webhooks_come_only_for_the_events_asked(
    fake: ReplicateState, make_provider: MakeProvider
) -> None:
    fake.script = Script(progress=(50,))
    with running_receiver() as receiver:
        result = await run(make_provider(), call(webhook_url=receiver.url("replicate")))
        await eventually(lambda: _true(len(fake.webhooks) == 2), 20, "the webhooks")

    assert [hook.event for hook in fake.webhooks] == ["start", "completed"]
    assert {hook.prediction_id for hook in fake.webhooks} == {result.request_id}
    assert fake.predictions[str(result.request_id)]["logs"] == tqdm_line(50) + "\n"


async def _true(value: bool) -> bool:
    return value
