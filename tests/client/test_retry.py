"""Retries, and what the hosted API does that hyperlocal does not, against a small real
server on loopback that answers as scripted.

What is resent: 429 always (refused before any work); other 5xx and lost connections only
for idempotent calls, which submits are made by one ``Idempotency-Key`` per call; never a
generation failure, and never a chat completion once the server may have run it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hyperlocal.client import (
    Client,
    GenerationFailed,
    InvalidRequest,
    RateLimited,
    ServerError,
)
from tests.support import free_port, serve_in_thread

IMAGE = {
    "created": 1,
    "data": [{"url": "http://x/files/images/res_1.png", "model": "m"}],
    "resultId": "res_1",
    "creditsUsed": 4,
}
ACCOUNT = {"keyId": "key_1", "keyName": "k", "credits": 5, "rateLimit": 9, "maxRunningJobs": 1}
Answer = tuple[int, dict[str, Any] | str, dict[str, str]]


def unavailable(retry_after: str = "0") -> Answer:
    return 503, {"error": "Service unavailable"}, {"Retry-After": retry_after}


@dataclass
class Script:
    """``answers[path]`` is answered in turn; the last one repeats."""

    answers: dict[str, list[Answer]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.seen if p == path]

    async def handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        with self._lock:
            self.seen.append((path, dict(request.headers)))
            queue = self.answers[path]
            status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(body, str):
            return Response(body, status, headers, media_type="text/html")
        return Response(json.dumps(body), status, headers, media_type="application/json")


@pytest.fixture
def script() -> Iterator[Script]:
    scripted = Script()
    app = Starlette(routes=[Route("/{path:path}", scripted.handle, methods=["GET", "POST"])])
    with serve_in_thread(app) as base:  # type: ignore[arg-type]
        scripted.base = base
        yield scripted


def test_submit_retried_with_one_idempotency_key(script: Script) -> None:
    script.answers["/v1/images/generate"] = [unavailable(), unavailable(), (200, IMAGE, {})]
    with Client(script.base, "ck_test") as client:
        result = client.images.generate("x")
        assert result.result_id == "res_1"
        keys = [h["idempotency-key"] for h in script.hits("/v1/images/generate")]
        assert len(keys) == 3 and len(set(keys)) == 1
        assert uuid.UUID(keys[0]).version == 4
        client.images.generate("x")  # a new call is a new request: a new key
        later = script.hits("/v1/images/generate")[3]["idempotency-key"]
        assert later != keys[0]


def test_retries_stop_at_max_retries(script: Script) -> None:
    script.answers["/v1/account"] = [unavailable()]
    with Client(script.base, "ck_test", max_retries=1) as client, pytest.raises(ServerError):
        client.account.get()
    assert len(script.hits("/v1/account")) == 2


def test_get_retried_on_500_without_a_generation_code(script: Script) -> None:
    script.answers["/v1/account"] = [(500, {"error": "db hiccup"}, {}), (200, ACCOUNT, {})]
    with Client(script.base, "ck_test") as client:
        assert client.account.get().credits == 5
    assert "idempotency-key" not in script.hits("/v1/account")[0]


def test_generation_failure_is_never_retried(script: Script) -> None:
    failed: Answer = (500, {"error": "model crashed", "code": "E1001"}, {})
    script.answers["/v1/images/generate"] = [failed, (200, IMAGE, {})]
    with Client(script.base, "ck_test") as client, pytest.raises(GenerationFailed) as err:
        client.images.generate("x")
    assert err.value.code == "E1001"
    assert len(script.hits("/v1/images/generate")) == 1


def test_chat_is_not_resent_after_a_5xx_but_is_after_a_429(script: Script) -> None:
    reply = {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "creditsUsed": 2,
    }
    limited = (429, {"error": "Rate limit exceeded", "limit": 5}, {"Retry-After": "0"})
    script.answers["/v1/chat/completions"] = [unavailable(), limited, (200, reply, {})]
    with Client(script.base, "ck_test") as client:
        with pytest.raises(ServerError):
            client.chat.create("hello", model="m")
        assert len(script.hits("/v1/chat/completions")) == 1
        assert client.chat.create("hello", model="m").content == "hi"
    assert len(script.hits("/v1/chat/completions")) == 3
    assert all("idempotency-key" not in h for h in script.hits("/v1/chat/completions"))


def test_a_long_retry_after_is_not_waited_for(script: Script) -> None:
    limited = (429, {"error": "Rate limit exceeded", "limit": 5}, {"Retry-After": "3000"})
    script.answers["/v1/account"] = [limited]
    with Client(script.base, "ck_test") as client, pytest.raises(RateLimited) as err:
        client.account.get()
    assert err.value.retry_after == 3000 and err.value.limit == 5
    assert len(script.hits("/v1/account")) == 1


def test_a_proxy_error_page_is_a_server_error(script: Script) -> None:
    script.answers["/v1/account"] = [(502, "<html>Bad Gateway</html>", {"Retry-After": "0"})]
    with Client(script.base, "ck_test") as client, pytest.raises(ServerError) as err:
        client.account.get()
    assert err.value.status == 502 and "Bad Gateway" in err.value.message
    assert len(script.hits("/v1/account")) == 3


def test_the_hosted_500_e1004_is_an_invalid_request(script: Script) -> None:
    script.answers["/v1/videos/generate"] = [(500, {"error": "duration: bad", "code": "E1004"}, {})]
    with Client(script.base, "ck_test") as client, pytest.raises(InvalidRequest) as err:
        client.videos.generate("m", prompt="x")
    assert err.value.status == 500 and err.value.code == "E1004"
    assert len(script.hits("/v1/videos/generate")) == 1


def test_base_url_may_carry_the_version(script: Script) -> None:
    script.answers["/api/v1/account"] = [(200, ACCOUNT, {})]
    with Client(f"{script.base}/api/v1/", "ck_test") as client:
        assert client.account.get().key_id == "key_1"
    assert script.hits("/api/v1/account")[0]["authorization"] == "Bearer ck_test"


def test_download_sends_the_key_only_to_its_own_server(script: Script, tmp_path: Path) -> None:
    script.answers["/files/a.png"] = [(200, {"not": "an image, but bytes all the same"}, {})]
    url = f"{script.base}/files/a.png"
    with Client(f"http://127.0.0.1:{free_port()}", "ck_test") as elsewhere:
        elsewhere.download(url, tmp_path / "a.json")
    with Client(script.base, "ck_test") as same:
        same.download("/files/a.png", tmp_path / "b.json")
    foreign, own = script.hits("/files/a.png")
    assert "authorization" not in foreign
    assert own["authorization"] == "Bearer ck_test"
    assert json.loads((tmp_path / "a.json").read_text())["not"].startswith("an image")


def test_a_202_is_waited_for_by_polling_where_there_is_no_events_stream(script: Script) -> None:
    accepted = {"jobId": "job_1", "status": "processing", "creditsUsed": 5, "pollUrl": "x"}
    running = {"jobId": "job_1", "status": "processing", "model": "audio-tts", "creditsUsed": 5}
    done = running | {"status": "completed", "outputUrl": "http://x/a.mp3", "duration": 1.5}
    script.answers["/v1/audio/generate"] = [(202, accepted, {})]
    script.answers["/v1/jobs/job_1/events"] = [(404, {"error": "Not Found"}, {})]
    script.answers["/v1/jobs/job_1"] = [(200, running, {}), (200, done, {})]
    with Client(script.base, "ck_test") as client:
        speech = client.audio.tts("hello")
    assert (speech.output_url, speech.duration, speech.credits_used) == ("http://x/a.mp3", 1.5, 5)
    assert len(script.hits("/v1/jobs/job_1")) == 2
