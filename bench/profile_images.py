#!/usr/bin/env python
"""Where one ``POST /v1/images/generate`` spends its time, in-process (no sockets).

Builds the same app as ``images.py`` (zero-work engine, SQLite in a temp dir), drives it
through ``httpx.ASGITransport`` and prints wall and CPU time per request, the time spent in
each step of the request path, and every SQL statement per request with its time (a slow
``BEGIN IMMEDIATE`` is a wait for SQLite's write lock).

Steps are timed by wrapping hyperlocal's own functions, not with cProfile: SQLAlchemy's async
layer runs on greenlets, which cProfile attributes to the wrong callers. At concurrency 1 the
steps run one after another, so their times add up; the rest is FastAPI, Starlette, pydantic,
the in-process client and the event loop.

    .venv/bin/python bench/profile_images.py [--requests 300] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from _hyperlocal_app import NullImageEngine
from _load import Target, percentile, run_round
from asgi_lifespan import LifespanManager
from images import BODY, PATH, Workspace, issue_key, prepare
from sqlalchemy import event

from hyperlocal.api.routes import _submit
from hyperlocal.app import create_app
from hyperlocal.core import generation, jobs, keys
from hyperlocal.core.ratelimit import RateLimiter
from hyperlocal.queue.runner import JobRunner
from hyperlocal.settings import Settings
from hyperlocal.store import prepared
from hyperlocal.store.db import Database

Timings = defaultdict[str, list[float]]

# (label, owner, attribute): the request path in order, as the route and the worker run it.
STEPS: tuple[tuple[str, object, str], ...] = (
    ("auth: key lookup (read txn)", keys, "authenticate"),
    ("rate limit", RateLimiter, "hit"),
    ("submit and run (whole)", _submit, "generate"),
    ("submit: validate, charge + job row", generation, "_submit"),
    ("worker: claim (txn), queued jobs only", JobRunner, "_claim"),
    ("worker: engine", JobRunner, "_execute"),
    ("worker: storage write", JobRunner, "_store_outputs"),
    ("worker: complete (txn)", JobRunner, "_complete"),
    ("read back the job (read txn), if not run in its task", jobs, "get_job"),
)


def _settings(ws: Workspace) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=ws.root / "hyperlocal",
        database_url=ws.database_url,
        redis_url=None,
        catalog=ws.catalog,
        bootstrap_keys=False,
    )


@asynccontextmanager
async def in_process(
    ws: Workspace, key: str, concurrency: int
) -> AsyncIterator[tuple[Target, Database]]:
    png = ws.png.read_bytes()
    app = create_app(_settings(ws), engines={"null-image": lambda _c: NullImageEngine(png)})
    async with LifespanManager(app) as manager:
        auth = {"authorization": f"Bearer {key}"}
        target = Target("hyperlocal", "http://127.0.0.1", auth, concurrency)
        target.client._transport = httpx.ASGITransport(app=manager.app)
        try:
            yield target, app.state.services.db
        finally:
            await target.aclose()


def _timed(fn: Callable[..., Awaitable[Any]], bucket: list[float]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - start)

    return wrapper


@contextmanager
def step_timings() -> Iterator[Timings]:
    timings: Timings = defaultdict(list)
    with ExitStack() as stack:
        for label, owner, name in STEPS:
            if not hasattr(owner, name):  # the code moved on: say so rather than fail
                print(f"note: {label}: {owner!r} has no {name!r} any more; not timed")
                continue
            wrapper = _timed(getattr(owner, name), timings[label])
            stack.enter_context(mock.patch.object(owner, name, wrapper))
        yield timings


@contextmanager
def statement_timings(db: Database) -> Iterator[Timings]:
    """Wall time of every SQL statement, by its first two words, while the block runs: those
    SQLAlchemy sends, and the prepared ones run straight on SQLite (``store.prepared``)."""
    timings: Timings = defaultdict(list)
    sync_engine = db.engine.sync_engine

    def before(conn: Any, *_args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        timings[" ".join(statement.split()[:2])].append(time.perf_counter() - conn.info["bench_t0"])

    bypass = prepared._run

    def timed_bypass(conn: Any, compiled: Any, params: Any) -> Any:
        start = time.perf_counter()
        try:
            return bypass(conn, compiled, params)
        finally:
            words = " ".join(compiled.sql.split()[:2])
            timings[f"{words} (bypass)"].append(time.perf_counter() - start)

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    try:
        with mock.patch.object(prepared, "_run", timed_bypass):
            yield timings
    finally:
        event.remove(sync_engine, "before_cursor_execute", before)
        event.remove(sync_engine, "after_cursor_execute", after)


def print_timings(title: str, timings: Timings, requests: int, ordered: bool = False) -> None:
    print(f"\n{title:<36}{'per req':>8}{'p50 ms':>9}{'p99 ms':>9}{'ms/req':>9}")
    items = list(timings.items())
    if not ordered:
        items.sort(key=lambda kv: -sum(kv[1]))
    for name, values in items:
        if values:
            print(
                f"{name[:35]:<36}{len(values) / requests:>8.2f}"
                f"{percentile(values, 50) * 1e3:>9.2f}{percentile(values, 99) * 1e3:>9.2f}"
                f"{sum(values) / requests * 1e3:>9.2f}"
            )


async def measure(target: Target, db: Database, requests: int, concurrency: int) -> None:
    with step_timings() as steps, statement_timings(db) as statements:
        wall, cpu = time.perf_counter(), time.process_time()
        done = await run_round(target, PATH, BODY, requests, concurrency)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{done.ok} ok, {done.errors} errors, concurrency {concurrency}: "
        f"{wall / requests * 1e3:.2f} ms wall and {cpu / requests * 1e3:.2f} ms CPU per request "
        f"(in-process client included); latency p50 "
        f"{percentile(done.latencies_s, 50) * 1e3:.1f} ms, "
        f"p99 {percentile(done.latencies_s, 99) * 1e3:.1f} ms"
    )
    print_timings("step", steps, requests, ordered=True)
    print_timings("SQL statement", statements, requests)


async def profile(ws: Workspace, requests: int, concurrency: int) -> None:
    key = await issue_key(ws)
    async with in_process(ws, key, concurrency) as (target, db):
        await run_round(target, PATH, BODY, 50, concurrency)  # warm-up: pools, caches
        await measure(target, db, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hyperlocal-profile-") as tmp:
        asyncio.run(profile(prepare(Path(tmp)), args.requests, args.concurrency))


if __name__ == "__main__":
    main()
