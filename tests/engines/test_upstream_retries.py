"""``hypereal-upstream`` against upstream behaviour a real hyperlocal will not show on demand:
overload (429, 502, 503), hiccups while polling, the hosted ASR's transcript-only answer.
The upstream here is a scripted stand-in (third-party HTTP), behind httpx's MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from hyperlocal.engines.base import Category, GenerationRequest, InputValue
from hyperlocal.engines.upstream import UpstreamEngine
from hyperlocal.engines.upstream._transport import OriginRouter
from hyperlocal.engines.upstream._wire import route_for
from hyperlocal.errors import GenerationError, GenerationTimeoutError
from hyperlocal.inputs import AddressPolicy
from tests.support import tiny_png

BASE = "http://upstream.test"
KEY_ENV = "UPSTREAM_SCRIPTED_KEY"
Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers each route's requests in turn from a list; the last answer repeats."""

    def __init__(self, routes: dict[str, list[Reply]]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answers = self.routes[f"{request.method} {request.url.path}"]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request) if callable(answer) else answer

    def calls(self, route: str) -> list[httpx.Request]:
        method, path = route.split(" ", 1)
        return [r for r in self.seen if r.method == method and r.url.path == path]


def _json(status: int, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _file(data: bytes, content_type: str) -> httpx.Response:
    return httpx.Response(200, content=data, headers={"Content-Type": content_type})


IMAGE_OK = _json(
    200, {"created": 1, "data": [{"url": f"{BASE}/files/res_1.png"}], "resultId": "res_1"}
)
PNG = tiny_png()


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "ck_scripted")


@pytest.fixture
async def make_engine() -> AsyncIterator[Callable[[Script], UpstreamEngine]]:
    engines: list[UpstreamEngine] = []

    def make(script: Script) -> UpstreamEngine:
        client = httpx.AsyncClient(transport=httpx.MockTransport(script))
        engines.append(UpstreamEngine(client, OriginRouter(AddressPolicy()), backoff=0.001))
        return engines[-1]

    yield make
    for engine in engines:
        await engine.aclose()


def _request(category: Category = Category.IMAGE, **options: InputValue) -> GenerationRequest:
    base: dict[str, InputValue] = {
        "base_url": f"{BASE}/v1",
        "api_key_env": KEY_ENV,
        "poll_interval": 0.001,
        "retries": 3,
    }
    return GenerationRequest(
        job_id="job_abc",
        model="some-model",
        category=category,
        params={"prompt": "x"},
        options={**base, **options},
    )


async def _ignore(_fraction: float, _message: str | None) -> None:
    return None


