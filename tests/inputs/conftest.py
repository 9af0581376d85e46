"""A tiny HTTP/1.1 server on 127.0.0.1 for the fetcher tests.

Every test here talks to loopback only. Ranges other than loopback are covered by the pure
classifier tests in test_addresses.py, never by a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any, Literal

import pytest
from PIL import Image

from hyperlocal.inputs import MediaFetcher


@dataclass(frozen=True)
class Reply:
    """What one path answers. ``framing``: how the body's end is marked."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    framing: Literal["length", "chunked", "close"] = "length"
    chunk_size: int = 1000
    stall: Literal["never", "before_headers", "after_headers"] = "never"


class LocalServer:
    """Counts connections, records request paths and Host headers, answers from ``routes``."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.connections = 0
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.port = 0
        self._release = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def aclose(self) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                path = await self._read_request(reader)
                if path is not None:
                    await self._reply(writer, self.routes.get(path, Reply(status=404)))
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> str | None:
        request_line = await reader.readline()
        if not request_line:
            return None
        host = ""
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "host":
                host = value.strip()
        path = request_line.split()[1].decode("ascii")
        self.requests.append((path, host))
        return path

    async def _reply(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if reply.stall == "before_headers":
            await self._release.wait()
            return
        writer.write(_head(reply))
        await self._write_body(writer, reply)
        await writer.drain()
        if reply.stall == "after_headers":
            await self._release.wait()

    async def _write_body(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if reply.framing != "chunked":
            writer.write(reply.body)
            return
        for at in range(0, len(reply.body), reply.chunk_size):
            chunk = reply.body[at : at + reply.chunk_size]
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")


def _head(reply: Reply) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} Whatever", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    declared = any(name.lower() == "content-length" for name, _ in reply.headers)
    if reply.framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    elif reply.framing == "length" and not declared:
        lines.append(f"Content-Length: {len(reply.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    await local.start()
    yield local
    await local.aclose()


@pytest.fixture
async def listener() -> AsyncIterator[LocalServer]:
    """A second loopback server, the target that refused fetches must never reach."""
    local = LocalServer()
    await local.start()
    yield local
    await local.aclose()


FetcherFactory = Callable[..., MediaFetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[FetcherFactory]:
    made: list[MediaFetcher] = []

    def make(**overrides: object) -> MediaFetcher:
        options: dict[str, object] = {"allow_private": False, "max_bytes": 1_000_000}
        options |= {"timeout": 5.0, **overrides}
        fetcher = MediaFetcher(**options)  # type: ignore[arg-type]
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


def image_bytes(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, fmt)
    return buffer.getvalue()


def pcm_wav(frames: int = 800) -> bytes:
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x00" * frames)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def png() -> bytes:
    return image_bytes("PNG")


@dataclass
class FakeDNS:
    answers: dict[str, tuple[str, ...]]
    lookups: list[str]


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """Answers names from a table; every other name must be a numeric literal.

    So no test can reach a DNS server, whatever the code under test does with a name.
    ``localhost`` is answered here too, as most systems answer it.
    """
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    dns = FakeDNS({"localhost": ("127.0.0.1", "::1")}, [])

    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> Any:
        name = str(host).lower()
        if name not in dns.answers:
            kwargs["flags"] = kwargs.get("flags", 0) | socket.AI_NUMERICHOST
            return await real_getaddrinfo(host, port, **kwargs)
        dns.lookups.append(name)
        return [_address_info(ip, port) for ip in dns.answers[name]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return dns


def _address_info(ip: str, port: int) -> tuple[Any, ...]:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
