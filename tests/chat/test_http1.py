"""The chat relay's HTTP/1.1 client (``engines/chat/http1.py``), against real servers on
loopback that answer byte for byte as scripted: every framing an upstream may use, TLS,
keep-alive and its limits, slow readers, timeouts and broken answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trustme
from yarl import URL

from hyperlocal.engines.chat import http1
from hyperlocal.engines.chat.http1 import Client, HTTPClientError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's body, or None once the client has closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def _answer(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def _server(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[URL, list[int]]]:
    """A server on 127.0.0.1; yields its URL and the number of connections it accepted."""
    accepted: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield URL(f"{scheme}://127.0.0.1:{port}/v1/chat/completions"), accepted
    finally:
        server.close()
        await server.wait_closed()


def _answers(raw: bytes, *, hold: bool = False) -> Handler:
    """Reads one request and writes ``raw``; then closes, or with ``hold`` waits for the
    client to close."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(raw)
        await writer.drain()
        if hold:
            await reader.read()

    return handle


def _echo(*extra: str) -> Handler:
    """Answers each request on the connection with its own body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (body := await _read_request(reader)) is not None:
            writer.write(_answer(body, *extra))
            await writer.drain()

    return handle


async def _post(client: Client, url: URL, body: bytes = b"{}", timeout: float = 5) -> bytes:
    async with await client.post(url, body, {}, timeout=timeout) as response:
        assert response.status == 200
        return await response.read()


async def test_keep_alive_reuses_one_connection_and_sends_the_headers_given() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            seen.append(head)
            writer.write(_answer(await reader.readexactly(2)))

    client = Client()
    async with _server(handle) as (url, accepted):
        for _ in range(3):
            async with await client.post(url, b"{}", {"Authorization": "Bearer k"}, timeout=5):
                pass
        await client.aclose()
    assert len(accepted) == 1 and len(seen) == 3
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{url.port}" in lines and "Authorization: Bearer k" in lines
    assert "Content-Length: 2" in lines


async def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection may have been dropped on the way without a word: past ``IDLE_S`` it is
    closed instead of being trusted with a request."""
    monkeypatch.setattr(http1, "IDLE_S", 0.1)
    client = Client()
    async with _server(_echo()) as (url, accepted):
        await _post(client, url)
        await _post(client, url)  # at once: reused
        await asyncio.sleep(0.2)
        await _post(client, url)
        await client.aclose()
    assert len(accepted) == 2


async def test_connection_close_is_honoured() -> None:
    client = Client()
    async with _server(_echo("Connection: close")) as (url, accepted):
        assert [await _post(client, url, b"a"), await _post(client, url, b"b")] == [b"a", b"b"]
        await client.aclose()
    assert len(accepted) == 2


async def test_chunked_bodies_arrive_piece_by_piece_as_they_are_sent() -> None:
    go = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await go.wait()  # the first piece must reach the reader before the rest exists
        writer.write(b"6\r\n world\r\n0\r\n\r\n")

    client = Client()
    async with _server(handle) as (url, _):
        async with await client.post(url, b"{}", {}, timeout=5) as response:
            pieces = []
            async for chunk in response.chunks():
                pieces.append(chunk)
                go.set()
        await client.aclose()
    assert pieces == [b"hello", b" world"]


async def test_a_body_ended_by_the_connection_s_close() -> None:
    handler = _answers(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
    client = Client()
    async with _server(handler) as (url, _):
        assert await _post(client, url) == b"all of it"
        await client.aclose()


async def test_an_interim_answer_is_skipped() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        assert body is not None
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the client has it alone before the answer
        writer.write(_answer(body))

    client = Client()
    async with _server(handle) as (url, _):
        assert await _post(client, url, b"final") == b"final"
        await client.aclose()


async def test_a_body_cut_short_is_an_error_and_the_connection_is_not_reused() -> None:
    handler = _answers(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    client = Client()
    async with _server(handler) as (url, _):
        with pytest.raises(HTTPClientError, match="mid-answer"):
            await _post(client, url)
        await client.aclose()


async def test_garbage_is_an_error() -> None:
    client = Client()
    async with _server(_answers(b"SSH-2.0-OpenSSH\r\n\r\n", hold=True)) as (url, _):
        with pytest.raises(HTTPClientError, match="bad HTTP answer"):
            await _post(client, url)
        await client.aclose()


async def test_nothing_listening_is_an_error_and_sent_is_never_called() -> None:
    async with _server(_echo()) as (url, _):
        pass  # closed: nothing listens on its port now
    sent: list[None] = []
    client = Client()
    with pytest.raises(HTTPClientError, match="cannot connect"):
        await client.post(url, b"{}", {}, timeout=5, sent=lambda: sent.append(None))
    assert sent == []


async def test_waiting_for_the_head_or_the_next_bytes_times_out() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await _read_request(reader) == b"body-stalls":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await reader.read()

    client = Client()
    async with _server(handle) as (url, _):
        with pytest.raises(TimeoutError):
            await client.post(url, b"head-stalls", {}, timeout=0.2)
        async with await client.post(url, b"body-stalls", {}, timeout=0.2) as response:
            with pytest.raises(TimeoutError):
                await response.read()
        await client.aclose()


async def test_a_slow_reader_pauses_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server sends far more than the high-water mark; the client stops reading from the
    socket (so the server's writes block) until the reader catches up, and nothing is lost."""
    monkeypatch.setattr(http1, "HIGH_WATER", 64 * 1024)
    body = bytes(range(256)) * 16 * 1024  # 4 MiB
    drained = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(body))
        await writer.drain()
        drained.set()

    client = Client()
    async with _server(handle) as (url, _):
        async with await client.post(url, b"{}", {}, timeout=5) as response:
            await asyncio.sleep(0.3)  # a reader that is not reading
            assert not drained.is_set()  # the server is held back: the client paused
            received = b"".join([chunk async for chunk in response.chunks()])
        await client.aclose()
    assert received == body


async def test_an_answer_not_read_to_its_end_closes_its_connection() -> None:
    """How a relay stops an upstream's generation when its own client leaves."""
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while not reader.at_eof():  # until the client's close arrives
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            pass
        closed.set()

    client = Client()
    async with _server(handle) as (url, accepted):
        async with await client.post(url, b"{}", {}, timeout=5) as response:
            async for _ in response.chunks():
                break
        await asyncio.wait_for(closed.wait(), 5)
        await client.aclose()
    assert len(accepted) == 1


async def test_https_with_the_certificate_checked() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with _server(_echo(), tls=server_tls) as (url, accepted):
        client = Client(tls=trusting)
        assert [await _post(client, url, b"one"), await _post(client, url, b"two")] == [
            b"one",
            b"two",
        ]
        await client.aclose()
        stranger = Client()  # the system's CAs: this certificate is not theirs
        with pytest.raises(HTTPClientError, match="CERTIFICATE_VERIFY_FAILED"):
            await _post(stranger, url)
    assert len(accepted) == 1  # kept alive for both (the refused one never got past TLS)
