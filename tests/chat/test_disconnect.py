"""A client that goes away mid-stream: the backend's generation is cancelled, and the job row
records the usage actually streamed, with finish reason ``disconnect``. Real uvicorn, real
sockets: the client reads a few chunks and closes its connection.

Every wait is on an event (chunks read, a job row written, tokens produced, a thread ended),
never on a sleep: a loaded machine only makes them slower. ``PATIENCE`` bounds each wait
only so that a failure ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.chat.conftest import SMOLLM2, LiveServer, bearer, gguf, sse_events
from tests.chat.fake_upstream import FakeUpstream
from tests.support import eventually

PATIENCE = 120.0  # seconds: SmolLM2's first token alone took 20 s on a loaded 2-core machine


async def _read_then_leave(live: LiveServer, body: dict[str, object], chunks: int) -> str:
    """Read ``chunks`` events, then close the connection; return the chat id."""
    key = await live.key()
    seen = []
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=PATIENCE) as client,
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
    job = await live.finished_job(chat_id, timeout=PATIENCE)
    assert job.status == "completed"
    assert job.result is not None
    assert job.result["finish_reason"] == "disconnect"
    streamed = job.result["streamed_chunks"]
    assert 3 <= streamed < 50  # what reached the socket before the close was noticed
    assert job.result["usage"]["completion_tokens"] == streamed
    assert job.result["streamed_chars"] == len(" tick") * streamed
    assert await _set(fake_upstream.abandoned), "the upstream stream was not closed"
    assert job.credits == 2 and job.error is None


LONG_STORY = {
    "model": SMOLLM2,
    "messages": [
        {"role": "user", "content": "Write a very long story about a dragon, 3000 words."}
    ],
    "max_tokens": 3000,
    "temperature": 0,
}


class TokenProbe:
    """Counts the chunks that llama.cpp's streamed completions yield, on whichever thread
    runs them: the test's view of how far a generation got. It wraps llama-cpp-python's public
    ``Llama.create_completion`` (a library outside us) and changes nothing it returns."""

    def __init__(self) -> None:
        self.produced = 0

    def count(self, chunks: Iterator[Any]) -> Iterator[Any]:
        with contextlib.closing(chunks):  # type: ignore[type-var]
            for chunk in chunks:
                self.produced += 1
                yield chunk


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> TokenProbe:
    from llama_cpp import Llama

    probe, original = TokenProbe(), Llama.create_completion

    def create_completion(llm: Llama, *args: Any, **kwargs: Any) -> Any:
        chunks = original(llm, *args, **kwargs)
        return probe.count(chunks) if kwargs.get("stream") else chunks

    monkeypatch.setattr(Llama, "create_completion", create_completion)
    return probe


@pytest.mark.parametrize("stream", [True, False])
async def test_disconnect_stops_the_local_model(
    live: LiveServer, tokens: TokenProbe, stream: bool
) -> None:
    """Streamed, the client leaves after three chunks; not streamed, once the model has made a
    few tokens of the whole reply. Either way the model stops, and its tokens are recorded."""
    gguf()
    if stream:
        chat_id = await _read_then_leave(live, LONG_STORY, chunks=3)
    else:
        # The fifth token is asked for only once the fourth was handed to the server.
        chat_id = await _ask_then_leave(live, LONG_STORY, lambda: tokens.produced >= 5)
    job = await live.finished_job(chat_id, timeout=PATIENCE)
    assert job.result is not None and job.result["finish_reason"] == "disconnect"
    usage = job.result["usage"]
    assert usage["prompt_tokens"] > 10  # counted by the engine, not guessed
    # What the server had when it noticed the client leave: streamed, at least the 3 chunks
    # the client read; not streamed, at least one of the tokens made before it left.
    assert (3 if stream else 1) <= usage["completion_tokens"] < (300 if stream else 1000)
    # The server runs in this process: its generation thread ends, and by then it has made
    # a token or two more, not the 3000 it was asked for.
    await eventually(_stopped, PATIENCE, "the llama.cpp thread to end")
    assert 3 <= tokens.produced < (300 if stream else 1000)


def _generating() -> bool:
    return any(t.name == "llama.cpp" for t in threading.enumerate())


async def _stopped() -> bool:
    return not _generating()


async def _set(event: threading.Event) -> bool:
    """``event`` set, waited for on a thread: the server being waited on runs in this process."""
    return await asyncio.to_thread(event.wait, PATIENCE)


async def _ask_then_leave(
    live: LiveServer, body: dict[str, object], under_way: Callable[[], bool]
) -> str:
    """Send the chat; once it is charged (its job row exists) and ``under_way()``, close the
    connection, before any of the answer came. Return the chat's id."""
    key = await live.key()
    chat_ids: list[str] = []

    async with httpx.AsyncClient(base_url=live.url, timeout=PATIENCE) as client:
        asking = asyncio.ensure_future(
            client.post("/v1/chat/completions", json=body, headers=bearer(key))
        )

        async def ready() -> bool:
            chat_ids[:] = await live.chat_job_ids(key.info.id)
            return asking.done() or (bool(chat_ids) and under_way())

        await eventually(ready, PATIENCE, "the chat to be charged and under way")
        assert not asking.done(), "the answer came before the client left"
        asking.cancel()  # httpx closes the connection of a request cancelled mid-way
        with pytest.raises(asyncio.CancelledError):
            await asking
    (chat_id,) = chat_ids
    return chat_id


@pytest.mark.parametrize("stream", [False, True])
async def test_leaving_before_the_answer_begins_stops_the_upstream(
    live: LiveServer, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """A whole reply, or a first token, that takes long: the client gives up waiting, and the
    upstream's connection is closed then, not when the upstream answers (30 s later): the
    fake records the close only while it still hangs."""
    body = {"model": "test-hang", "messages": [{"role": "user", "content": "go"}], "stream": stream}
    chat_id = await _ask_then_leave(live, body, lambda: bool(fake_upstream.bodies))
    assert await _set(fake_upstream.abandoned), "the upstream request was not closed"
    job = await live.finished_job(chat_id, timeout=PATIENCE)
    assert job.status == "completed" and job.error is None
    assert job.result is not None and job.result["finish_reason"] == "disconnect"
    assert job.result["streamed_chunks"] == 0
    assert job.result["usage"]["completion_tokens"] == 0
    assert job.credits == 2  # the upstream was asked: a disconnect is charged, as mid-stream
