#!/usr/bin/env python
"""Benchmark webhook delivery: the time from a job's terminal state to the receiver's 200, and
deliveries per second with a slow receiver in the mix.

hyperlocal runs as a real uvicorn process on 127.0.0.1 (SQLite, the embedded queue, the
zero-work image engine); the receiver is a second uvicorn process (``webhooks:receiver``) with
two paths: ``/fast`` answers 200 at once, ``/slow`` sleeps ``--slow-s`` seconds first. Each job
is submitted with a ``webhook_url`` (202), and the receiver notes the wall-clock time just
before it answers. Latency is that time minus the job's ``finished_at`` (read from the
database afterwards): it covers the outbox commit, the dispatcher's claim, signing, the POST
and the receiver. Four phases:

- ``paced fast``: jobs at ``--rate`` per second, all to ``/fast``: latency at moderate load;
- ``paced mixed``: the same rate, every other job to ``/slow``;
- ``burst fast``: ``--jobs`` jobs as fast as ``--concurrency`` connections submit them;
- ``burst mixed``: the same, every other job to ``/slow``.

Fast and slow deliveries are reported apart: if the slow receiver held up the others, the fast
figures of a mixed phase would fall behind those of its fast-only twin. See bench/README.md.

    .venv/bin/python bench/webhooks.py [--jobs 1000] [--paced-jobs 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, closing
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _load import percentile
from _report import Machine
from _server import BENCH_DIR, free_port, running, uvicorn_options
from jobs_poll import MODEL, PATH, Workspace, issue_key, loop_factory, prepare, server_env
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

console = Console()
Tick = Callable[[], None]
FAST, SLOW = "fast", "slow"


# -- the receiver (run by uvicorn as ``webhooks:receiver --factory``) ---------------------------


def receiver() -> Starlette:
    """``POST /fast`` and ``POST /slow`` (after ``BENCH_SLOW_S``) answer 200 and note when;
    ``GET /records`` gives ``{jobId: [path, answered_at]}`` for the first delivery of each,
    ``GET /count`` their number."""
    slow_s = float(os.environ.get("BENCH_SLOW_S", "2"))
    records: dict[str, tuple[str, float]] = {}

    async def deliver(request: Request) -> Response:
        path = request.path_params["path"]
        job_id = json.loads(await request.body())["jobId"]
        if path == SLOW:
            await asyncio.sleep(slow_s)
        records.setdefault(job_id, (path, time.time()))  # at least once: keep the first
        return Response(status_code=200)

    async def listing(_request: Request) -> JSONResponse:
        return JSONResponse(records)

    async def count(_request: Request) -> JSONResponse:
        return JSONResponse(len(records))

    routes = [
        Route("/records", listing),
        Route("/count", count),
        Route("/{path}", deliver, methods=["POST"]),
    ]
    return Starlette(routes=routes)


# -- options and phases -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    jobs: int
    mixed: bool  # every other job to the slow receiver
    rate: float  # submits per second; 0: as fast as the connections go


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int  # per burst phase
    paced_jobs: int  # per paced phase
    rate: float
    concurrency: int
    slow_s: float
    results: Path

    @classmethod
    def preset(cls, quick: bool) -> Options:
        jobs, paced = (300, 100) if quick else (1000, 400)
        return cls(jobs, paced, 20.0, 8, 2.0, BENCH_DIR / "results")

    def phases(self) -> list[Phase]:
        return [
            Phase("paced fast", self.paced_jobs, False, self.rate),
            Phase("paced mixed", self.paced_jobs, True, self.rate),
            Phase("burst fast", self.jobs, False, 0.0),
            Phase("burst mixed", self.jobs, True, 0.0),
        ]

    def describe(self) -> str:
        return (
            f"paced phases: {self.paced_jobs} jobs at {self.rate:g}/s; burst phases: {self.jobs} "
            f"jobs over {self.concurrency} connections; slow receiver sleeps {self.slow_s:g} s"
        )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    base = Options.preset(quick=True)
    add = parser.add_argument
    add("--jobs", type=int, default=1000, help="jobs per burst phase (default 1000)")
    add("--paced-jobs", type=int, default=200, help="jobs per paced phase (default 200)")
    add("--rate", type=float, default=base.rate, help="paced submits per second (default 20)")
    add("--concurrency", type=int, default=base.concurrency, help="submit connections (8)")
    add("--slow-s", type=float, default=base.slow_s, help="the slow receiver's delay (2 s)")
    add("--results", type=Path, default=base.results)
    a = parser.parse_args(argv)
    return Options(a.jobs, a.paced_jobs, a.rate, a.concurrency, a.slow_s, a.results)


# -- submitting and collecting ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    job_id: str
    group: str  # FAST or SLOW


async def submit_phase(
    client: httpx.AsyncClient, phase: Phase, receiver_url: str, concurrency: int, tick: Tick
) -> list[Sent]:
    slots = asyncio.Semaphore(concurrency)
    start = time.monotonic()
    tasks = []
    for i in range(phase.jobs):
        group = SLOW if phase.mixed and i % 2 else FAST
        if phase.rate:
            await asyncio.sleep(max(0.0, start + i / phase.rate - time.monotonic()))
        await slots.acquire()
        tasks.append(asyncio.create_task(_submit(client, f"{receiver_url}/{group}", group, slots)))
        tasks[-1].add_done_callback(lambda _t: tick())
    return list(await asyncio.gather(*tasks))


async def _submit(
    client: httpx.AsyncClient, webhook_url: str, group: str, slots: asyncio.Semaphore
) -> Sent:
    body = {"model": MODEL, "prompt": "a lighthouse", "webhook_url": webhook_url}
    try:
        response = await client.post(PATH, json=body)
    finally:
        slots.release()
    if response.status_code != 202:
        raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text[:300]}")
    return Sent(response.json()["jobId"], group)


async def wait_delivered(
    client: httpx.AsyncClient, sent: Sequence[str], before: int, timeout: float, tick: Tick
) -> dict[str, float]:
    """The receiver's answer times of ``sent``, once it has them all (it had ``before``
    earlier ones) or ``timeout`` seconds have passed."""
    deadline, seen = time.monotonic() + timeout, 0
    while seen < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        count = int((await client.get("/count")).json()) - before
        for _ in range(count - seen):
            tick()
        seen = count
    records = (await client.get("/records")).json()
    return {job_id: records[job_id][1] for job_id in sent if job_id in records}


def finished_at(db_file: Path, ids: Sequence[str]) -> dict[str, float]:
    with closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)) as conn:
        marks = ",".join("?" * len(ids))  # placeholders only: the ids are bound
        sql = f"SELECT id, finished_at FROM jobs WHERE id IN ({marks})"
        return {job_id: at for job_id, at in conn.execute(sql, list(ids)) if at is not None}


# -- figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One receiver's deliveries in one phase. Latency: job finished -> receiver answered."""

    phase: str
    group: str
    jobs: int
    delivered: int
    per_s: float  # deliveries / (last answer - first job finished)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def group_stats(
    phase: str, group: str, sent: Sequence[Sent], finished: dict[str, float], got: dict[str, float]
) -> GroupStats:
    ids = [s.job_id for s in sent if s.group == group]
    latencies = [got[i] - finished[i] for i in ids if i in got and i in finished]
    if not latencies:
        return GroupStats(phase, group, len(ids), 0, 0.0, *([float("nan")] * 4))
    span = max(got[i] for i in ids if i in got) - min(finished[i] for i in ids if i in finished)
    ms = [x * 1e3 for x in latencies]
    p50, p90, p99 = (percentile(ms, q) for q in (50, 90, 99))
    return GroupStats(
        phase, group, len(ids), len(latencies), len(latencies) / span, p50, p90, p99, max(ms)
    )


