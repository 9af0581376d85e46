"""The upstream relay and its pooled keep-alive connections. An upstream closes an idle
connection whenever its own timeout says so; a request sent on it just then gets no answer
and never reached a model. The relay sends it again on a fresh connection; the client sees
one ordinary reply. A real TCP server on loopback plays an upstream that does exactly that."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import pytest

from hyperlocal.engines.chat.base import ChatMessage, ChatRequest
from hyperlocal.engines.chat.upstream import UpstreamChatEngine
from hyperlocal.errors import GenerationError

REPLY = json.dumps(
    {
        "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
).encode()


HEAD = (
    f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(REPLY)}\r\n\r\n"
).encode()


@dataclass
class StaleUpstream:
    """Answers the first request on each connection and keeps it open; a later request on the
    same connection is read, then the connection is closed without an answer."""

    answered: int = 0
    dropped: int = 0
    connections: int = 0
    drop_fresh: bool = False  # also close fresh connections unanswered (a broken upstream)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        served = 0
        while await _read_request(reader):
            if served or self.drop_fresh:
                self.dropped += 1
                break
            served += 1
            self.answered += 1
            writer.write(HEAD + REPLY)
            await writer.drain()
        writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bool:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = 0
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return True


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[StaleUpstream, str]]:
    fake = StaleUpstream()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield fake, f"http://127.0.0.1:{port}/v1"
    finally:
        for writer in fake.writers:
            writer.close()
        server.close()
        await server.wait_closed()


def _request(base_url: str) -> ChatRequest:
    return ChatRequest(
        "relayed",
        [ChatMessage("user", "hi")],
        temperature=0.0,
        max_tokens=8,
        stream=False,
        options={"base_url": base_url, "upstream_model": "m"},
    )


async def _reply(engine: UpstreamChatEngine, base_url: str) -> str:
    deltas = [d async for d in engine.stream(_request(base_url))]
    return "".join(d.content for d in deltas)


async def test_a_request_on_a_connection_closed_under_it_is_sent_again(
    upstream: tuple[StaleUpstream, str],
) -> None:
    fake, base_url = upstream
    engine = UpstreamChatEngine()
    try:
        assert await _reply(engine, base_url) == "hello"
        assert await _reply(engine, base_url) == "hello"  # the pooled connection is dropped
    finally:
        await engine.aclose()
    assert fake.dropped == 1 and fake.answered == 2 and fake.connections == 2


async def test_an_upstream_that_never_answers_is_still_an_error(
    upstream: tuple[StaleUpstream, str],
) -> None:
    fake, base_url = upstream
    fake.drop_fresh = True
    engine = UpstreamChatEngine()
    try:
        with pytest.raises(GenerationError, match="upstream failed"):
            await _reply(engine, base_url)
    finally:
        await engine.aclose()
    # Only a pooled connection can be stale: a fresh one closed unanswered is an upstream
    # that fails, and sending again would only make it fail again.
    assert fake.answered == 0 and fake.dropped == 1


async def _labelled_upstream(label: str) -> asyncio.Server:
    """Answers every request, on any connection, with ``label`` as the reply's content."""
    body = json.dumps({"choices": [{"message": {"content": label}, "finish_reason": "stop"}]})
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _read_request(reader):
            writer.write(f"{head}\r\n\r\n{body}".encode())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_a_model_s_upstream_is_read_again_when_its_options_change() -> None:
    """The engine keeps each model's parsed upstream; a reloaded catalogue entry (new options)
    must reach the new upstream, not the one remembered."""
    first, second = await _labelled_upstream("first"), await _labelled_upstream("second")
    urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/v1" for s in (first, second)]
    engine = UpstreamChatEngine()
    options = {"base_url": urls[0], "upstream_model": "m"}
    try:
        for _ in range(2):
            request = replace(_request(urls[0]), options=options)
            assert "".join([d.content async for d in engine.stream(request)]) == "first"
        reloaded = replace(_request(urls[1]), options={"base_url": urls[1]})
        assert "".join([d.content async for d in engine.stream(reloaded)]) == "second"
    finally:
        await engine.aclose()
        for server in (first, second):
            server.close()
            await server.wait_closed()


