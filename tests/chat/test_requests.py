"""Request handling through the real app: models, fields, content parts, where a chat shows up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.chat.conftest import SMOLLM2, gguf
from tests.chat.fake_upstream import FakeUpstream
from tests.conftest import KeyFactory, auth, services_of

ASK = [{"role": "user", "content": "Say hello."}]
COMPLETIONS = "/v1/chat/completions"


async def _post(
    client: httpx.AsyncClient, key: Any, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(path, json=body, headers=auth(key))


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope", "messages": ASK}, 400, "Unsupported model: nope"),
        (
            {"model": "gemini-3-1-flash-t2i", "messages": ASK},
            400,
            "Unsupported model: gemini-3-1-flash-t2i",
        ),
        ({"messages": ASK}, 400, "Model is required"),
        ({"model": SMOLLM2}, 400, "messages: Field required"),
        ({"model": SMOLLM2, "messages": []}, 400, "messages: at least one message is required"),
        ({"model": SMOLLM2, "messages": "hi"}, 400, "messages: Input should be a valid list"),
        (
            {"model": SMOLLM2, "messages": ASK, "temperature": 2.5},
            400,
            "temperature: must be between 0 and 2",
        ),
        ({"model": SMOLLM2, "messages": ASK, "temperature": "hot"}, 400, None),
        (
            {"model": SMOLLM2, "messages": ASK, "max_tokens": 0},
            400,
            "max_tokens: must be at least 1",
        ),
        ({"model": SMOLLM2, "messages": ASK, "n": 2}, 400, "n: only 1 choice is supported"),
        (
            {"model": SMOLLM2, "messages": ASK, "stop": list("abcde")},
            400,
            "stop: at most 4 sequences",
        ),
        (
            {"model": SMOLLM2, "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role: must be one of system, developer, user, assistant, tool",
        ),
        (
            {
                "model": SMOLLM2,
                "messages": [{"role": "user", "content": [{"type": "input_audio"}]}],
            },
            400,
            "messages[0].content[0].type: 'input_audio' is not supported (text and image_url are)",
        ),
        (
            {"model": SMOLLM2, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            400,
            "messages[0].content[0]: a text part needs its 'text' field",
        ),
    ],
)
async def test_refused_requests_cost_nothing(
    client: httpx.AsyncClient,
    issue_key: KeyFactory,
    body: dict[str, Any],
    status: int,
    error: str | None,
) -> None:
    key = await issue_key(credits=10)
    response = await _post(client, key, COMPLETIONS, body)
    assert response.status_code == status, response.text
    if error:
        assert response.json()["error"] == error
    if "Unsupported" not in (error or "") and error != "Model is required":
        assert response.json()["code"] == "E1004"
    account = await client.get("/v1/account", headers=auth(key))
    assert account.json()["credits"] == 10


async def test_legacy_chat_defaults_to_the_local_model_on_both_prefixes(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    gguf()
    key = await issue_key()
    for prefix in ("/v1", "/api/v1"):
        body = {"messages": ASK, "stream": False, "max_tokens": 4}
        response = await _post(client, key, f"{prefix}/chat", body)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == SMOLLM2
        assert response.json()["choices"][0]["message"]["content"]


async def test_content_parts_reach_an_upstream_unchanged(
    client: httpx.AsyncClient, issue_key: KeyFactory, fake_upstream: FakeUpstream
) -> None:
    key = await issue_key()
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    ]
    body = {"model": "test-echo", "messages": [{"role": "user", "content": parts}], "stop": "END"}
    response = await _post(client, key, COMPLETIONS, body)
    assert response.status_code == 200, response.text
    sent = fake_upstream.bodies[-1]
    assert sent["messages"] == [{"role": "user", "content": parts}]
    assert sent["model"] == "echo" and sent["stop"] == ["END"] and sent["stream"] is False
    assert sent["temperature"] == 1.0 and sent["max_tokens"] == 4096  # OpenAI's defaults


async def test_local_model_reads_the_text_parts_and_prices_only_them(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    gguf()
    key = await issue_key()
    parts = [
        {"type": "text", "text": "Describe the picture."},
        {"type": "image_url", "image_url": "data:image/png;base64," + "A" * 5000},
    ]
    body = {"model": SMOLLM2, "messages": [{"role": "user", "content": parts}], "max_tokens": 8}
    response = await _post(client, key, COMPLETIONS, body)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["creditsUsed"] == 2  # the 5000-character image URI is not conversation text
    job = await client.get(f"/v1/jobs/{reply['id']}", headers=auth(key))
    assert job.status_code == 200
    assert job.json()["status"] == "completed" and job.json()["type"] == "chat"


async def test_the_upstream_key_comes_from_the_named_variable(
    client: httpx.AsyncClient,
    issue_key: KeyFactory,
    fake_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream-secret")
    key = await issue_key()
    response = await _post(client, key, COMPLETIONS, {"model": "test-keyed", "messages": ASK})
    assert response.status_code == 200
    assert fake_upstream.headers[-1]["authorization"] == "Bearer sk-upstream-secret"
    await _post(client, key, COMPLETIONS, {"model": "test-echo", "messages": ASK})
    assert "authorization" not in fake_upstream.headers[-1]  # our client's key never leaks


async def test_a_gguf_under_the_models_dir(
    client: httpx.AsyncClient,
    issue_key: KeyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "smol.gguf").symlink_to(gguf())
    monkeypatch.setenv("HYPERLOCAL_MODELS_DIR", str(models))
    key = await issue_key()
    body = {"model": "test-models-dir", "messages": ASK, "max_tokens": 4}
    response = await _post(client, key, COMPLETIONS, body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] > 0


async def test_the_preview_engine_says_it_is_no_model(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {"model": "test-preview", "messages": [{"role": "user", "content": "Hi there"}]}
    response = await _post(client, key, COMPLETIONS, body)
    text = response.json()["choices"][0]["message"]["content"]
    assert text.startswith("[preview] This is not a model's answer")
    assert 'Your last message was: "Hi there"' in text


@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_s_job_shows_how_it_ended_as_soon_as_the_reply_is_read(
    app: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory, stream: bool
) -> None:
    """The end of a chat is written behind the reply, gathered with others (``ChatRecorder``);
    reading the job must not show it still running, however long the recorder would wait."""
    services_of(app).chat_recorder.delay = 60.0
    key = await issue_key()
    body = {"model": "test-echo", "messages": ASK, "stream": stream}
    response = await _post(client, key, COMPLETIONS, body)
    assert response.status_code == 200, response.text
    chat_id = response.json()["id"] if not stream else _first_id(response.text)
    job = await client.get(f"/v1/jobs/{chat_id}", headers=auth(key))
    assert job.status_code == 200
    assert job.json()["status"] == "completed"
    listed = await client.get("/v1/jobs", headers=auth(key))
    assert [j["status"] for j in listed.json()["data"]] == ["completed"]


def _first_id(sse: str) -> str:
    first = next(line for line in sse.splitlines() if line.startswith("data: {"))
    return str(json.loads(first[6:])["id"])
