"""One uvicorn server process on loopback, started and stopped by the benchmark."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["HOST", "free_port", "running", "stop", "tail", "uvicorn_options", "wait_http"]

HOST = "127.0.0.1"  # loopback only: the benchmark never binds or calls another address
BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def uvicorn_options() -> list[str]:
    """The options both servers share: the fastest loop and parser installed, one worker."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return ["--loop", loop, "--http", http, "--no-access-log", "--log-level", "warning"]


def _command(app: str, port: int, workers: int = 1) -> list[str]:
    target = ["--factory", "--app-dir", str(BENCH_DIR), app]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        *target,
        "--host",
        HOST,
        "--port",
        str(port),
        "--lifespan",
        "on",
        *uvicorn_options(),
        *(["--workers", str(workers)] if workers > 1 else []),
    ]


@contextmanager
def running(
    app: str, port: int, env: Mapping[str, str], cwd: Path, log: Path, *, workers: int = 1
) -> Iterator[str]:
    """Run ``app`` (``module:factory`` in bench/) with ``workers`` processes until the block
    ends; yield its base URL."""
    command = _command(app, port, workers)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(process, port, log)
        yield f"http://{HOST}:{port}"
    finally:
        stop(process)


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{tail(log)}")
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"server did not start within 60 s:\n{tail(log)}")


def wait_http(process: subprocess.Popen[bytes], url: str, log: Path, seconds: float = 60.0) -> None:
    """Return once ``url`` answers 200; fail with the log's end if ``process`` exits or
    ``seconds`` pass first."""
    import httpx  # only the benchmarks that start servers of their own need it

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited ({process.returncode}):\n{tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes], wait_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``wait_s``."""
    process.terminate()
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
