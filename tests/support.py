"""Test support: stand-in engines for model runtimes that fail or stall (things outside us),
a catalogue file that adds models served by them, and a real uvicorn server in a thread."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from hyperlocal.core.retention import ExpirySweeper
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

SOAK_SCALE = int(os.environ.get("HYPERLOCAL_SOAK_SCALE", "1"))
"""``make soak`` runs the slow tests at this many times their numbers."""

# How much slower than its arithmetic a batch of work may run before a test calls it lost: CI
# machines are shared, and the server, its worker and the test share the same cores.
LOAD_FACTOR = 3


def work_deadline(jobs: int, seconds_per_job: float, workers: int, overhead: float) -> float:
    """Seconds to allow ``jobs`` jobs of ``seconds_per_job`` each on ``workers`` slots: the
    work's least possible length times ``LOAD_FACTOR``, plus ``overhead`` for what does not
    grow with the jobs (a start-up, an expired lease, a retry schedule)."""
    return overhead + LOAD_FACTOR * jobs * seconds_per_job / workers


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Return once ``check()`` is true; fail, naming ``what``, if ``timeout`` s pass first. A
    test waits on the condition it needs, never on a sleep of a guessed length: ``timeout``
    only bounds a failure, so make it generous."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


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


class StopGate:
    """Holds a ``StubbornEngine`` between being told to stop and stopping, for a test to look at
    the job meanwhile. Threading events: the server may run on another thread's loop."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopping = threading.Event()
        self.may_stop = threading.Event()

    def reset(self) -> None:
        for event in (self.started, self.stopping, self.may_stop):
            event.clear()


GATE = StopGate()


class StubbornEngine(FailingEngine):
    """A model runtime that runs until cancelled, then takes as long to stop as the test says
    (``GATE.may_stop``), as a GPU kernel finishing its step does."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        GATE.started.set()
        try:
            while True:
                await progress(0.5, None)
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            GATE.stopping.set()
            while not GATE.may_stop.is_set():
                await asyncio.sleep(0.01)
            raise


def _factory(cls: type[FailingEngine]) -> EngineFactory:
    def create(_context: EngineContext) -> FailingEngine:
        return cls()

    return create  # type: ignore[return-value]


TEST_ENGINES: dict[str, EngineFactory] = {
    "test-fail": _factory(FailingEngine),
    "test-crash": _factory(CrashingEngine),
    "test-slow": _factory(SlowEngine),
    "test-stubborn": _factory(StubbornEngine),
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


class SteppedClock:
    """A clock that stands still until the test steps it (``now``): the retention sweep's,
    given to ``create_app(clock=...)``."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def sweep_at(expiry: ExpirySweeper, clock: SteppedClock, now: float) -> None:
    """Step ``clock`` to ``now``, wake the background retention sweep, and wait for a pass
    that ran at that time."""
    clock.now = now
    expiry.poke()

    async def swept() -> bool:
        return expiry.swept_at is not None and expiry.swept_at >= now

    await eventually(swept, 20, "a retention sweep at the stepped time")