async def measure_phase(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    phase: Phase,
    ws: Workspace,
    options: Options,
    progress: Progress,
) -> list[GroupStats]:
    api, recv = clients
    before = int((await recv.get("/count")).json())
    tick = _tick(progress, f"{phase.name} submit", phase.jobs)
    sent = await submit_phase(api, phase, str(recv.base_url), options.concurrency, tick)
    tick = _tick(progress, f"{phase.name} deliver", phase.jobs)
    timeout = 60 + phase.jobs * options.slow_s / 8  # enough for the slow half, 4 at a time
    got = await wait_delivered(recv, [s.job_id for s in sent], before, timeout, tick)
    finished = finished_at(ws.db_file, [s.job_id for s in sent])
    groups = (FAST, SLOW) if phase.mixed else (FAST,)
    return [group_stats(phase.name, g, sent, finished, got) for g in groups]


def _progress() -> Progress:
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console, refresh_per_second=4)


def _tick(progress: Progress, description: str, total: int) -> Tick:
    return partial(progress.advance, progress.add_task(description, total=total))


async def bench(options: Options, root: Path) -> list[GroupStats]:
    ws = prepare(root)
    key = await issue_key(ws)
    port, recv_port = free_port(), free_port()
    env = server_env(ws, port, HYPERLOCAL_ALLOW_PRIVATE_URLS="true")
    recv_env = server_env(ws, recv_port, BENCH_SLOW_S=str(options.slow_s))
    async with AsyncExitStack() as stack:
        url = stack.enter_context(
            running("_hyperlocal_app:create", port, env, root, root / "h.log")
        )
        recv_url = stack.enter_context(
            running("webhooks:receiver", recv_port, recv_env, root, root / "receiver.log")
        )
        limits = httpx.Limits(max_connections=options.concurrency)
        headers = {"authorization": f"Bearer {key}"}
        api = httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60)
        recv = httpx.AsyncClient(base_url=recv_url, timeout=60)
        for client in (api, recv):
            stack.push_async_callback(client.aclose)
        stats: list[GroupStats] = []
        with _progress() as progress:
            for phase in options.phases():
                stats += await measure_phase((api, recv), phase, ws, options, progress)
        return stats


