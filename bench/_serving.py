"""A real ``hyperlocal serve`` for ``gpu_serving.py``: its workspace, catalogue, keys, requests.

The server is the ``hyperlocal`` command itself (``python -m hyperlocal serve``), on loopback,
with SQLite and its files in a temporary directory, and a catalogue of ``diffusers-image``
entries that point at the benchmark's own weights. Keys are made in its database before it
starts; they stay in memory and are never printed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _sd_models import PROMPT
from _server import HOST, free_port, stop, wait_http

__all__ = [
    "Entry",
    "Keys",
    "Sample",
    "Server",
    "Workspace",
    "alternate",
    "issue_keys",
    "ms",
    "serving",
    "summary",
]

PATH = "/v1/images/generate"
START_S = 180.0  # a cold start imports torch; a loaded machine doubles it


@dataclass(frozen=True, slots=True)
class Entry:
    """One catalogue entry on ``diffusers-image``."""

    id: str
    weights: str  # the folder under the models directory
    steps: int
    guidance: float
    options: Mapping[str, int] = field(default_factory=dict)  # more engine_options

    def toml(self) -> str:
        extra = "".join(f", {k} = {v}" for k, v in self.options.items())
        return (
            f'[[model]]\nid = "{self.id}"\ncategory = "image"\nname = "Benchmark {self.id}"\n'
            f'engine = "diffusers-image"\nengine_options = {{ weights = "{self.weights}", '
            f"steps = {self.steps}, guidance = {self.guidance}{extra} }}\ntimeout_s = 900\n"
            'price = { kind = "flat", credits = 1 }\n'
            'inputs.prompt = { type = "string", required = true }\n'
            'inputs.size = { type = "string" }\ninputs.seed = { type = "integer" }\n'
        )


@dataclass(frozen=True, slots=True)
class Workspace:
    """Everything one run writes, in a temporary directory removed afterwards."""

    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def data(self) -> Path:
        return self.root / "hyperlocal"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.toml"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data / 'hyperlocal.db'}"

    def write_catalog(self, entries: Sequence[Entry]) -> None:
        self.catalog.write_text("\n".join(e.toml() for e in entries))


@dataclass(frozen=True, slots=True)
class Keys:
    user: str
    admin: str

    def __repr__(self) -> str:  # never shown, whatever prints this
        return "Keys(...)"


def issue_keys(ws: Workspace) -> Keys:
    """A user key and an admin key in a fresh database (the server migrates nothing more)."""
    from hyperlocal.core.keys import KeySpec, create_key
    from hyperlocal.store.db import Database

    async def issue() -> Keys:
        ws.data.mkdir(parents=True, exist_ok=True)
        db = Database(ws.database_url)
        try:
            await db.migrate()
            user = await create_key(db, KeySpec("bench", 10**9, 10**9, 10**5))
            admin = await create_key(db, KeySpec("bench-admin", 0, 10**9, 10**5, True))
            return Keys(user.key, admin.key)
        finally:
            await db.aclose()

    return asyncio.run(issue())


@dataclass
class Server:
    url: str
    pid: int
    log: Path
    client: httpx.Client  # the user key's
    admin: httpx.Client

    def generate(self, model: str, size: int, seed: int) -> float:
        """One synchronous image; the seconds from sending the request to its last byte."""
        body = {"model": model, "prompt": PROMPT, "size": f"{size}x{size}", "seed": seed}
        start = time.perf_counter()
        response = self.client.post(PATH, json=body)
        seconds = time.perf_counter() - start
        if response.status_code != 200 or not response.json().get("data"):
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return seconds

    def cpu_seconds(self) -> float:
        """CPU time of every thread of the server so far, to the nanosecond (schedstat)."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):  # a thread that just ended
                continue
        return total / 1e9

    def workers(self) -> dict[str, Any]:
        view: dict[str, Any] = self.admin.get("/admin/workers").raise_for_status().json()
        return view


