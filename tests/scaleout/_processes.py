"""Real server and worker processes for the scale-out tests, on loopback only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.scaleout.conftest import REPO
from tests.support import free_port

HYPERLOCAL = [sys.executable, "-m", "hyperlocal"]
TEST_WORKER = [sys.executable, "-m", "tests.scaleout._worker"]
TEST_SERVER = [sys.executable, "-m", "tests.launch"]  # the app with the test engines; then PORT


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def output(self, lines: int = 60) -> str:
        """The end of the log, for failure messages."""
        return "\n".join(self.text().splitlines()[-lines:])

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running after {timeout} s:\n{self.output()}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, the graceful path, and its exit status."""
        self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)


@contextmanager
def spawned(
    name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path
) -> Iterator[Process]:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv), cwd=REPO, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    process = Process(name, popen, log)
    try:
        yield process
    finally:
        if process.running():
            process.kill()


@contextmanager
def api_server(
    name: str, env: Mapping[str, str], logs: Path, port: int | None = None
) -> Iterator[str]:
    """``hyperlocal serve`` on a loopback port; yields its base URL once healthy, and stops it
    with SIGTERM at the end, expecting a clean exit."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*HYPERLOCAL, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with spawned(name, argv, env, logs) as process:
        _wait_healthy(process, url)
        yield url
        assert process.terminate() == 0, process.output()  # a graceful stop exits 0


@contextmanager
def server_with_test_engines(
    name: str, env: Mapping[str, str], logs: Path, port: int | None = None
) -> Iterator[str]:
    """``api_server`` for models served by the stand-in engines of ``tests.support``, which
    ``hyperlocal serve`` does not have (it refuses their submits): the same app, started by
    ``tests.launch``. Stopped with SIGTERM at the end."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with spawned(name, [*TEST_SERVER, str(port)], env, logs) as process:
        _wait_healthy(process, url)
        yield url
        process.terminate()


def _wait_healthy(process: Process, url: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            assert process.running(), f"{process.name} exited:\n{process.output()}"
            try:
                if client.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    pytest.fail(f"{process.name} not healthy within {deadline_s} s:\n{process.output()}")


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
