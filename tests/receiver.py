"""A real webhook receiver on loopback that records what it gets and answers as scripted."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import serve_in_thread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``script[path]`` lists status codes to answer in turn (the last one repeats)."""

    script: dict[str, list[int]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    # Paths whose answers wait until ``release`` is set (from any thread).
    held: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    base: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        body = await request.body()
        with self._lock:
            self.received.append(Received(path, dict(request.headers), body))
            answers = self.script.get(path, [200])
            code = answers.pop(0) if len(answers) > 1 else answers[0]
        if self.delay.get(path):
            await asyncio.sleep(self.delay[path])
        if path in self.held:
            await asyncio.to_thread(self.release.wait)
        headers = {"Location": "/elsewhere"} if 300 <= code < 400 else None
        return Response(status_code=code, headers=headers)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    with serve_in_thread(app) as base:  # type: ignore[arg-type]
        receiver.base = base
        try:
            yield receiver
        finally:
            receiver.release.set()  # no held answer outlives the test


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
