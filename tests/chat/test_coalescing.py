"""Deltas that arrive together leave together: the upstream engine marks each delta whose
successor came in the same read (``more``), and the SSE writer sends such a run in one write.
The events on the wire stay one per token; nothing is held while the upstream is waited for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message, Scope

from hyperlocal.api.chat_schemas import ChunkWriter
from hyperlocal.api.routes.chat import _events
from hyperlocal.engines.chat import upstream as upstream_module
from hyperlocal.engines.chat.base import ChatDelta, ChatMessage, ChatRequest, ChatUsage
from hyperlocal.engines.chat.upstream import UpstreamChatEngine
from hyperlocal.errors import GenerationError
from tests.chat.test_upstream_connections import _read_request
from tests.conftest import KeyFactory

ASK = [{"role": "user", "content": "Say hello to the lighthouse keeper."}]


def _event(payload: object) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _word(word: str) -> bytes:
    return _event({"choices": [{"index": 0, "delta": {"content": word}}]})


STOP = _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
DONE = b"data: [DONE]\n\n"


async def _upstream(writes: Sequence[bytes], handlers: list[asyncio.Task[None]]) -> asyncio.Server:
    """Answers one streamed request with ``writes``, each its own write, 50 ms apart (so
    each arrives in its own read), then closes. Its handlers' tasks go to ``handlers``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
            writer.write(b"connection: close\r\n\r\n")
            for data in writes:
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass  # the client stopped reading (after an error event)
        finally:
            writer.close()
            await writer.wait_closed()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await answer(reader, writer)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _deltas(writes: Sequence[bytes]) -> tuple[list[ChatDelta], Exception | None]:
    handlers: list[asyncio.Task[None]] = []
    server = await _upstream(writes, handlers)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    request = ChatRequest(
        "relayed",
        (ChatMessage("user", "hi"),),
        temperature=0.0,
        max_tokens=8,
        stream=True,
        options={"base_url": base},
    )
    engine = UpstreamChatEngine()
    got: list[ChatDelta] = []
    try:
        async for delta in engine.stream(request):
            got.append(delta)
    except GenerationError as exc:
        return got, exc
    finally:
        await engine.aclose()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()
        await server.wait_closed()
    return got, None


async def test_deltas_of_one_read_say_more_except_the_last() -> None:
    writes = [_word("a") + _word("b") + _word("c"), _word("d"), _word("e") + STOP + DONE]
    got, error = await _deltas(writes)
    assert error is None
    assert [(d.content, d.more) for d in got[:-1]] == [
        ("a", True),
        ("b", True),
        ("c", False),
        ("d", False),
        ("e", False),  # the stop and [DONE] that follow carry no content: nothing to wait on
    ]
    assert got[-1].finish_reason == "stop" and not got[-1].more


async def test_an_error_event_comes_after_the_tokens_of_its_read() -> None:
    error_event = _event({"error": {"message": "model crashed"}})
    got, error = await _deltas([_word("a") + _word("b") + error_event])
    assert [d.content for d in got] == ["a", "b"] and not got[-1].more
    assert isinstance(error, GenerationError) and "model crashed" in error.message


