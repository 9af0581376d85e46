#!/usr/bin/env python
"""Benchmark ``GET /v1/jobs/{id}``: hyperlocal against a bare Starlette handler doing the same
single-row SQLite read.

Both run as real uvicorn processes on 127.0.0.1 with the same options. hyperlocal first makes
``--jobs`` finished jobs (zero-work engine, ``Prefer: respond-async``); then both servers are
polled for those ids in alternating rounds, so drift on the machine falls on both. The bare
handler (``jobs_poll:bare``) reads the same row from the same database file through one
aiosqlite connection and answers JSON of the same shape; it skips the API key lookup, the rate
limit and the ownership check that hyperlocal does. See bench/README.md.

    .venv/bin/python bench/jobs_poll.py [--requests 4000] [--concurrency 16] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from _load import Round, Target
from _report import Machine, Summary, summarize
from _server import BENCH_DIR, HOST, free_port, running, uvicorn_options
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hyperlocal.core.keys import MAX_RUNNING_JOBS, KeySpec, create_key
from hyperlocal.store.db import Database

console = Console()
Tick = Callable[[], None]

# -- a hyperlocal server to measure: also used by webhooks.py, sse_streams.py and scaling.py ----

PATH = "/v1/images/generate"
MODEL = "bench-null-t2i"
BODY = json.dumps({"model": MODEL, "prompt": "a lighthouse on a cliff at dusk"}).encode()
CATALOG = f"""\
# Written by the benchmark: one image model served by the zero-work engine (_hyperlocal_app.py).
[[model]]
id = "{MODEL}"
category = "image"
name = "Benchmark null image"
engine = "null-image"
timeout_s = 30
price = {{ kind = "flat", credits = 1 }}
inputs.prompt = {{ type = "string", required = true }}
"""
# Limits far above anything one run uses: the benchmarks measure checking them, never a refusal.
BENCH_KEY = KeySpec(
    name="bench", credits=10**9, rate_limit=10**9, max_running_jobs=MAX_RUNNING_JOBS
)


@dataclass(frozen=True, slots=True)
class Workspace:
    """Everything one run writes, in a temporary directory removed afterwards."""

    root: Path
    url: str | None = None  # another database (PostgreSQL); default: SQLite in ``root``

    @property
    def db_file(self) -> Path:
        return self.root / "hyperlocal" / "hyperlocal.db"

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite+aiosqlite:///{self.db_file}"


def prepare(root: Path, catalog: str = CATALOG, url: str | None = None) -> Workspace:
    """Writes the zero-work engine's PNG and the catalogue override."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buf, format="PNG")
    (root / "image.png").write_bytes(buf.getvalue())
    (root / "catalog.toml").write_text(catalog)
    return Workspace(root, url)


async def issue_key(ws: Workspace) -> str:
    """Creates the bench key in a fresh database; the raw key is kept in memory only."""
    ws.db_file.parent.mkdir(exist_ok=True)
    db = Database(ws.database_url)
    try:
        await db.migrate()
        return (await create_key(db, BENCH_KEY)).key
    finally:
        await db.aclose()