@contextmanager
def serving(ws: Workspace, keys: Keys, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``hyperlocal serve`` on a free loopback port until the block ends."""
    port = free_port()
    url, log = f"http://{HOST}:{port}", ws.root / f"serve-{port}.log"
    argv = [sys.executable, "-m", "hyperlocal", "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=_env(ws, url, env or {}), cwd=ws.root, stdout=out, stderr=subprocess.STDOUT
        )
    clients = [_client(url, key) for key in (keys.user, keys.admin)]
    try:
        wait_http(process, f"{url}/healthz", log, START_S)
        yield Server(url, process.pid, log, *clients)
    finally:
        for client in clients:
            client.close()
        stop(process, wait_s=60)


def _env(ws: Workspace, url: str, extra: Mapping[str, str]) -> dict[str, str]:
    # An operator's HYPERLOCAL_* (a Redis or PostgreSQL URL, say) must not leak into the run.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
    return clean | {
        "HYPERLOCAL_DATA_DIR": str(ws.data),
        "HYPERLOCAL_DATABASE_URL": ws.database_url,
        "HYPERLOCAL_CATALOG": str(ws.catalog),
        "HYPERLOCAL_MODELS_DIR": str(ws.models),
        "HYPERLOCAL_PUBLIC_URL": url,
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
        **extra,
    }


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=900.0, trust_env=False
    )


def ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, mean and min of ``seconds``, in milliseconds."""
    return {
        "p50_ms": round(statistics.median(seconds) * 1e3, 2),
        "mean_ms": round(statistics.fmean(seconds) * 1e3, 2),
        "min_ms": round(min(seconds) * 1e3, 2),
    }


@dataclass(frozen=True, slots=True)
class Sample:
    """One image: wall seconds, and the CPU seconds its process spent meanwhile."""

    wall: float
    cpu: float


def summary(hyperlocal: Sequence[Sample], bare: Sequence[Sample]) -> dict[str, Any]:
    """Both sides' figures; hyperlocal's overhead on the p50, in per cent; the median of the
    overheads of each pair (two images made back to back), steadier on a shared machine where
    other work comes and goes between pairs; and the overhead in CPU time, which other work
    on the machine hardly moves."""
    h, b = _side(hyperlocal), _side(bare)
    pairs = [x.wall / y.wall - 1 for x, y in zip(hyperlocal, bare, strict=True)]
    diffs = [x.wall - y.wall for x, y in zip(hyperlocal, bare, strict=True)]
    return {
        "hyperlocal": h,
        "bare": b,
        "images": len(bare),
        "overhead_pct": round((h["p50_ms"] / b["p50_ms"] - 1) * 100, 2),
        "paired_overhead_pct": round(statistics.median(pairs) * 100, 2),
        "paired_overhead_ms": round(statistics.median(diffs) * 1e3, 2),
        "cpu_overhead_pct": round((h["cpu_p50_ms"] / b["cpu_p50_ms"] - 1) * 100, 2),
    }


def _side(samples: Sequence[Sample]) -> dict[str, float]:
    cpu = statistics.median(s.cpu for s in samples)
    return ms([s.wall for s in samples]) | {"cpu_p50_ms": round(cpu * 1e3, 2)}


def alternate(
    server: Server, model: str, size: int, images: int, bare: Callable[[int], float]
) -> dict[str, Any]:
    """``images`` through the server against ``bare(seed)``, one at a time, after one warm-up
    of each (the server loads its model then); the order flips every image, so that neither
    side always runs right after the other."""
    server.generate(model, size, 0)
    bare(0)
    hyper, plain = [], []
    for seed in range(1, images + 1):
        if seed % 2:
            plain.append(_bare(bare, seed))
            hyper.append(_served(server, model, size, seed))
        else:
            hyper.append(_served(server, model, size, seed))
            plain.append(_bare(bare, seed))
    return summary(hyper, plain)


def _bare(bare: Callable[[int], float], seed: int) -> Sample:
    start = time.process_time()  # this process's threads: only this one works meanwhile
    wall = bare(seed)
    return Sample(wall, time.process_time() - start)


def _served(server: Server, model: str, size: int, seed: int) -> Sample:
    start = server.cpu_seconds()
    wall = server.generate(model, size, seed)
    return Sample(wall, server.cpu_seconds() - start)
