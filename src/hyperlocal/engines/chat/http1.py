"""A small HTTP/1.1 client for the chat relay: POST a body, read the answer whole or as it
arrives, over pooled keep-alive connections (TLS for ``https``).

The relay is judged by the latency it adds. One upstream on loopback, asked in one loop (hot
caches): a request through aiohttp cost about 200 µs of CPU, through this client about 75 µs.
In the server, where every request runs with cold caches, switching took 190 µs of CPU and
220 µs of latency off each relayed chat. It does only what the relay needs, on asyncio's
transports and httptools' parser (uvicorn's, llhttp underneath), which does the framing:
``Content-Length``, chunked bodies, bodies ended by the connection's close, ``1xx`` answers.

- The request is written in the caller's step, so ``sent`` (called right after) is exact: a
  request that could not be sent never calls it.
- A pooled connection that the upstream closed while idle (its keep-alive timeout) fails
  without an answer: ``StaleConnectionError``, and the caller may send again on a fresh one.
  One idle for more than ``IDLE_S`` is closed instead of reused.
- Timeouts: connecting, and each wait for the next bytes of the answer (as aiohttp's
  ``sock_connect`` and ``sock_read``). They raise ``TimeoutError``.
- A reply closed before it has fully arrived closes its connection: that is how a relay
  stops an upstream's generation when its own client leaves.
- Reading pauses while more than ``HIGH_WATER`` bytes wait for a slow reader.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

__all__ = ["Client", "HTTPClientError", "Response", "StaleConnectionError"]

HIGH_WATER = 256 * 1024  # bytes read ahead of the reader before reading pauses
MAX_IDLE_PER_HOST = 100
# An idle connection older than this is not reused but closed: a load balancer or NAT on the
# way may have dropped it without a word, and a request sent on it would wait for its read
# timeout (aiohttp's default keep-alive is the same 15 s).
IDLE_S = 15.0


class HTTPClientError(OSError):
    """The upstream could not be reached, or broke the protocol or the connection."""


class StaleConnectionError(HTTPClientError):
    """A pooled connection closed before any byte of the answer: the request may be sent
    again on a fresh connection (the upstream never saw it whole, or dropped it unread)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: URL) -> _Origin:
        if url.scheme not in ("http", "https") or not url.host or url.port is None:
            raise ValueError(f"not an http(s) URL: {url}")
        return cls(url.scheme, url.host, url.port)


class _Connection(asyncio.Protocol):
    """One connection, and the answer being read on it."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.gone = asyncio.get_running_loop().create_future()  # done once it has closed
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._event = asyncio.Event()  # set whenever the reader has something new
        self._begin_answer()

    def _begin_answer(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.head_done = self.body_done = self.got_bytes = False
        self.error: BaseException | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but have their methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPClientError(f"bad HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.gone.done():
            self.gone.set_result(None)
        if self.head_done and not self.body_done and not self._framed():
            self.body_done = True  # a body ended by the connection's close
        elif not self.body_done:
            self._fail(self._lost(exc))
        self._event.set()

    def _lost(self, exc: Exception | None) -> HTTPClientError:
        reason = f": {exc}" if exc else ""
        if not self.got_bytes:
            return StaleConnectionError(f"the connection closed before any answer{reason}")
        return HTTPClientError(f"the connection closed mid-answer{reason}")

    def _framed(self) -> bool:
        return "content-length" in self.headers or "transfer-encoding" in self.headers

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._event.set()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self.headers = {}
            return
        self.status, self.keep_alive = status, self._parser.should_keep_alive()
        self.head_done = True
        self._event.set()

    def on_body(self, body: bytes) -> None:
        if not self.head_done:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._event.set()

    def on_message_complete(self) -> None:
        if self.head_done:
            self.body_done = True
            self._event.set()

    # the reader's side
    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._begin_answer()
        self.transport.write(data)

    async def head(self, timeout: float) -> None:
        """Until the answer's status and headers are in (``timeout``: for each wait)."""
        while not self.head_done:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise self._lost(None)
            await self.wait(timeout)

    async def wait(self, timeout: float) -> None:
        """Until something new arrives (or the connection ends); ``TimeoutError`` after
        ``timeout`` seconds of nothing."""
        self._event.clear()
        async with asyncio.timeout(timeout):
            await self._event.wait()

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()
        return data

    def pending(self) -> bool:
        return bool(self._chunks)

    def reusable(self) -> bool:
        return self.body_done and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer's status and headers; its body is read with ``read()`` or ``chunks()``.
    ``close()`` (or ``async with``) ends it: a connection whose answer has fully arrived
    goes back to the pool, any other is closed."""

    def __init__(self, client: Client, conn: _Connection, read_timeout: float) -> None:
        self._client, self._conn, self._timeout = client, conn, read_timeout
        self.status, self.headers = conn.status, conn.headers
        self._released = False

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each item is everything received since the last one."""
        conn = self._conn
        while True:
            if conn.pending():
                yield conn.take()
            elif conn.error is not None:
                raise conn.error
            elif conn.body_done:
                return
            else:
                await conn.wait(self._timeout)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        self._client.release(self._conn)


