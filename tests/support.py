"""Test support: stand-in engines for model runtimes that fail or stall (things outside us),
a catalogue file that adds models served by them, and a real uvicorn server in a thread."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    EngineFactory,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.errors import GenerationError

DATA = Path(__file__).parent / "data"
TEST_CATALOG = DATA / "test_catalog.toml"


def tiny_png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class FailingEngine:
    """A model runtime that reports a failure."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        raise GenerationError("the model ran out of memory")

    async def aclose(self) -> None:
        return None


class CrashingEngine(FailingEngine):
    """A model runtime with a bug: an exception we did not plan for."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        raise RuntimeError("segfault-like crash inside the runtime")


class SlowEngine(FailingEngine):
    """A model runtime that takes ``params['seconds']`` (default 0.5 s) and reports progress."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        seconds = float(request.params.get("seconds") or 0.5)  # type: ignore[arg-type]
        for step in range(5):
            await progress(step / 5, None)
            await asyncio.sleep(seconds / 5)
        return GenerationResult(artifacts=[Artifact(tiny_png(), "image/png", "png")])


def _factory(cls: type[FailingEngine]) -> EngineFactory:
    def create(_context: EngineContext) -> FailingEngine:
        return cls()

    return create  # type: ignore[return-value]


TEST_ENGINES: dict[str, EngineFactory] = {
    "test-fail": _factory(FailingEngine),
    "test-crash": _factory(CrashingEngine),
    "test-slow": _factory(SlowEngine),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server on loopback; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
