#!/usr/bin/env python
"""Benchmark job submission and polling: ``POST /v1/images/generate`` with
``Prefer: respond-async`` (202 + job id), then ``GET /v1/jobs/{id}`` on the jobs just made.

Three back-ends, each a real uvicorn process on 127.0.0.1 running the real app with a
zero-work image engine (``_hyperlocal_app.py``), one after the other:

- ``sqlite``: SQLite, the embedded in-process queue (jobs also run in the server process);
- ``postgres``: PostgreSQL, the embedded queue;
- ``postgres+celery``: PostgreSQL and Redis, so submits are dispatched through Celery (the
  jobs are sent, not run: no worker is started; the queue is deleted afterwards).

A submit is auth, the rate limit, validation, the charge and the job row in one transaction,
then the hand-off to the queue. PostgreSQL and Redis must be on loopback; a fresh database and
Redis namespace are made for the run and removed afterwards.

    .venv/bin/python bench/submits.py [--submits 2000] [--polls 4000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import httpx
from _load import percentile
from _report import Machine
from _server import BENCH_DIR, HOST, free_port, running, uvicorn_options
from _wrk import WrkResult, available, run_wrk
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hyperlocal.core.keys import KeySpec, create_key
from hyperlocal.store.db import Database

MODEL = "bench-null-t2i"
BODY = json.dumps({"model": MODEL, "prompt": "a lighthouse on a cliff at dusk"}).encode()
CATALOG = f"""\
# Written by bench/submits.py: one image model served by the zero-work engine.
[[model]]
id = "{MODEL}"
category = "image"
name = "Benchmark null image"
engine = "null-image"
timeout_s = 30
price = {{ kind = "flat", credits = 1 }}
inputs.prompt = {{ type = "string", required = true }}
"""
BENCH_KEY = KeySpec(name="bench", credits=10**9, rate_limit=10**9, max_running_jobs=10**5)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BACKENDS = ("sqlite", "postgres", "postgres+celery")
Tick = Callable[[], None]

console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    submits: int
    polls: int
    concurrency: int
    warmup: int
    backends: tuple[str, ...]
    workers: tuple[int, ...]
    client: str
    seconds: float
    postgres_url: str
    redis_url: str
    results: Path


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured batch. Latencies are of requests that got the expected status."""

    backend: str
    name: str
    latencies_s: tuple[float, ...]
    errors: int
    elapsed_s: float
    client: str = "httpx"
    wrk: WrkResult | None = None  # when wrk sent the load, its own count and percentiles

    @property
    def rps(self) -> float:
        return self.wrk.rps if self.wrk else len(self.latencies_s) / self.elapsed_s

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_s
        p50 = self.wrk.p50_s if self.wrk else percentile(lat, 50)
        p99 = self.wrk.p99_s if self.wrk else percentile(lat, 99)
        return {
            "backend": self.backend,
            "phase": self.name,
            "client": self.client,
            "requests": self.wrk.requests - self.errors if self.wrk else len(lat),
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(p50 * 1e3, 2),
            "p99_ms": round(p99 * 1e3, 2),
        }


@dataclass(slots=True)
class Backend:
    name: str
    root: Path
    database_url: str
    env: dict[str, str] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--submits", type=int, default=2000, help="per back-end (default 2000)")
    parser.add_argument("--polls", type=int, default=4000, help="per back-end (default 4000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--warmup", type=int, default=200, help="submits per back-end")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[1, 2, 4],
        help="API worker processes (uvicorn --workers), each count run in turn (default 1 2 4)",
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "httpx"),
        default="wrk" if available() else "httpx",
        help="load generator of the submit phase (default: wrk when installed)",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="length of a wrk submit phase (default 10)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="maintenance database on loopback; a fresh database is made beside it",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    a = parser.parse_args(argv)
    for url in (a.postgres_url, a.redis_url):
        if urlsplit(url).hostname not in LOOPBACK:
            parser.error(f"loopback only: {urlsplit(url).hostname} is not a loopback host")
    return Options(
        a.submits,
        a.polls,
        a.concurrency,
        a.warmup,
        tuple(a.backends),
        tuple(a.workers),
        a.client,
        a.seconds,
        a.postgres_url,
        a.redis_url,
        a.results,
    )


