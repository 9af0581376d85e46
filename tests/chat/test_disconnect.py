"""A client that goes away mid-stream: the backend's generation is cancelled, and the job row
records the usage actually streamed, with finish reason ``disconnect``. Real uvicorn, real
sockets: the client reads a few chunks and closes its connection."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable

import httpx
import pytest

from tests.chat.conftest import SMOLLM2, LiveServer, bearer, gguf, sse_events
from tests.chat.fake_upstream import FakeUpstream


async def _read_then_leave(live: LiveServer, body: dict[str, object], chunks: int) -> str:
    """Read ``chunks`` events, then close the connection; return the chat id."""
    key = await live.key()
    seen = []
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=60) as client,
        client.stream("POST", "/v1/chat", json=body, headers=bearer(key)) as response,
    ):
        async for data in sse_events(response):
            seen.append(json.loads(data))
            if len(seen) == chunks:
                break
    assert all(c["choices"][0]["finish_reason"] is None for c in seen)
    return str(seen[0]["id"])


async def test_disconnect_cancels_the_upstream_and_records_usage(
    live: LiveServer, fake_upstream: FakeUpstream
) -> None:
    body = {"model": "test-endless", "messages": [{"role": "user", "content": "go"}]}
    chat_id = await _read_then_leave(live, body, chunks=3)
    job = await live.finished_job(chat_id)
    assert job.status == "completed"
    assert job.result is not None
    assert job.result["finish_reason"] == "disconnect"
    streamed = job.result["streamed_chunks"]
    assert 3 <= streamed < 50  # what reached the socket before the close was noticed
    assert job.result["usage"]["completion_tokens"] == streamed
    assert job.result["streamed_chars"] == len(" tick") * streamed
    assert fake_upstream.abandoned.wait(5), "the upstream stream was not closed"
    assert job.credits == 2 and job.error is None


LONG_STORY = {
    "model": SMOLLM2,
    "messages": [
        {"role": "user", "content": "Write a very long story about a dragon, 3000 words."}
    ],
    "max_tokens": 3000,
    "temperature": 0,
}


@pytest.mark.parametrize("stream", [True, False])
async def test_disconnect_stops_the_local_model(live: LiveServer, stream: bool) -> None:
    """Streamed, the client leaves after three chunks; not streamed, a second after the model
    began generating the whole reply. Either way the model stops, and its tokens are recorded."""
    gguf()
    if stream:
        chat_id = await _read_then_leave(live, LONG_STORY, chunks=3)
    else:
        chat_id = await _ask_then_leave(live, LONG_STORY, _a_second_into_generation())
    job = await live.finished_job(chat_id)
    assert job.result is not None and job.result["finish_reason"] == "disconnect"
    usage = job.result["usage"]
    assert usage["prompt_tokens"] > 10  # counted by the engine, not guessed
    # Streamed: what reached the socket before the close was noticed. Not: what 1 s made.
    assert (3 if stream else 1) <= usage["completion_tokens"] < (300 if stream else 1000)
    # The server runs in this process: its generation thread must end within a token or two,
    # not after the 3000 tokens it was asked for.
    deadline = time.monotonic() + 5
    while _generating() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _generating()


def _generating() -> bool:
    return any(t.name == "llama.cpp" for t in threading.enumerate())


async def _ask_then_leave(live: LiveServer, body: dict[str, object], leave: Awaitable[None]) -> str:
    """Send the chat, and close the connection once ``leave`` is done, before any of the
    answer came; return the chat's id, found in the key's jobs."""
    key = await live.key()
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        asking = asyncio.ensure_future(
            client.post("/v1/chat/completions", json=body, headers=bearer(key))
        )
        await leave
        assert not asking.done(), "the answer came before the client left"
        asking.cancel()  # httpx closes the connection of a request cancelled mid-way
        with pytest.raises(asyncio.CancelledError):
            await asking
    (chat_id,) = await live.chat_job_ids(key.info.id)
    return chat_id


async def _a_second_into_generation() -> None:
    deadline = time.monotonic() + 30
    while not _generating() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1)


@pytest.mark.parametrize("stream", [False, True])
async def test_leaving_before_the_answer_begins_stops_the_upstream(
    live: LiveServer, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """A whole reply, or a first token, that takes long: the client gives up waiting, and the
    upstream's connection is closed then, not when the upstream answers (30 s later)."""
    body = {"model": "test-hang", "messages": [{"role": "user", "content": "go"}], "stream": stream}
    left = time.monotonic()
    chat_id = await _ask_then_leave(live, body, asyncio.sleep(0.5))
    assert fake_upstream.abandoned.wait(5), "the upstream request was not closed"
    assert time.monotonic() - left < 5
    job = await live.finished_job(chat_id)
    assert job.status == "completed" and job.error is None
    assert job.result is not None and job.result["finish_reason"] == "disconnect"
    assert job.result["streamed_chunks"] == 0
    assert job.result["usage"]["completion_tokens"] == 0
    assert job.credits == 2  # the upstream was asked: a disconnect is charged, as mid-stream
