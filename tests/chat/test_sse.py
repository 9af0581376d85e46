"""The streamed wire format, read the way a browser's ``fetch`` reader reads it: raw bytes,
split into SSE events by hand, on a real server."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.chat.conftest import SMOLLM2, LiveServer, bearer, gguf, sse_events

ASK = [{"role": "user", "content": "Say hello."}]


async def _stream(
    live: LiveServer, path: str, body: dict[str, Any]
) -> tuple[httpx.Headers, list[str]]:
    key = await live.key()
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=60) as client,
        client.stream("POST", path, json=body, headers=bearer(key)) as response,
    ):
        assert response.status_code == 200
        events = [data async for data in sse_events(response)]
    return response.headers, events


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


async def test_legacy_chat_streams_by_default(live: LiveServer) -> None:
    gguf()
    body = {"messages": ASK, "max_tokens": 16, "temperature": 0}
    headers, events = await _stream(live, "/v1/chat", body)
    assert headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 2
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith(
        "chatcmpl-"
    )
    assert {c["model"] for c in chunks} == {SMOLLM2}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert _text(chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    assert final["creditsUsed"] == 2
    usage = final["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_include_usage_adds_a_last_chunk_without_choices(live: LiveServer) -> None:
    body = {"model": "test-echo", "messages": ASK, "stream": True}
    body["stream_options"] = {"include_usage": True}
    _, events = await _stream(live, "/v1/chat/completions", body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    *content, finish, last = chunks
    assert all(c["usage"] is None for c in [*content, finish])
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    assert _text(content) == "one two three four five"


async def test_without_include_usage_no_chunk_has_usage(live: LiveServer) -> None:
    body = {"model": "test-echo", "messages": ASK, "stream": True}
    _, events = await _stream(live, "/v1/chat/completions", body)
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["creditsUsed"] == 2


async def test_rate_limit_headers_arrive_before_the_first_event(live: LiveServer) -> None:
    key = await live.key(rate_limit=50)
    body = {"model": "test-endless", "messages": ASK, "stream": True}
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as r,
    ):
        # Headers are in; not one byte of the (never-ending) body has been read.
        assert r.headers["x-ratelimit-limit"] == "50"
        assert r.headers["x-ratelimit-remaining"] == "49"
        assert int(r.headers["x-ratelimit-reset"]) > 0
        assert r.num_bytes_downloaded == 0


async def test_legacy_chat_without_streaming(live: LiveServer) -> None:
    key = await live.key()
    body = {"model": "test-echo", "messages": ASK, "stream": False}
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        response = await client.post("/v1/chat", json=body, headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "999"
    reply = response.json()
    assert reply["id"].startswith("chatcmpl-") and reply["creditsUsed"] == 2
    assert reply["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "one two three four five"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