def test_a_read_s_first_delta_leaves_before_the_rest_of_the_read_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One delta of look-ahead: a read of 200 tokens (an upstream that answers at once) must
    not be parsed whole before its first token leaves."""
    parsed: list[str] = []
    real = json.loads

    def loads(payload: str) -> Any:
        parsed.append(payload)
        return real(payload)

    monkeypatch.setattr(upstream_module.json, "loads", loads)
    lines = b"".join([_word(f"w{i}") for i in range(200)]).split(b"\n")
    deltas = upstream_module._Tally().deltas(upstream_module._Read(lines))
    first = next(deltas)
    assert (first.content, first.more) == ("w0", True)
    assert len(parsed) == 2  # the first token and the one that says "more"
    assert [d.content for d in deltas][-1] == "w199" and len(parsed) == 200


class _Stream:
    """What ``_events`` reads of a ``ChatStream``: its deltas and its usage."""

    def __init__(self, deltas: Sequence[ChatDelta], error: Exception | None = None) -> None:
        self._deltas, self._error = deltas, error
        self.usage = ChatUsage(3, len(deltas))

    async def __aiter__(self) -> AsyncIterator[ChatDelta]:
        for delta in self._deltas:
            yield delta
        if self._error is not None:
            raise self._error


def _writer() -> ChunkWriter:
    return ChunkWriter("chatcmpl-x", "m", 0, 2, legacy=False, usage=False)


async def _writes(stream: _Stream) -> list[bytes]:
    return [chunk async for chunk in _events(stream, _writer())]  # type: ignore[arg-type]


def _payloads(chunk: bytes) -> list[dict[str, Any]]:
    events = [e for e in chunk.decode().split("\n\n") if e.startswith("data: {")]
    return [json.loads(e[6:]) for e in events]


def _tokens(chunk: bytes) -> list[str]:
    chunks = [p for p in _payloads(chunk) if "choices" in p]
    return [p["choices"][0]["delta"].get("content", "") for p in chunks]


async def test_a_run_of_deltas_marked_more_leaves_in_one_write_event_by_event() -> None:
    deltas = [
        ChatDelta("a", more=True),  # the first token: never held
        ChatDelta("b", more=True),
        ChatDelta("c", more=True),
        ChatDelta("d"),
        ChatDelta("e"),
        ChatDelta(finish_reason="stop"),
    ]
    writes = await _writes(_Stream(deltas))
    assert [_tokens(w) for w in writes] == [["a"], ["b", "c", "d"], ["e"], [""]]
    assert writes[-1].endswith(ChunkWriter.DONE)  # the last chunk and [DONE]: one write


async def test_the_first_token_leaves_alone_even_when_more_are_here() -> None:
    writes = await _writes(_Stream([ChatDelta("a", more=True), ChatDelta("b")]))
    assert [_tokens(w) for w in writes[:2]] == [["a"], ["b"]]
    assert _payloads(writes[0])[0]["choices"][0]["delta"]["role"] == "assistant"


async def test_an_error_is_sent_after_the_tokens_held_with_it() -> None:
    failed = GenerationError("gone")
    held = [ChatDelta("a"), ChatDelta("b", more=True), ChatDelta("c", more=True)]
    writes = await _writes(_Stream(held, failed))
    assert [_tokens(w) for w in writes] == [["a"], ["b", "c"]]
    assert _payloads(writes[1])[-1]["error"] == "gone"


@pytest.mark.parametrize("more", [True, False])
async def test_nothing_is_lost_when_an_engine_ends_after_saying_more(more: bool) -> None:
    writes = await _writes(_Stream([ChatDelta("a"), ChatDelta("b", more=more)]))
    assert [t for w in writes for t in _tokens(w)] == ["a", "b"]


async def test_the_stream_ends_in_the_write_that_carries_done(
    app: FastAPI, issue_key: KeyFactory
) -> None:
    """The ASGI messages of a streamed chat, through the real app: ``[DONE]`` is sent in the
    message that ends the body (no empty message after it), and the first token alone."""
    key = await issue_key()
    body = json.dumps({"model": "test-echo", "messages": ASK, "stream": True}).encode()
    sent: list[Message] = []
    requests: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays: no disconnect
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(key.key, len(body)), receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = sent[1:]
    assert all(m["more_body"] for m in bodies[:-1])
    assert not bodies[-1]["more_body"] and bodies[-1]["body"].endswith(ChunkWriter.DONE)
    assert len(_tokens(bodies[0]["body"])) == 1  # the first token, alone


def _scope(key: str, length: int) -> Scope:
    headers = [
        (b"host", b"testserver"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