# -- back-ends: a database (and Redis namespace) made for the run, removed afterwards -----------


def _clean_env() -> dict[str, str]:
    # An operator's HYPERLOCAL_* must not leak into the run.
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}


def _base_env(root: Path, database_url: str, port: int) -> dict[str, str]:
    return _clean_env() | {
        "BENCH_PNG": str(root / "image.png"),
        "HYPERLOCAL_DATA_DIR": str(root / "data"),
        "HYPERLOCAL_DATABASE_URL": database_url,
        "HYPERLOCAL_CATALOG": str(root / "catalog.toml"),
        "HYPERLOCAL_PUBLIC_URL": f"http://{HOST}:{port}",
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
    }


async def _admin_sql(maintenance_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(maintenance_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def backend(name: str, options: Options, root: Path) -> Any:
    """Yields a ``Backend`` whose database exists and is migrated; removes what it made."""
    root.mkdir(parents=True)
    if name == "sqlite":
        yield Backend(name, root, f"sqlite+aiosqlite:///{root / 'data' / 'hyperlocal.db'}")
        return
    db_name = "hl_bench_" + secrets.token_hex(5)
    await _admin_sql(options.postgres_url, f'CREATE DATABASE "{db_name}"')
    base = options.postgres_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    made = Backend(name, root, f"{base}/{db_name}")
    namespace = "hlbench-" + secrets.token_hex(4)
    if name == "postgres+celery":
        made.env = {
            "HYPERLOCAL_REDIS_URL": options.redis_url,
            "HYPERLOCAL_QUEUE_NAMESPACE": namespace,
        }
    try:
        yield made
    finally:
        await _admin_sql(options.postgres_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        if name == "postgres+celery":
            await _flush_redis(options.redis_url, namespace)


async def _flush_redis(url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{namespace}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def issue_key(database_url: str, root: Path) -> tuple[str, str]:
    """Creates the bench key; the raw key is kept in memory only. Returns (key, key id)."""
    (root / "data").mkdir(exist_ok=True)
    db = Database(database_url)
    try:
        await db.migrate()
        issued = await create_key(db, BENCH_KEY)
        return issued.key, issued.info.id
    finally:
        await db.aclose()


def write_fixtures(root: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buf, format="PNG")
    (root / "image.png").write_bytes(buf.getvalue())
    (root / "catalog.toml").write_text(CATALOG)


# -- load ---------------------------------------------------------------------------------------


Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass(frozen=True, slots=True)
class Load:
    """What one phase sends: ``total`` requests made by ``send``, expecting ``expect``."""

    name: str
    send: Send
    total: int
    expect: int
    collect: list[str] | None = None  # job ids from the answers, when given


async def run_phase(
    backend_name: str, client: httpx.AsyncClient, load: Load, concurrency: int, tick: Tick
) -> Phase:
    pending = iter(range(load.total))  # shared by the workers: each request is taken once
    workers = [_worker(client, load, pending, tick) for _ in range(concurrency)]
    start = perf_counter()
    results = await asyncio.gather(*workers)
    elapsed = perf_counter() - start
    latencies = tuple(t for times, _ in results for t in times)
    return Phase(backend_name, load.name, latencies, sum(e for _, e in results), elapsed)


async def _worker(
    client: httpx.AsyncClient, load: Load, pending: Iterator[int], tick: Tick
) -> tuple[list[float], int]:
    times: list[float] = []
    errors = 0
    for i in pending:
        start = perf_counter()
        response = await load.send(client, i)
        if response.status_code == load.expect:
            times.append(perf_counter() - start)
            if load.collect is not None:
                load.collect.append(response.json()["jobId"])
        else:
            errors += 1
        tick()
    return times, errors


def _submit(client: httpx.AsyncClient, _i: int) -> Awaitable[httpx.Response]:
    headers = {"content-type": "application/json", "prefer": "respond-async"}
    return client.post("/v1/images/generate", content=BODY, headers=headers)


def _poller(ids: Sequence[str]) -> Send:
    def poll(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
        return client.get(f"/v1/jobs/{ids[i % len(ids)]}")

    return poll


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        yield progress


async def measure(name: str, url: str, key: str, options: Options) -> list[Phase]:
    c = options.concurrency
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60.0, trust_env=False
    ) as client:
        first = await _submit(client, 0)
        if first.status_code != 202:
            raise RuntimeError(f"{name}: HTTP {first.status_code}: {first.text[:300]}")
        ids: list[str] = []
        submit = Load("submit", _submit, options.submits, 202, ids)
        loads = [Load("warm-up", _submit, options.warmup, 202, ids)]
        if options.client == "httpx":
            loads.append(submit)
        phases = []
        with _progress() as progress:
            for load in loads:
                task = progress.add_task(f"{name} {load.name}", total=load.total)
                phases.append(
                    await run_phase(name, client, load, c, partial(progress.advance, task))
                )
            if options.client == "wrk":
                console.print(f"{name} submit: wrk, {options.seconds:g} s ...")
                phases.append(await _wrk_submits(name, url, key, options))
            poll = Load("poll", _poller(ids), options.polls, 200)
            task = progress.add_task(f"{name} poll", total=poll.total)
            phases.append(await run_phase(name, client, poll, c, partial(progress.advance, task)))
    return phases[1:]  # the warm-up is not reported


async def _wrk_submits(name: str, url: str, key: str, options: Options) -> Phase:
    result = await asyncio.to_thread(
        run_wrk,
        f"{url}/v1/images/generate",
        key=key,
        body=BODY,
        connections=options.concurrency,
        seconds=options.seconds,
        expect=202,
        prefer="respond-async",
    )
    return Phase(name, "submit", (), result.errors, result.duration_s, "wrk", result)


async def bench_one(name: str, workers: int, options: Options, root: Path) -> list[Phase]:
    label = f"{name} x{workers}"
    async with backend(name, options, root / f"{name.replace('+', '-')}-{workers}") as made:
        write_fixtures(made.root)
        key, _ = await issue_key(made.database_url, made.root)
        port = free_port()
        env = _base_env(made.root, made.database_url, port) | made.env
        log = made.root / "server.log"
        with running("_hyperlocal_app:create", port, env, made.root, log, workers=workers) as url:
            return await measure(label, url, key, options)


async def bench(options: Options, root: Path) -> list[Phase]:
    phases: list[Phase] = []
    for workers in options.workers:
        for name in options.backends:
            phases.extend(await bench_one(name, workers, options, root))
    return phases


# -- report -------------------------------------------------------------------------------------


def table(
    phases: Sequence[Phase], machine: Machine, options: Options, load: tuple[float, float]
) -> Table:
    caption = (
        f"{machine.cpu}, {machine.cores} cores; {machine.note}. Concurrency "
        f"{options.concurrency}; zero-work engine; loopback only. Load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after: other work on the machine."
    )
    out = Table(
        title="Submits (POST, Prefer: respond-async) and polls (GET /v1/jobs/{id})", caption=caption
    )
    for column in (
        "back-end",
        "phase",
        "client",
        "req/s",
        "p50 ms",
        "p99 ms",
        "requests",
        "errors",
    ):
        out.add_column(column, justify="right" if column[0] in "rpe" else "left")
    for s in (p.summary() for p in phases):
        out.add_row(
            s["backend"],
            s["phase"],
            s["client"],
            f"{s['rps']:.0f}",
            f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}",
            str(s["requests"]),
            str(s["errors"]),
        )
    return out


def write_json(
    phases: Sequence[Phase], machine: Machine, options: Options, load: tuple[float, float]
) -> Path:
    options.results.mkdir(parents=True, exist_ok=True)
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    path = options.results / f"submits-{now[:10]}.json"
    data = {
        "date": now,
        "machine": asdict(machine),
        "load_average": load,  # 1-minute, before and after
        "options": {
            "submits": options.submits,
            "polls": options.polls,
            "concurrency": options.concurrency,
            "warmup": options.warmup,
            "workers": list(options.workers),
            "client": options.client,
            "seconds": options.seconds,
        },
        "phases": [p.summary() for p in phases],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    machine = Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note})")
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hyperlocal-submits-") as tmp:
        phases = asyncio.run(bench(options, Path(tmp)))
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    console.print(table(phases, machine, options, load))
    console.print(f"JSON: {write_json(phases, machine, options, load)}")


if __name__ == "__main__":
    main()