async def test_overload_is_retried_with_one_idempotency_key(
    make_engine: Callable[[Script], UpstreamEngine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(
        {
            "POST /v1/images/generate": [
                _json(503, {"error": "busy"}),
                _json(429, {"error": "Rate limit exceeded"}, **{"Retry-After": "0"}),
                httpx.Response(502, text="<html>bad gateway</html>"),
                IMAGE_OK,
            ],
            "GET /files/res_1.png": [_file(PNG, "image/png")],
        }
    )
    result = await make_engine(script).generate(_request(), _ignore)
    assert result.artifacts[0].data == PNG
    submits = script.calls("POST /v1/images/generate")
    assert len(submits) == 4
    assert {r.headers["Idempotency-Key"] for r in submits} == {"hyperlocal-job_abc"}
    assert {r.headers["Authorization"] for r in submits} == {"Bearer ck_scripted"}
    assert json.loads(submits[0].content) == {"prompt": "x", "model": "some-model"}
    download = script.calls("GET /files/res_1.png")[0]
    assert "Authorization" not in download.headers  # the key never leaves for an output URL
    assert "upstream submit will be retried" in caplog.text
    assert "ck_scripted" not in caplog.text


async def test_retries_run_out(make_engine: Callable[[Script], UpstreamEngine]) -> None:
    script = Script({"POST /v1/images/generate": [_json(503, {"error": "busy"})]})
    with pytest.raises(GenerationError) as caught:
        await make_engine(script).generate(_request(retries=2), _ignore)
    assert caught.value.message == "upstream: busy"
    assert caught.value.code == "E1001"
    assert len(script.seen) == 3


@pytest.mark.parametrize(
    ("code", "error_type"), [("E1001", GenerationError), ("E1002", GenerationTimeoutError)]
)
async def test_a_failed_generation_is_not_retried(
    make_engine: Callable[[Script], UpstreamEngine], code: str, error_type: type[Exception]
) -> None:
    script = Script({"POST /v1/images/generate": [_json(500, {"error": "boom", "code": code})]})
    with pytest.raises(error_type, match=r"^upstream: boom$"):
        await make_engine(script).generate(_request(), _ignore)
    assert len(script.seen) == 1


async def test_polling_rides_out_hiccups_and_reports_progress(
    make_engine: Callable[[Script], UpstreamEngine],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    job = {"jobId": "job_up", "status": "processing"}
    script = Script(
        {
            "POST /v1/videos/generate": [_json(202, job)],
            "GET /v1/jobs/job_up": [
                _json(503, {"error": "busy"}),
                refuse,
                _json(200, {**job, "progress": 0.5}),
                _json(200, {**job, "status": "completed", "outputUrl": "/files/job_up.mp4"}),
            ],
            "GET /files/job_up.mp4": [_file(b"\x00\x00\x00\x18ftypmp42", "video/mp4")],
        }
    )
    seen: list[float] = []

    async def progress(fraction: float, _message: str | None) -> None:
        seen.append(fraction)

    result = await make_engine(script).generate(_request(Category.VIDEO), progress)
    assert (result.artifacts[0].content_type, result.artifacts[0].extension) == ("video/mp4", "mp4")
    assert seen == [0.5]
    poll = script.calls("GET /v1/jobs/job_up")[0]
    assert dict(poll.url.params) == {"model": "some-model", "type": "video"}
    assert json.loads(script.calls("POST /v1/videos/generate")[0].content) == {
        "model": "some-model",
        "input": {"prompt": "x"},
    }


async def test_a_failed_upstream_job_fails_ours(
    make_engine: Callable[[Script], UpstreamEngine],
) -> None:
    script = Script(
        {
            "POST /v1/videos/generate": [_json(202, {"jobId": "job_up"})],
            "GET /v1/jobs/job_up": [_json(200, {"status": "failed", "error": "nsfw"})],
        }
    )
    with pytest.raises(GenerationError, match=r"^upstream: nsfw$"):
        await make_engine(script).generate(_request(Category.VIDEO), _ignore)


async def test_a_transcript_without_output_url_is_kept(
    make_engine: Callable[[Script], UpstreamEngine],
) -> None:
    answer = {
        "success": True,
        "text": "hello there",
        "duration": 2.5,
        "segments": [{"text": "hello there", "start": 0.0, "end": 0.8}],
        "creditsUsed": 1,
    }
    script = Script({"POST /v1/audio/generate": [_json(200, answer)]})
    result = await make_engine(script).generate(_request(Category.AUDIO), _ignore)
    assert (result.text, result.duration) == ("hello there", 2.5)
    assert [(s.text, s.start, s.end) for s in result.segments] == [("hello there", 0.0, 0.8)]
    artifact = result.artifacts[0]
    assert artifact.extension == "json"
    assert json.loads(artifact.data)["text"] == "hello there"


@pytest.mark.parametrize(
    ("path", "content_type", "category", "expected"),
    [
        ("/files/a.jpg", "image/jpeg", Category.IMAGE, ("image/jpeg", "jpg")),
        ("/files/a", "image/webp", Category.IMAGE, ("image/webp", "webp")),
        ("/files/a.png", "application/octet-stream", Category.IMAGE, ("image/png", "png")),
        (
            "/files/a.bin",
            "application/octet-stream",
            Category.THREE_D,
            ("model/gltf-binary", "glb"),
        ),
        ("/files/a.mp3", "audio/mpeg", Category.AUDIO, ("audio/mpeg", "mp3")),
        ("/files/a.png", "video/mp4", Category.VIDEO, ("video/mp4", "mp4")),
    ],
)
async def test_output_type_and_extension(
    make_engine: Callable[[Script], UpstreamEngine],
    path: str,
    content_type: str,
    category: Category,
    expected: tuple[str, str],
) -> None:
    script = Script(
        {
            f"POST {route_for(category).path}": [_json(200, {"outputUrl": f"{BASE}{path}"})],
            f"GET {path}": [_file(b"bytes", content_type)],
        }
    )
    result = await make_engine(script).generate(_request(category), _ignore)
    artifact = result.artifacts[0]
    assert (artifact.content_type, artifact.extension) == expected