def server_env(ws: Workspace, port: int, **extra: str) -> dict[str, str]:
    """The server's environment; an operator's own HYPERLOCAL_* never leaks into the run."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
    return clean | {
        "BENCH_PNG": str(ws.root / "image.png"),
        "HYPERLOCAL_DATA_DIR": str(ws.db_file.parent),
        "HYPERLOCAL_DATABASE_URL": ws.database_url,
        "HYPERLOCAL_CATALOG": str(ws.root / "catalog.toml"),
        "HYPERLOCAL_PUBLIC_URL": f"http://{HOST}:{port}",
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
        **extra,
    }


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The client's event loop: uvloop when installed, as the servers use."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


_COLUMNS = "id, status, model, category, credits, output_url, progress, created_at, finished_at"
_WIRE_STATUS = {"queued": "processing", "running": "processing", "canceled": "failed"}


# -- the baseline server (run by uvicorn as ``jobs_poll:bare --factory``) -----------------------


def bare() -> Starlette:
    """One aiosqlite connection, read-only, to ``BENCH_DB``; one SELECT by primary key."""
    import aiosqlite

    path = os.environ["BENCH_DB"]
    state: dict[str, aiosqlite.Connection] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as conn:
            state["db"] = conn
            yield

    async def get_job(request: Request) -> JSONResponse:
        sql = f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"  # _COLUMNS is a constant
        async with state["db"].execute(sql, (request.path_params["job_id"],)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return JSONResponse({"error": "Job not found"}, status_code=404)
        return JSONResponse(_wire(tuple(row)))

    return Starlette(routes=[Route("/v1/jobs/{job_id}", get_job)], lifespan=lifespan)


def _wire(row: tuple[Any, ...]) -> dict[str, Any]:
    job_id, status, model, category, credits, output_url, progress, created, finished = row
    body = {
        "jobId": job_id,
        "status": _WIRE_STATUS.get(status, status),
        "model": model,
        "type": category,
        "creditsUsed": credits,
        "outputUrl": output_url,
        "progress": round(progress, 3),
        "createdAt": int(created),
        "completedAt": int(finished) if finished else None,
    }
    return {k: v for k, v in body.items() if v is not None}


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    requests: int  # per target, over all rounds
    concurrency: int
    rounds: int
    warmup: int
    jobs: int  # distinct job ids polled
    results: Path

    @classmethod
    def preset(cls, quick: bool) -> Options:
        requests = 1000 if quick else 8000
        return cls(
            requests, 16, 2 if quick else 4, 200, 100 if quick else 500, BENCH_DIR / "results"
        )

    @property
    def per_round(self) -> int:
        return math.ceil(self.requests / self.rounds)

    def describe(self) -> str:
        return (
            f"{self.rounds} rounds x {self.per_round} GETs per target over {self.jobs} finished "
            f"jobs, concurrency {self.concurrency}, warm-up {self.warmup}"
        )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    base = Options.preset(quick=True)
    add = partial(parser.add_argument, type=_positive)
    add("--requests", default=4000, help="per target, over all rounds (default 4000)")
    add("--concurrency", default=base.concurrency, help="connections per target (default 16)")
    add("--rounds", default=4, help="alternating rounds (default 4)")
    add("--warmup", default=base.warmup, help="warm-up requests per target (default 200)")
    add("--jobs", default=200, help="distinct finished jobs to poll (default 200)")
    parser.add_argument("--results", type=Path, default=base.results)
    a = parser.parse_args(argv)
    return Options(a.requests, a.concurrency, a.rounds, a.warmup, a.jobs, a.results)


# -- load ---------------------------------------------------------------------------------------


async def get_round(
    target: Target, ids: Sequence[str], requests: int, *, concurrency: int, index: int, tick: Tick
) -> Round:
    pending = iter(range(requests))  # shared by the workers: each request is taken once
    workers = [_worker(target.client, ids, pending, tick) for _ in range(concurrency)]
    start = perf_counter()
    results = await asyncio.gather(*workers)
    elapsed = perf_counter() - start
    latencies = tuple(t for times, _ in results for t in times)
    return Round(target.name, index, latencies, sum(e for _, e in results), elapsed)


async def _worker(
    client: httpx.AsyncClient, ids: Sequence[str], pending: Iterator[int], tick: Tick
) -> tuple[list[float], int]:
    times: list[float] = []
    errors = 0
    for i in pending:
        start = perf_counter()
        response = await client.get(f"/v1/jobs/{ids[i % len(ids)]}")
        if response.status_code == 200:
            times.append(perf_counter() - start)
        else:
            errors += 1
        tick()
    return times, errors


async def make_jobs(target: Target, count: int, tick: Tick) -> list[str]:
    """Submits ``count`` async jobs to hyperlocal; the zero-work engine finishes them at once."""
    headers = {"content-type": "application/json", "prefer": "respond-async"}
    ids: list[str] = []
    for _ in range(count):
        response = await target.client.post(PATH, content=BODY, headers=headers)
        if response.status_code != 202:
            raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["jobId"])
        tick()
    await _wait_finished(target, ids[-1])
    return ids


async def _wait_finished(target: Target, job_id: str) -> None:
    for _ in range(200):
        if (await target.client.get(f"/v1/jobs/{job_id}")).json()["status"] != "processing":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not finish within 10 s")


async def _check(target: Target, job_id: str) -> None:
    response = await target.client.get(f"/v1/jobs/{job_id}")
    if response.status_code != 200 or response.json()["jobId"] != job_id:
        raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")


# -- the run ------------------------------------------------------------------------------------


def _progress() -> Progress:
    columns = (TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, refresh_per_second=4)


def _tick(progress: Progress, description: str, total: int) -> Tick:
    return partial(progress.advance, progress.add_task(description, total=total))


async def start_targets(stack: AsyncExitStack, ws: Workspace, options: Options) -> list[Target]:
    key = await issue_key(ws)
    specs: tuple[tuple[str, str, dict[str, str]], ...] = (
        ("hyperlocal", "_hyperlocal_app:create", {"authorization": f"Bearer {key}"}),
        ("bare", "jobs_poll:bare", {}),
    )
    targets = []
    for name, app, headers in specs:
        port = free_port()
        env = server_env(ws, port, BENCH_DB=str(ws.db_file))
        url = stack.enter_context(running(app, port, env, ws.root, ws.root / f"{name}.log"))
        target = Target(name, url, headers, options.concurrency)
        stack.push_async_callback(target.aclose)
        targets.append(target)
    return targets


async def measure(targets: Sequence[Target], options: Options) -> list[Round]:
    hyper = targets[0]
    rounds: list[Round] = []
    with _progress() as progress:
        ids = await make_jobs(hyper, options.jobs, _tick(progress, "make jobs", options.jobs))
        for target in targets:
            await _check(target, ids[0])
            tick = _tick(progress, f"warm-up {target.name}", options.warmup)
            await get_round(
                target, ids, options.warmup, concurrency=options.concurrency, index=-1, tick=tick
            )
        total = options.per_round * options.rounds
        ticks = {t.name: _tick(progress, t.name, total) for t in targets}
        load = partial(
            get_round, ids=ids, requests=options.per_round, concurrency=options.concurrency
        )
        for index in range(options.rounds):  # A, B, A, B: drift falls on both
            for t in targets:
                rounds.append(await load(t, index=index, tick=ticks[t.name]))
    return rounds


async def bench(options: Options, root: Path) -> list[Round]:
    ws = prepare(root)
    async with AsyncExitStack() as stack:
        targets = await start_targets(stack, ws, options)
        return await measure(targets, options)


# -- report -------------------------------------------------------------------------------------


def table(summary: Summary) -> Table:
    m, (before, after) = summary.machine, summary.load_average
    caption = (
        f"{m.cpu}, {m.cores} cores; {m.note}. {summary.workload}. "
        f"Load average {before:.2f} before, {after:.2f} after."
    )
    out = Table(title="GET /v1/jobs/{id}", caption=caption)
    for column in ("", "req/s", "p50 ms", "p99 ms", "requests", "errors", "req/s by round"):
        out.add_column(column, justify="right" if column else "left")
    for s in (summary.hyperlocal, summary.bare):
        rounds = " ".join(f"{x:.0f}" for x in s.round_rps)
        cells = (f"{s.rps:.0f}", f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", str(s.requests))
        out.add_row(s.name, *cells, str(s.errors), rounds)
    r = summary.ratios
    ratios = (f"{r.throughput:.2f}x", f"{r.p50:.2f}x", f"{r.p99:.2f}x")
    out.add_row("hyperlocal / bare", *ratios, "", "", "", style="bold")
    return out


def write_json(summary: Summary, options: Options) -> dict[str, Any]:
    options.results.mkdir(parents=True, exist_ok=True)
    path = options.results / f"jobs-poll-{summary.date[:10]}.json"
    data = {"name": "jobs_poll", **asdict(summary), "options": _options(options)}
    data["json"] = str(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def _options(options: Options) -> dict[str, Any]:
    return {k: v for k, v in asdict(options).items() if k != "results"}


def execute(options: Options) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    machine = Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note}); {options.describe()}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-poll-") as tmp,
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        rounds = runner.run(bench(options, Path(tmp)))
    summary = summarize(rounds, machine, options.describe(), load_before)
    console.print(table(summary))
    data = write_json(summary, options)
    console.print(f"JSON: {data['json']}")
    return data


def run(quick: bool) -> dict[str, Any]:
    """For run_all.py: the preset sizes; returns what the JSON file holds."""
    return execute(Options.preset(quick))


def main(argv: Sequence[str] | None = None) -> None:
    execute(parse_args(argv))


if __name__ == "__main__":
    main()
