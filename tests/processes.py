"""Real server processes for reliability tests: ``python -m tests.launch`` with test engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import TEST_CATALOG

ROOT = Path(__file__).resolve().parents[1]


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
    env.update(
        HYPERLOCAL_DATA_DIR=str(data_dir),
        HYPERLOCAL_CATALOG=str(TEST_CATALOG),
        HYPERLOCAL_ALLOW_PRIVATE_URLS="true",
        HYPERLOCAL_PUBLIC_URL="http://127.0.0.1",
        HYPERLOCAL_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@contextmanager
def server_process(
    port: int, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A real server on 127.0.0.1:port, stopped with SIGTERM (or already killed) on exit."""
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.launch", str(port)],
            cwd=ROOT,
            env=dict(env),
            stdout=sink,
            stderr=sink,
        )
    try:
        wait_healthy(port, proc)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited during start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not become healthy")