# -- report -------------------------------------------------------------------------------------


def table(stats: Sequence[GroupStats], caption: str) -> Table:
    out = Table(title="Webhook deliveries: job finished -> receiver's 200", caption=caption)
    for column in ("phase", "receiver", "delivered", "per s", "p50 ms", "p90 ms", "p99 ms"):
        out.add_column(column, justify="left" if column in ("phase", "receiver") else "right")
    for s in stats:
        cells = (f"{s.per_s:.1f}", f"{s.p50_ms:.1f}", f"{s.p90_ms:.1f}", f"{s.p99_ms:.1f}")
        out.add_row(s.phase, s.group, f"{s.delivered}/{s.jobs}", *cells)
    return out


def write_json(data: dict[str, Any], results: Path) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"webhooks-{data['date'][:10]}.json"
    data["json"] = str(path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def execute(options: Options) -> dict[str, Any]:
    before = os.getloadavg()[0]
    machine = Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note}); {options.describe()}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-webhooks-") as tmp,
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        stats = runner.run(bench(options, Path(tmp)))
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    caption = (
        f"{machine.cpu}, {machine.cores} cores; the submitting client, hyperlocal and the "
        f"receiver share them. {options.describe()}. Load average {load[0]:.2f} before, "
        f"{load[1]:.2f} after."
    )
    console.print(table(stats, caption))
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    opts = {k: v for k, v in asdict(options).items() if k != "results"}
    data = {
        "name": "webhooks",
        "date": now,
        "machine": asdict(machine),
        "load_average": load,
        "options": opts,
        "groups": [asdict(s) for s in stats],
    }
    console.print(f"JSON: {write_json(data, options.results)}")
    return data


def run(quick: bool) -> dict[str, Any]:
    """For run_all.py: the preset sizes; returns what the JSON file holds."""
    return execute(Options.preset(quick))


def main(argv: Sequence[str] | None = None) -> None:
    execute(parse_args(argv))


if __name__ == "__main__":
    main()
