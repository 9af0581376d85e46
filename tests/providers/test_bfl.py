"""The BFL adapter against its loopback fake, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator

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
from hyperlocal.engines.providers.bfl import BflProvider, create
from hyperlocal.engines.providers.mapping import map_inputs
from tests.providers.fakes.bfl import BflState, create_app
from tests.providers.servers import Served, served
from tests.providers.watch import RecordingWatch
from tests.support import eventually, free_port, serve_in_thread, tiny_png

PROMPT = "make the sky purple"


Fake = Served[BflState]


@pytest.fixture
def fake() -> Iterator[Fake]:
    with served(BflState(), create_app) as running:
        yield running


def provider(
    fake: Fake, http: httpx.AsyncClient, *, key: str | None = None, poll: float = 0.01
) -> BflProvider:
    context = ProviderContext(
        name="bfl",
        key=fake.state.key if key is None else key,
        base_url=fake.url,
        http=http,
        poll_interval=poll,
    )
    return create(context)


def image(color: tuple[int, int, int] = (200, 30, 30)) -> MediaInput:
    return MediaInput("images", MediaKind.IMAGE, "image/png", tiny_png(color), source="data:")


def call(
    payload: Payload, endpoint: str = "flux-kontext-pro", webhook_url: str | None = None
) -> ProviderCall:
    return ProviderCall(
        job_id="job-1",
        model="flux-kontext-pro-edit",
        category=Category.IMAGE_EDIT,
        endpoint=endpoint,
        payload=payload,
        webhook_url=webhook_url,
    )


def edit(**fields: object) -> ProviderCall:
    return call({"prompt": PROMPT, "input_image": image(), **fields})  # type: ignore[dict-item]


async def failure(bfl: BflProvider, job: ProviderCall) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await bfl.run(job, RecordingWatch())
    return caught.value


# --- success -------------------------------------------------------------------------------


async def test_an_edit_is_submitted_polled_and_returns_the_sample_url(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    watch = RecordingWatch()
    result = await provider(fake, http).run(edit(aspect_ratio="16:9", output_format="png"), watch)

    (submit,) = fake.state.submits()
    assert submit.path == "/v1/flux-kontext-pro"
    assert submit.headers["x-key"] == fake.state.key
    assert submit.json["prompt"] == PROMPT
    assert submit.json["aspect_ratio"] == "16:9"
    assert submit.json["output_format"] == "png"
    assert base64.b64decode(submit.json["input_image"]) == image().data  # inline, not a URL
    (job_id,) = fake.state.jobs
    assert result.request_id == job_id
    assert watch.request_ids == [job_id]
    assert fake.state.cost is not None
    assert result.cost_usd == pytest.approx(fake.state.cost * 0.01)  # credits: one cent each
    (output,) = result.outputs
    assert output.url == f"{fake.url}/files/{job_id}.png"
    downloaded = (await http.get(output.url)).content
    assert downloaded.startswith(b"\x89PNG")


async def test_progress_is_reported_and_polls_back_off(fake: Fake, http: httpx.AsyncClient) -> None:
    fake.state.pending_polls = 3
    watch = RecordingWatch()
    await provider(fake, http).run(edit(), watch)

    assert watch.fractions == [0.25, 0.5, 0.75]
    assert len(fake.state.polls()) == 4
    assert all(poll.headers["x-key"] == fake.state.key for poll in fake.state.polls())
    assert watch.waits == [0.01, 0.015, 0.0225]


async def test_several_images_are_numbered_input_image_fields(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    images = [image((10, 10, 10)), image((20, 20, 20)), image((30, 30, 30))]
    await provider(fake, http).run(
        call({"prompt": PROMPT, "input_image": images}), RecordingWatch()
    )

    body = fake.state.submits()[0].json
    sent = [body["input_image"], body["input_image_2"], body["input_image_3"]]
    assert [base64.b64decode(b) for b in sent] == [m.data for m in images]
    assert "input_image_4" not in body


async def test_a_polling_url_on_another_origin_is_not_followed(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    elsewhere = BflState(key=fake.state.key)
    with serve_in_thread(create_app(elsewhere)) as other:
        fake.state.polling_base = other
        result = await provider(fake, http).run(edit(), RecordingWatch())

    assert elsewhere.requests == []  # the key never went there
    (job_id,) = fake.state.jobs
    assert {poll.query["id"] for poll in fake.state.polls()} == {job_id}
    assert result.request_id == job_id


async def test_a_flaky_poll_is_polled_through(fake: Fake, http: httpx.AsyncClient) -> None:
    fake.state.fail_next_poll(503)
    fake.state.fail_next_poll(429)
    result = await provider(fake, http).run(edit(), RecordingWatch())

    assert result.outputs[0].url is not None
    assert len(fake.state.polls()) == 2 + fake.state.pending_polls + 1


# --- refusals before acceptance ------------------------------------------------------------


async def test_invalid_input_is_invalid_with_bfls_own_message(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    error = await failure(provider(fake, http), edit(output_format="webp"))

    assert error.kind is FailureKind.INVALID
    assert error.status == 422
    assert error.message == "output_format: Input should be 'jpeg' or 'png'"
    assert fake.state.jobs == {}


async def test_a_server_error_is_unavailable(fake: Fake, http: httpx.AsyncClient) -> None:
    fake.state.fail_next_submit(500)
    error = await failure(provider(fake, http), edit())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 500
    assert "Internal Server Error" in error.message


@pytest.mark.parametrize(
    ("headers", "expected"), [({"Retry-After": "7"}, 7.0), ({}, 5.0)], ids=["header", "body"]
)
async def test_a_rate_limit_is_unavailable_with_its_retry_after(
    fake: Fake, http: httpx.AsyncClient, headers: dict[str, str], expected: float
) -> None:
    fake.state.fail_next_submit(429, headers=headers)
    error = await failure(provider(fake, http), edit())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 429
    assert error.retry_after == expected
    assert "Too many concurrent requests" in error.message


async def test_no_credits_is_unavailable(fake: Fake, http: httpx.AsyncClient) -> None:
    fake.state.fail_next_submit(402)
    error = await failure(provider(fake, http), edit())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 402
    assert error.message.startswith("no credits at BFL")


async def test_a_refused_key_names_its_variable_and_not_the_key(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    error = await failure(provider(fake, http, key="wrong-secret-key"), edit())

    assert error.kind is FailureKind.UNAVAILABLE
    assert error.status == 401
    assert "BFL_API_KEY" in error.message
    assert "wrong-secret-key" not in error.message


async def test_an_unreachable_bfl_is_unavailable(http: httpx.AsyncClient) -> None:
    closed = Fake(BflState(), f"http://127.0.0.1:{free_port()}")
    error = await failure(provider(closed, http), edit())

    assert error.kind is FailureKind.UNAVAILABLE
    assert "could not be reached" in error.message


# --- the job failing at BFL ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ("Error", FailureKind.FAILED),
        ("Content Moderated", FailureKind.FAILED),
        ("Request Moderated", FailureKind.INVALID),
        ("Task not found", FailureKind.UNAVAILABLE),
    ],
)
async def test_a_failed_job_carries_bfls_status(
    fake: Fake, http: httpx.AsyncClient, outcome: str, kind: FailureKind
) -> None:
    fake.state.outcome = outcome
    error = await failure(provider(fake, http), edit())

    (job_id,) = fake.state.jobs
    assert error.kind is kind
    assert error.request_id == job_id
    assert outcome in error.message
    if outcome == "Error":
        assert fake.state.error_message in error.message


# --- cancel, webhooks, waking --------------------------------------------------------------


async def test_cancel_stops_polling_since_bfl_has_no_cancel_endpoint(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    fake.state.gate = threading.Event()  # the job stays Pending
    task = asyncio.create_task(provider(fake, http).run(edit(), RecordingWatch()))

    async def polled() -> bool:
        return len(fake.state.polls()) >= 2

    await eventually(polled, 20, "the adapter polling the held job")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    polls = len(fake.state.polls())
    fake.state.gate.set()
    await asyncio.sleep(0)  # the cancelled task has finished: nothing can poll any more
    assert len(fake.state.polls()) == polls
    assert {(r.method, r.path) for r in fake.state.requests} == {
        ("POST", "/v1/flux-kontext-pro"),
        ("GET", "/v1/get_result"),
    }


async def test_webhooks_are_neither_asked_for_nor_accepted(
    fake: Fake, http: httpx.AsyncClient
) -> None:
    bfl = provider(fake, http)
    job = call({"prompt": PROMPT, "input_image": image()}, webhook_url="https://hl.example/wh")
    await bfl.run(job, RecordingWatch())
    body = fake.state.submits()[0].json
    assert "webhook_url" not in body
    assert "webhook_secret" not in body

    with pytest.raises(ProviderError) as caught:
        await bfl.verify_webhook({"x-bfl-signature": "sha256=00"}, b'{"id": "x"}')
    assert caught.value.kind is FailureKind.INVALID
    assert "unconfirmed" in caught.value.message


async def test_a_wake_cuts_a_long_pause_between_polls(fake: Fake, http: httpx.AsyncClient) -> None:
    fake.state.gate = threading.Event()
    fake.state.pending_polls = 0  # once the gate opens, the next poll finds the job Ready
    watch = RecordingWatch()
    task = asyncio.create_task(provider(fake, http, poll=600.0).run(edit(), watch))

    async def waiting() -> bool:
        return bool(watch.waits) and bool(fake.state.polls())

    await eventually(waiting, 20, "the adapter pausing after its first poll")
    fake.state.gate.set()
    watch.wake(watch.request_ids[0])
    async with asyncio.timeout(60):  # bounds a failure only: the pause asked for is 600 s
        result = await task
    assert result.outputs[0].url is not None
    assert watch.waits == [600.0]


# --- the shipped catalogue's BFL routes ----------------------------------------------------


def catalogue_calls() -> list[tuple[str, str, Payload]]:
    """Every BFL route of the shipped catalogue, with a valid request mapped onto it."""
    calls = []
    for entry in load_catalog():
        for route in entry.routes:
            if route.provider != "bfl":
                continue
            params = {"prompt": PROMPT, "aspect_ratio": "4:3", "output_format": "jpeg"}
            media = {"images": [image((1, 2, 3)), image((4, 5, 6))]}
            request = GenerationRequest(
                job_id="job-1",
                model=entry.id,
                category=entry.category,
                params={k: v for k, v in params.items() if k in entry.inputs},
                media={k: v for k, v in media.items() if k in entry.inputs},
            )
            calls.append((entry.id, route.target, map_inputs(request, route)))
    return calls


CATALOGUE_CALLS = catalogue_calls()


def test_the_catalogue_routes_some_models_to_bfl() -> None:
    assert {model for model, _, _ in CATALOGUE_CALLS} >= {
        "flux-kontext-pro-edit",
        "flux-kontext-max-edit",
    }


@pytest.mark.parametrize(("model", "endpoint", "payload"), CATALOGUE_CALLS)
async def test_each_catalogue_route_is_accepted_by_the_fake(
    fake: Fake, http: httpx.AsyncClient, model: str, endpoint: str, payload: Payload
) -> None:
    result = await provider(fake, http).run(call(payload, endpoint=endpoint), RecordingWatch())

    (job,) = fake.state.jobs.values()
    assert job.model == endpoint
    assert job.body["prompt"] == PROMPT
    assert result.outputs[0].url is not None