class Client:
    """Keep-alive connections to any number of origins. ``limit`` bounds the requests in
    flight (so the connections open at once); up to ``MAX_IDLE_PER_HOST`` idle ones are kept
    per origin, and dropped as soon as the upstream closes them."""

    def __init__(
        self,
        limit: int = 1000,
        user_agent: str = "hyperlocal",
        tls: ssl.SSLContext | None = None,  # default: the system's CAs, hostnames checked
    ) -> None:
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._user_agent = user_agent
        self._ssl = tls

    async def post(
        self,
        url: URL,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        sent: Callable[[], None] = lambda: None,
        reuse: bool = True,
    ) -> Response:
        """POST ``body`` and return once the answer's head is in. ``reuse=False`` opens a fresh
        connection (a stale one failed the request)."""
        origin = _Origin.of(url)
        request = self._request(url, body, headers)
        await self._slots.acquire()  # released with the connection (``release``)
        conn = self._pooled(origin) if reuse else None
        reused = conn is not None
        try:
            if conn is None:
                conn = await self._connect(origin, timeout)
            conn.send(request)
            sent()
            await conn.head(timeout)
        except BaseException as exc:
            self._drop(conn)
            if not reused and isinstance(exc, StaleConnectionError):
                raise HTTPClientError(str(exc)) from None  # a fresh connection is not stale
            raise
        return Response(self, conn, timeout)

    def _request(self, url: URL, body: bytes, headers: Mapping[str, str]) -> bytes:
        lines = [
            f"POST {url.raw_path_qs} HTTP/1.1",
            f"Host: {url.host_port_subcomponent}",
            f"User-Agent: {self._user_agent}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _pooled(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        fresh_since = asyncio.get_running_loop().time() - IDLE_S
        while idle:
            conn = idle.pop()  # the most recently used first
            if conn.idle_since < fresh_since:
                conn.close()  # and all below it are older still
                for old in idle:
                    old.close()
                idle.clear()
            elif not conn.closed:
                return conn
        return None

    async def _connect(self, origin: _Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls() if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except (OSError, ssl.SSLError) as exc:
            raise HTTPClientError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def release(self, conn: _Connection) -> None:
        """A request's end: its connection goes back to the pool if its answer was read to
        the end and the upstream keeps it open; otherwise it is closed."""
        if not conn.reusable():
            self._drop(conn)
            return
        conn.take()  # an answer complete but not read: its bytes go; the connection stays
        conn.idle_since = asyncio.get_running_loop().time()
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_HOST:
            idle[:] = [c for c in idle if not c.closed]  # those the upstream closed meanwhile
        if len(idle) < MAX_IDLE_PER_HOST:
            idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    def _drop(self, conn: _Connection | None) -> None:
        if conn is not None:
            conn.close()
        self._slots.release()

    async def aclose(self) -> None:
        """Close the idle connections, and wait (a second at most) until they have closed."""
        closing = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        for conn in closing:
            conn.close()
        if closing:
            await asyncio.wait([conn.gone for conn in closing], timeout=1.0)