_SSE = (
    b'data: {"choices":[{"delta":{"content":"hello"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
_SSE_HEAD = (
    f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(_SSE)}\r\n\r\n"
).encode()


@pytest.mark.parametrize("stream", [False, True])
async def test_started_is_called_once_the_upstream_has_the_request_before_its_answer(
    stream: bool,
) -> None:
    """``ChatRequest.started`` is the cue for the chat's charge to run beside the upstream's
    work: it must come once the request is sent, and not wait for the answer. This upstream
    answers only after the engine has said so; an engine that waited would never be answered."""
    received, answer = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _read_request(reader):
            received.set()
            await answer.wait()
            writer.write(_SSE_HEAD + _SSE if stream else HEAD + REPLY)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    calls: list[bool] = []
    request = replace(_request(url), stream=stream, started=lambda: calls.append(answer.is_set()))
    engine = UpstreamChatEngine()
    try:
        reply = asyncio.ensure_future(_collect(engine, request))
        async with asyncio.timeout(5):
            while not calls:
                await asyncio.sleep(0.001)
            await received.wait()
        answer.set()
        assert await asyncio.wait_for(reply, 5) == "hello"
    finally:
        await engine.aclose()
        server.close()
        await server.wait_closed()
    assert calls == [False]  # once, and before the upstream answered


async def test_started_is_not_called_when_no_request_could_be_sent() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    calls: list[None] = []
    request = replace(_request(f"http://127.0.0.1:{port}/v1"), started=lambda: calls.append(None))
    engine = UpstreamChatEngine()
    try:
        with pytest.raises(GenerationError, match="cannot connect"):
            await _collect(engine, request)
    finally:
        await engine.aclose()
    assert calls == []


class _ThreadUpstream:
    """An upstream on a thread of its own, so that it reads a request while the event loop is
    busy: it notes the moment each request has fully arrived, then answers it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.arrived: list[float] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as stream:
            while head := _read_head(stream):
                stream.read(int(head.get("content-length", "0")))
                self.arrived.append(time.perf_counter())
                conn.sendall(HEAD + REPLY)

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5)


def _read_head(stream: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not stream.readline():
        return headers
    while (line := stream.readline().decode().strip()) and line:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def test_what_started_wakes_runs_after_the_request_is_written() -> None:
    """The chat's charge waits on ``started`` and then holds the loop (SQLite, on this
    thread). On a pooled connection the request must already be on the wire by then: here the
    woken work blocks the loop for 200 ms, and the upstream, on a thread of its own, must have
    the whole request before that ends."""
    upstream = _ThreadUpstream()
    engine = UpstreamChatEngine()
    blocked: list[tuple[float, float]] = []
    try:
        request = replace(_request(upstream.url), stream=False)
        assert await _collect(engine, request) == "hello"  # the connection is now pooled
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def charge() -> None:
            await woken
            start = time.perf_counter()
            # Blocking on purpose: SQLite's work holds the loop just so.
            time.sleep(0.2)
            blocked.append((start, time.perf_counter()))

        paid = asyncio.ensure_future(charge())
        timed = replace(request, started=lambda: woken.done() or woken.set_result(None))
        assert await _collect(engine, timed) == "hello"
        await paid
    finally:
        await engine.aclose()
        upstream.close()
    assert len(upstream.arrived) == 2
    (start, end), arrived = blocked[0], upstream.arrived[1]
    assert arrived < end, "the request was written only after the woken work"
    assert arrived - start < 0.1


async def _collect(engine: UpstreamChatEngine, request: ChatRequest) -> str:
    return "".join([d.content async for d in engine.stream(request)])
