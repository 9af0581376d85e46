#!/usr/bin/env python
"""Benchmark ``POST /v1/images/generate``: hyperlocal against a bare Starlette endpoint.

Both run as real uvicorn processes on 127.0.0.1 with the same options. hyperlocal serves a
catalogue model backed by a zero-work engine, so what differs is the gateway: auth, rate limit,
validation, the ledger charge and job row, the queue, the storage write. The bare endpoint
parses the same body and writes the same PNG. Rounds alternate between the two, so drift on
the machine falls on both. See bench/README.md.

    .venv/bin/python bench/images.py [--requests 2000] [--concurrency 16] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from _load import Round, Target, run_round
from _report import Machine, append_markdown, markdown_line, summarize, table, write_json
from _server import BENCH_DIR, HOST, free_port, running, uvicorn_options
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hyperlocal.core.keys import KeySpec, create_key
from hyperlocal.store.db import Database

PATH = "/v1/images/generate"
MODEL = "bench-null-t2i"
BODY = json.dumps({"model": MODEL, "prompt": "a lighthouse on a cliff at dusk"}).encode()
CATALOG = f"""\
# Written by bench/images.py: one image model served by the zero-work engine.
[[model]]
id = "{MODEL}"
category = "image"
name = "Benchmark null image"
engine = "null-image"
timeout_s = 30
price = {{ kind = "flat", credits = 1 }}
inputs.prompt = {{ type = "string", required = true }}
"""
# Limits far above anything one run uses, so the key never hits them: the bench measures the
# cost of checking the rate limit and charging credits, never a rejection.
BENCH_KEY = KeySpec(name="bench", credits=10**9, rate_limit=10**9, max_running_jobs=10**5)

console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    requests: int  # per target, over all rounds
    concurrency: int
    rounds: int
    warmup: int
    results: Path

    @property
    def per_round(self) -> int:
        return math.ceil(self.requests / self.rounds)

    def describe(self) -> str:
        return (
            f"{self.rounds} rounds x {self.per_round} requests per target, "
            f"concurrency {self.concurrency}, warm-up {self.warmup}"
        )


@dataclass(frozen=True, slots=True)
class Workspace:
    """Everything one run writes, in a temporary directory removed afterwards."""

    root: Path

    @property
    def png(self) -> Path:
        return self.root / "image.png"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.toml"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.root / 'hyperlocal' / 'hyperlocal.db'}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = partial(parser.add_argument, type=_positive)
    add("--requests", default=2000, help="per target, over all rounds (default 2000)")
    add("--concurrency", default=16, help="connections per target (default 16)")
    add("--rounds", default=4, help="alternating rounds (default 4)")
    add("--warmup", default=200, help="warm-up requests per target (default 200)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    return Options(args.requests, args.concurrency, args.rounds, args.warmup, args.results)


def prepare(root: Path) -> Workspace:
    from PIL import Image

    ws = Workspace(root)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (40, 90, 160)).save(buf, format="PNG")
    ws.png.write_bytes(buf.getvalue())
    ws.catalog.write_text(CATALOG)
    return ws


async def issue_key(ws: Workspace) -> str:
    """Creates the bench key in a fresh database; the raw key is kept in memory only."""
    (ws.root / "hyperlocal").mkdir()
    db = Database(ws.database_url)
    try:
        await db.migrate()
        return (await create_key(db, BENCH_KEY)).key
    finally:
        await db.aclose()


def _clean_env() -> dict[str, str]:
    # An operator's HYPERLOCAL_* (a Redis or PostgreSQL URL, say) must not leak into the run.
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}


def hyperlocal_env(ws: Workspace, port: int) -> dict[str, str]:
    return _clean_env() | {
        "BENCH_PNG": str(ws.png),
        "HYPERLOCAL_DATA_DIR": str(ws.root / "hyperlocal"),
        "HYPERLOCAL_DATABASE_URL": ws.database_url,
        "HYPERLOCAL_CATALOG": str(ws.catalog),
        "HYPERLOCAL_PUBLIC_URL": f"http://{HOST}:{port}",
        "HYPERLOCAL_BOOTSTRAP_KEYS": "false",
        "HYPERLOCAL_LOG_LEVEL": "WARNING",
    }


def bare_env(ws: Workspace, port: int) -> dict[str, str]:
    return _clean_env() | {
        "BENCH_PNG": str(ws.png),
        "BENCH_BARE_DIR": str(ws.root / "bare"),
        "BENCH_PUBLIC_URL": f"http://{HOST}:{port}",
    }


async def start_targets(
    stack: AsyncExitStack, ws: Workspace, key: str, concurrency: int
) -> list[Target]:
    auth = {"authorization": f"Bearer {key}"}
    targets = []
    for name, app, env_for, headers in (
        ("hyperlocal", "_hyperlocal_app:create", hyperlocal_env, auth),
        ("bare", "_bare_app:create", bare_env, {}),
    ):
        port = free_port()
        log = ws.root / f"{name}.log"
        url = stack.enter_context(running(app, port, env_for(ws, port), ws.root, log))
        target = Target(name, url, headers, concurrency)
        stack.push_async_callback(target.aclose)
        targets.append(target)
    return targets


async def check(target: Target) -> None:
    """One request first, so a broken setup fails loudly instead of timing errors."""
    response = await target.client.post(
        PATH, content=BODY, headers={"content-type": "application/json"}
    )
    if response.status_code != 200 or not response.json().get("data"):
        raise RuntimeError(f"{target.name}: HTTP {response.status_code}: {response.text[:300]}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
    )


def _advance(progress: Progress, description: str, total: int) -> Callable[[], None]:
    return partial(progress.advance, progress.add_task(description, total=total))


async def measure(targets: Sequence[Target], options: Options) -> list[Round]:
    load = partial(run_round, path=PATH, body=BODY, concurrency=options.concurrency)
    rounds: list[Round] = []
    with _progress() as progress:
        for target in targets:
            await check(target)
            tick = _advance(progress, f"warm-up {target.name}", options.warmup)
            await load(target, requests=options.warmup, advance=tick)
        ticks = {
            t.name: _advance(progress, t.name, options.per_round * options.rounds) for t in targets
        }
        for index in range(options.rounds):  # A, B, A, B: drift falls on both
            for target in targets:
                rounds.append(
                    await load(
                        target, requests=options.per_round, index=index, advance=ticks[target.name]
                    )
                )
    return rounds


async def bench(options: Options, root: Path) -> list[Round]:
    ws = prepare(root)
    key = await issue_key(ws)
    async with AsyncExitStack() as stack:
        targets = await start_targets(stack, ws, key, options.concurrency)
        return await measure(targets, options)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    load_before = os.getloadavg()[0]
    machine = Machine.current(uvicorn_options())
    console.print(f"{machine.cpu}, {machine.cores} cores ({machine.note}); {options.describe()}")
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-bench-") as tmp,
        asyncio.Runner(loop_factory=_loop_factory()) as runner,
    ):
        rounds = runner.run(bench(options, Path(tmp)))
    summary = summarize(rounds, machine, options.describe(), load_before)
    console.print(table(summary))
    console.print(f"JSON: {write_json(summary, options.results)}")
    console.print(f"history: {append_markdown(summary, options.results)}")
    console.print(markdown_line(summary), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
