#!/usr/bin/env python
"""Benchmark throughput against the number of workers, for a CPU engine.

The engine is text to speech (``audio-tts``, Piper on CPU) when it is installed, else the
preview image engine at 1024x1024. Two set-ups, each with 1 and then 2 workers:

- ``embedded``: one real server process on 127.0.0.1 (SQLite) with
  ``HYPERLOCAL_WORKER_CONCURRENCY`` 1 or 2: jobs run on the server's event loop, the engine's
  work in threads;
- ``celery`` (``--celery``): the scale-out set-up, an API server plus 1 or 2 ``hyperlocal
  worker --concurrency 1`` processes on PostgreSQL and Redis (on loopback; a fresh database and
  Redis namespace are made and removed).

Each run first finishes ``--warmup`` jobs (loading the voice), then submits ``--jobs`` jobs at
once (``Prefer: respond-async``) and waits for them all. Throughput is jobs over the time from
the first job's start to the last one's end, from the database's timestamps; the per-job time
shows how much two jobs at once slow each other down; CPU is that of the server (and workers)
over the same time, in % of one core.

    .venv/bin/python bench/scaling.py [--jobs 24] [--celery]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from _load import percentile
from _report import Machine
from _server import BENCH_DIR, free_port, running, uvicorn_options
from fastapi import FastAPI
from jobs_poll import Workspace, issue_key, loop_factory, prepare, server_env
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sse_streams import Probe

from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

console = Console(width=120)  # the table is wider than an 80-column pipe
Tick = Callable[[], None]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TERMINAL = ("completed", "failed", "canceled")
TEXT = (
    "The lighthouse keeper climbed the narrow stairs at dusk. (calm) He lit the lamp, "
    "wound the clockwork and watched the beam sweep across the dark water."
)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    model: str
    path: str
    body: dict[str, str]


TTS = Workload(
    "audio-tts (Piper, CPU)",
    "audio-tts",
    "/v1/audio/generate",
    {"model": "audio-tts", "text": TEXT, "format": "mp3"},
)
IMAGE = Workload(
    "preview image 1024x1024",
    "gemini-3-1-flash-t2i",
    "/v1/images/generate",
    {"model": "gemini-3-1-flash-t2i", "prompt": "a lighthouse at dusk", "aspect_ratio": "1:1"},
)


def pick_workload() -> Workload:
    installed = all(
        importlib.util.find_spec(m) for m in ("piper", "hyperlocal.engines.builtin.audio.tts")
    )
    return TTS if installed else IMAGE


def server() -> FastAPI:
    """``_hyperlocal_app:create``, writing its PID to ``BENCH_PID_FILE`` for the CPU probe."""
    from _hyperlocal_app import create

    Path(os.environ["BENCH_PID_FILE"]).write_text(str(os.getpid()))
    return create()


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    warmup: int
    workers: tuple[int, ...]
    celery: bool
    postgres_url: str
    redis_url: str
    results: Path

    @classmethod
    def preset(cls, quick: bool) -> Options:
        pg = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
        redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
        jobs = 12 if quick else 40
        return cls(jobs, 2, (1, 2), not quick, pg, redis, BENCH_DIR / "results")


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    base = Options.preset(quick=True)
    add = parser.add_argument
    add("--jobs", type=int, default=24, help="measured jobs per run (default 24)")
    add("--warmup", type=int, default=base.warmup, help="jobs finished first (default 2)")
    add("--workers", type=int, nargs="+", default=list(base.workers), help="default: 1 2")
    add("--celery", action="store_true", help="also measure scale-out (PostgreSQL + Redis)")
    add("--postgres-url", default=base.postgres_url, help="maintenance database, loopback")
    add("--redis-url", default=base.redis_url, help="loopback Redis")
    add("--results", type=Path, default=base.results)
    a = parser.parse_args(argv)
    for url in (a.postgres_url, a.redis_url):
        if urlsplit(url).hostname not in LOOPBACK:
            parser.error(f"loopback only: {urlsplit(url).hostname} is not a loopback host")
    return Options(
        a.jobs, a.warmup, tuple(a.workers), a.celery, a.postgres_url, a.redis_url, a.results
    )


# -- one run: submit, wait, read the timestamps -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    mode: str  # embedded or celery
    workers: int
    jobs: int
    failed: int
    window_s: float  # first start to last finish
    jobs_per_s: float
    job_p50_s: float  # one job's start to finish
    job_max_s: float
    cpu_pct: float  # server (and worker processes), % of one core, over the window


async def submit(client: httpx.AsyncClient, workload: Workload, count: int) -> list[str]:
    async def one() -> str:
        response = await client.post(workload.path, json=workload.body)
        if response.status_code != 202:
            raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text[:300]}")
        return str(response.json()["jobId"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def wait_done(db: Database, ids: Sequence[str], timeout: float, tick: Tick) -> list[Job]:
    """Looks at the database (not the API, to leave the server alone) until all are done."""
    deadline, seen = time.monotonic() + timeout, 0
    while True:
        async with db.read() as session:
            rows = (await session.scalars(select(Job).where(Job.id.in_(ids)))).all()
        done = [r for r in rows if r.status in TERMINAL]
        for _ in range(len(done) - seen):
            tick()
        seen = len(done)
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids) - len(done)} jobs unfinished after {timeout:.0f} s")
        await asyncio.sleep(0.25)


def point(setup: Setup, rows: Sequence[Job], cpu_s: float) -> Point:
    ok = [r for r in rows if r.status == "completed" and r.started_at and r.finished_at]
    if not ok:
        raise RuntimeError(f"{setup}: every job failed: { ({r.error for r in rows}) }")
    start = min(r.started_at or 0.0 for r in ok)
    window = max(r.finished_at or 0.0 for r in ok) - start
    per_job = [(r.finished_at or 0.0) - (r.started_at or 0.0) for r in ok]
    return Point(
        setup.mode,
        setup.workers,
        len(ok),
        len(rows) - len(ok),
        window,
        len(ok) / window,
        percentile(per_job, 50),
        max(per_job),
        100 * cpu_s / window,
    )


@dataclass(frozen=True, slots=True)
class Setup:
    mode: str  # embedded or celery
    workers: int
    options: Options

    def __str__(self) -> str:
        return f"{self.mode} x{self.workers}"


async def measure(
    setup: Setup, url: str, key: str, ws: Workspace, probes: Sequence[Probe]
) -> Point:
    workload, options = pick_workload(), setup.options
    headers = {"authorization": f"Bearer {key}", "prefer": "respond-async"}
    db = Database(ws.database_url)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        try:
            with _progress() as progress:
                tick = _tick(progress, f"{setup} warm-up", options.warmup)
                await wait_done(db, await submit(client, workload, options.warmup), 300, tick)
                cpu = sum(p.cpu_s() for p in probes)
                tick = _tick(progress, str(setup), options.jobs)
                ids = await submit(client, workload, options.jobs)
                rows = await wait_done(db, ids, 60 + 30 * options.jobs, tick)
                used = sum(p.cpu_s() for p in probes) - cpu
        finally:
            await db.aclose()
    return point(setup, rows, used)


def _progress() -> Progress:
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, refresh_per_second=4)


def _tick(progress: Progress, description: str, total: int) -> Tick:
    return partial(progress.advance, progress.add_task(description, total=total))


# -- the two set-ups ----------------------------------------------------------------------------


@contextmanager
def api_server(ws: Workspace, port: int, **env: str) -> Iterator[tuple[str, Probe]]:
    pid_file = ws.root / "server.pid"
    environ = server_env(ws, port, BENCH_PID_FILE=str(pid_file), **env)
    with running("scaling:server", port, environ, ws.root, ws.root / "server.log") as url:
        yield url, Probe(int(pid_file.read_text()))


async def embedded(root: Path, setup: Setup) -> Point:
    ws = prepare(_mkdir(root / f"embedded-{setup.workers}"))
    key = await issue_key(ws)
    env = {"HYPERLOCAL_WORKER_CONCURRENCY": str(setup.workers)}
    with api_server(ws, free_port(), **env) as (url, probe):
        return await measure(setup, url, key, ws, [probe])


async def celery(root: Path, setup: Setup) -> Point:
    options, port = setup.options, free_port()
    async with fresh_postgres(options.postgres_url) as database_url:
        ws = prepare(_mkdir(root / f"celery-{setup.workers}"), url=database_url)
        key = await issue_key(ws)
        namespace = "hlbench-" + secrets.token_hex(4)
        env = {"HYPERLOCAL_REDIS_URL": options.redis_url, "HYPERLOCAL_QUEUE_NAMESPACE": namespace}
        try:
            with (
                api_server(ws, port, **env) as (url, probe),
                worker_processes(ws, port, setup.workers, env) as workers,
            ):
                return await measure(setup, url, key, ws, [probe, *workers])
        finally:
            await flush_redis(options.redis_url, namespace)


@contextmanager
def worker_processes(
    ws: Workspace, port: int, count: int, env: dict[str, str]
) -> Iterator[list[Probe]]:
    """``count`` scale-out workers, one job at a time each; SIGTERM (a warm shutdown) at the end."""
    environ = server_env(ws, port, **env)
    command = [sys.executable, "-m", "hyperlocal", "worker", "--concurrency", "1"]
    procs = []
    try:
        for i in range(count):
            with (ws.root / f"worker-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(command, env=environ, stdout=log, stderr=log))
        yield [Probe(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@asynccontextmanager
async def fresh_postgres(maintenance_url: str) -> AsyncIterator[str]:
    import asyncpg  # type: ignore[import-untyped]

    name = "hl_bench_" + secrets.token_hex(5)
    conn = await asyncpg.connect(maintenance_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        base = maintenance_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def flush_redis(url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{namespace}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


async def bench(options: Options, root: Path) -> tuple[list[Point], dict[str, str]]:
    points = [await embedded(root, Setup("embedded", w, options)) for w in options.workers]
    if not options.celery:
        return points, {"celery": "not asked for (--celery)"}
    skipped = {}
    for w in options.workers:
        setup = Setup("celery", w, options)
        try:
            points.append(await celery(root, setup))
        except (OSError, RuntimeError) as exc:  # no PostgreSQL or Redis on loopback, say
            skipped[str(setup)] = f"{type(exc).__name__}: {exc}"[:300]
    return points, skipped


# -- report -------------------------------------------------------------------------------------


def table(points: Sequence[Point], caption: str) -> Table:
    out = Table(title=f"Throughput against workers: {pick_workload().name}", caption=caption)
    columns = ("set-up", "workers", "jobs", "jobs/s", "speed-up", "job p50 s", "job max s", "CPU %")
    for column in columns:
        out.add_column(column, justify="left" if column == "set-up" else "right")
    for p in points:
        one = next((q for q in points if q.mode == p.mode and q.workers == 1), p)
        out.add_row(
            p.mode,
            str(p.workers),
            f"{p.jobs} ({p.failed} failed)",
            f"{p.jobs_per_s:.2f}",
            f"{p.jobs_per_s / one.jobs_per_s:.2f}x",
            f"{p.job_p50_s:.2f}",
            f"{p.job_max_s:.2f}",
            f"{p.cpu_pct:.0f}",
        )
    return out


def execute(options: Options) -> dict[str, Any]:
    before, machine = os.getloadavg()[0], Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores; {pick_workload().name}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-scaling-") as tmp,
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        points, skipped = runner.run(bench(options, Path(tmp)))
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    caption = (
        f"{machine.cpu}, {machine.cores} cores; {options.jobs} jobs per run after "
        f"{options.warmup} warm-up. Load average {load[0]:.2f} before, {load[1]:.2f} after."
    )
    console.print(table(points, caption))
    for what, why in skipped.items():
        console.print(f"skipped {what}: {why}")
    return write_json(points, skipped, machine, options, load)


def write_json(
    points: Sequence[Point],
    skipped: dict[str, str],
    machine: Machine,
    options: Options,
    load: tuple[float, float],
) -> dict[str, Any]:
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    path = options.results / f"scaling-{now[:10]}.json"
    data = {
        "name": "scaling",
        "date": now,
        "machine": asdict(machine),
        "load_average": load,
        "workload": pick_workload().name,
        "jobs": options.jobs,
        "warmup": options.warmup,
        "points": [asdict(p) for p in points],
        "skipped": skipped,
        "json": str(path),
    }
    options.results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"JSON: {path}")
    return data


def run(quick: bool) -> dict[str, Any]:
    """For run_all.py: 12 jobs per run quick (embedded only), 40 full (with Celery)."""
    return execute(Options.preset(quick))


def main(argv: Sequence[str] | None = None) -> None:
    execute(parse_args(argv))


if __name__ == "__main__":
    main()
