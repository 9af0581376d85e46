"""The fake's shapes, proven by fal's own client. ``fal_client`` takes no base URL and writes
``https://`` into its module constants at import (providers.md §0.2), so the test points
``QUEUE_URL_FORMAT`` at the fake; after a submit, the handle follows the URLs the fake returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.providers.fakes.fal import FalState, JobScript, Reply, serve_fal

fal_client = pytest.importorskip("fal_client")

from fal_client.client import (  # noqa: E402
    AsyncClient,
    Completed,
    FalClientHTTPError,
    InProgress,
    Queued,
)

FLUX = "fal-ai/flux/dev"
KLING = "fal-ai/kling-video/v3/pro/image-to-video"
POLL = 0.01


@pytest.fixture
def fal(monkeypatch: pytest.MonkeyPatch) -> Iterator[FalState]:
    with serve_fal() as state:
        monkeypatch.setattr("fal_client.client.QUEUE_URL_FORMAT", f"{state.url}/")
        yield state


@pytest.fixture
async def client(fal: FalState) -> AsyncIterator[AsyncClient]:
    sdk = AsyncClient(key=fal.key)
    yield sdk
    # the SDK keeps one httpx client per AsyncClient and has no close of its own
    await (await sdk._client).aclose()


async def test_the_sdk_submits_follows_the_queue_and_gets_the_result(
    fal: FalState, client: AsyncClient
) -> None:
    fal.script(JobScript(queued=1, running=1))

    handle = await client.submit(FLUX, {"prompt": "a red fox"})
    statuses = [s async for s in handle.iter_events(with_logs=True, interval=POLL)]
    result = await handle.get(interval=POLL)

    queued, running, completed = statuses
    assert queued == Queued(position=0)
    assert isinstance(running, InProgress) and running.logs
    assert isinstance(completed, Completed) and completed.error is None
    assert completed.metrics == {"inference_time": 0.05} and completed.logs
    assert result["images"][0]["url"] == f"{fal.url}/files/image.png"
    assert fal.of("POST")[0].headers["authorization"] == f"Key {fal.key}"
    assert fal.of("GET", "/status")[0].query == {"logs": "true"}


async def test_the_sdk_follows_a_subpath_endpoint_at_owner_and_app(
    fal: FalState, client: AsyncClient
) -> None:
    fal.script(JobScript(hold=True))
    handle = await client.submit(KLING, {"start_image_url": "https://example.com/a.png"})

    status = await client.status(KLING, handle.request_id, with_logs=True)
    fal.release(handle.request_id)
    result = await client.result(KLING, handle.request_id)

    assert isinstance(status, InProgress)
    assert result["video"]["url"] == f"{fal.url}/files/video.mp4"
    followed = {r.path for r in fal.requests if r.method == "GET"}
    assert all(path.startswith("/fal-ai/kling-video/requests/") for path in followed)


async def test_the_sdk_sees_an_input_the_app_refuses(fal: FalState, client: AsyncClient) -> None:
    handle = await client.submit(FLUX, {"image_size": "square_hd"})

    status = await handle.status()
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get(interval=POLL)

    assert isinstance(status, Completed) and status.error == "Invalid status code: 422"
    assert caught.value.status_code == 422
    detail: object = caught.value.message  # typed str, but it holds the body's ``detail``
    assert detail == [{"loc": ["body", "prompt"], "msg": "Field required", "type": "value_error"}]


async def test_the_sdk_reads_an_infrastructure_errors_type(
    fal: FalState, client: AsyncClient
) -> None:
    fal.fail_submit(Reply.infrastructure("runner_scheduling_failure", 503))
    with pytest.raises(FalClientHTTPError) as caught:
        await client.submit(FLUX, {"prompt": "x"})
    assert caught.value.status_code == 503
    assert caught.value.error_type == "runner_scheduling_failure"
    assert caught.value.message == "Runner scheduling failure"


async def test_the_sdk_cancels(fal: FalState, client: AsyncClient) -> None:
    fal.script(JobScript(hold=True))
    handle = await client.submit(FLUX, {"prompt": "x"})

    await handle.cancel()
    status = await handle.status()
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.cancel()

    assert fal.jobs[handle.request_id].canceled
    assert isinstance(status, Completed) and status.error is not None
    assert caught.value.status_code == 400  # ALREADY_COMPLETED
