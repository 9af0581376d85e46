"""The official ``replicate`` SDK against the loopback fake: the fake's shapes, proven by the
real client (its sync side, as most users call it)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import replicate
from replicate.client import Client
from replicate.exceptions import ModelError, ReplicateError
from replicate.helpers import FileOutput
from replicate.webhook import InvalidSignatureError

from tests.providers.fakes.replicate import ReplicateState, Script, running
from tests.receiver import running_receiver
from tests.support import tiny_png

MODEL = "black-forest-labs/flux-schnell"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fake() -> Iterator[ReplicateState]:
    with running() as state:
        yield state


@pytest.fixture
def client(fake: ReplicateState) -> Iterator[Client]:
    sdk = Client(api_token=fake.token, base_url=fake.url)
    sdk.poll_interval = 0.01
    yield sdk
    sdk._client.close()


def test_run_answers_within_the_prefer_wait(fake: ReplicateState, client: Client) -> None:
    fake.script = Script(output="images")
    output = client.run(MODEL, input={"prompt": "a red fox"})

    [created] = fake.requests_to(f"/v1/models/{MODEL}/predictions", "POST")
    assert created.headers["prefer"] == "wait"
    assert isinstance(output, list) and len(output) == 2
    # The SDK wraps https URLs only; the fake's are http on loopback.
    assert httpx.get(output[0]).content.startswith(PNG_MAGIC)


def test_run_reads_a_data_uri_output(fake: ReplicateState, client: Client) -> None:
    fake.script = Script(output="data_uri")
    output = client.run(MODEL, input={"prompt": "a red fox"})

    assert isinstance(output, FileOutput)
    assert output.read() == tiny_png()


def test_create_then_wait_polls_to_the_end(fake: ReplicateState, client: Client) -> None:
    fake.script = Script(starting_polls=1, progress=(40,))
    prediction = client.predictions.create(model=MODEL, input={"prompt": "a red fox"})
    first = prediction.status
    assert first == "starting"
    assert prediction.urls is not None
    assert prediction.urls["get"] == f"{fake.url}/v1/predictions/{prediction.id}"

    prediction.wait()

    assert prediction.status == "succeeded"
    assert prediction.progress is not None and prediction.progress.percentage == 0.4
    assert len(fake.requests_to(f"/v1/predictions/{prediction.id}", "GET")) == 3
    assert isinstance(prediction.output, str) and prediction.output.endswith(".png")


def test_a_version_runs_through_predictions(fake: ReplicateState, client: Client) -> None:
    fake.versions["abc123"] = "stability-ai/sdxl"
    prediction = client.predictions.create(version="abc123", input={"prompt": "p"}, wait=1)

    assert (prediction.model, prediction.version) == ("stability-ai/sdxl", "abc123")
    assert prediction.status == "succeeded"


def test_a_held_prediction_comes_back_incomplete_then_cancels(
    fake: ReplicateState, client: Client
) -> None:
    fake.script, fake.max_wait = Script(hold=True), 0.05
    # predictions.create(model=...) drops ``wait`` on its way to models.predictions (1.0.7).
    prediction = client.models.predictions.create(model=MODEL, input={"prompt": "p"}, wait=2)
    assert fake.requests_to(f"/v1/models/{MODEL}/predictions")[0].headers["prefer"] == "wait=2"
    first = prediction.status
    assert first == "processing"

    prediction.cancel()

    assert prediction.status == "canceled"
    assert fake.requests_to(f"/v1/predictions/{prediction.id}/cancel", "POST")


def test_a_failed_prediction_raises_model_error(fake: ReplicateState, client: Client) -> None:
    fake.script = Script(end="failed", error="CUDA out of memory")
    with pytest.raises(ModelError) as caught:
        client.run(MODEL, input={"prompt": "p"})

    assert caught.value.prediction.error == "CUDA out of memory"


def test_invalid_input_raises_replicate_error(fake: ReplicateState, client: Client) -> None:
    fake.require[MODEL] = ["prompt"]
    with pytest.raises(ReplicateError) as caught:
        client.run(MODEL, input={"seed": 1})

    error = caught.value
    assert (error.status, error.title) == (422, "Input validation failed")
    assert error.detail == "- input.prompt: prompt is required\n"


def test_a_bad_token_raises_replicate_error(fake: ReplicateState) -> None:
    stranger = Client(api_token="r8_wrong", base_url=fake.url)
    with pytest.raises(ReplicateError) as caught:
        stranger.predictions.get("x")
    stranger._client.close()

    assert (caught.value.status, caught.value.title) == (401, "Unauthenticated")


def test_files_upload_and_read_back(fake: ReplicateState, client: Client) -> None:
    uploaded = client.files.create(io.BytesIO(b"RIFF...."), filename="voice.wav")

    assert (uploaded.name, uploaded.content_type, uploaded.size) == ("voice.wav", "audio/x-wav", 8)
    assert fake.uploads[uploaded.id].data == b"RIFF...."
    assert client.files.get(uploaded.id).urls["get"] == uploaded.urls["get"]


def test_stream_yields_the_output_then_done(fake: ReplicateState, client: Client) -> None:
    fake.script = Script(output="text", progress=(50,))
    events = list(client.stream(MODEL, input={"prompt": "p"}))

    assert "".join(str(event) for event in events) == "a transcript from the fake"
    assert events[-1].event.value == "done"


def test_a_webhook_validates_with_the_default_secret(fake: ReplicateState, client: Client) -> None:
    with running_receiver() as receiver:
        prediction = client.predictions.create(
            model=MODEL,
            input={"prompt": "p"},
            webhook=receiver.url("hook"),
            webhook_events_filter=["completed"],
        )
        prediction.wait()
        _until(lambda: len(receiver.on("hook")) == 1, "the completed webhook")
        [received] = receiver.on("hook")

    secret = client.webhooks.default.secret()
    assert secret.key == fake.secret
    body = received.body.decode()
    replicate.webhooks.validate(headers=received.headers, body=body, secret=secret, tolerance=300)
    assert json.loads(body)["id"] == prediction.id
    assert json.loads(body)["status"] == "succeeded"
    assert [hook.event for hook in fake.webhooks] == ["completed"]
    with pytest.raises(InvalidSignatureError):
        replicate.webhooks.validate(
            headers=received.headers, body=body.replace("succeeded", "failed"), secret=secret
        )


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Return once ``check()`` holds; ``timeout`` only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
