#!/usr/bin/env python
"""Benchmark what Prometheus metrics cost: hyperlocal with metrics on against the same server
with ``HYPERLOCAL_METRICS=false``, in one run, on the images and chat-relay paths.

Four real uvicorn processes (images on and off, each with its zero-work engine and its own
SQLite; chat on and off, relaying to one fake upstream) plus the upstream. Throughput rounds
alternate on, off, off, on, ... so that drift on the machine falls on both; the chat's time to
first token is measured request by request, interleaved. The budget (issue 19): metrics may
cost at most 3% of throughput and 50 us of p50.

    .venv/bin/python bench/metrics_cost.py [--requests 2000] [--concurrency 16] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import chat_relay
import images
import psutil
from _load import Round, Target, percentile, run_round
from _server import BENCH_DIR, free_port, running
from rich.console import Console
from rich.table import Table

console = Console(width=140)
SIDES = ("on", "off")


@dataclass(frozen=True, slots=True)
class Options:
    requests: int  # per server and path, over all rounds
    concurrency: int
    rounds: int
    sequential: int  # chat: streamed requests per server for the time to first token
    results: Path


@dataclass(frozen=True, slots=True)
class Cost:
    """On a shared machine, other work comes and goes between rounds: each figure is the
    median over neighbouring pairs (one round on, one off), and the totals are shown too."""

    path: str
    rps_on: float
    rps_off: float
    p50_on_us: float
    p50_off_us: float
    throughput_ratio: float  # median of the pairs' on / off
    p50_added_us: float  # median of the pairs' p50 on - off
    cpu_on_us: float = float("nan")  # the server's CPU time per request, over every round
    cpu_off_us: float = float("nan")


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="per server and path")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=200, help="chat TTFT samples")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    a = parser.parse_args(argv)
    return Options(a.requests, a.concurrency, a.rounds, a.sequential, a.results)


def _metrics(side: str) -> dict[str, str]:
    return {"HYPERLOCAL_METRICS": "true" if side == "on" else "false"}


async def image_servers(stack: AsyncExitStack, root: Path, concurrency: int) -> list[Target]:
    targets = []
    for side in SIDES:
        ws = images.prepare(_mkdir(root / f"images-{side}"))
        auth = {"authorization": f"Bearer {await images.issue_key(ws)}"}
        port = free_port()
        env = images.hyperlocal_env(ws, port) | _metrics(side)
        log = ws.root / "server.log"
        url = stack.enter_context(running("_hyperlocal_app:create", port, env, ws.root, log))
        targets.append(_target(stack, side, url, auth, concurrency))
    return targets


async def chat_servers(stack: AsyncExitStack, root: Path, concurrency: int) -> list[Target]:
    port = free_port()
    env = chat_relay._clean_env()
    upstream = stack.enter_context(
        running("chat_relay:fake_upstream", port, env, root, root / "upstream.log")
    )
    targets = []
    for side in SIDES:
        where = _mkdir(root / f"chat-{side}")
        auth = {"authorization": f"Bearer {await chat_relay._hyperlocal_key(where)}"}
        port = free_port()
        env = chat_relay._hyperlocal_env(where, upstream, port) | _metrics(side)
        log = where / "server.log"
        url = stack.enter_context(running("hyperlocal.app:create_app", port, env, where, log))
        targets.append(_target(stack, side, url, auth, concurrency))
    return targets


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _target(
    stack: AsyncExitStack, side: str, url: str, auth: dict[str, str], concurrency: int
) -> Target:
    target = Target(side, url, auth, concurrency)
    stack.push_async_callback(target.aclose)
    return target


def server_process(port: int | None) -> psutil.Process:
    """The uvicorn process listening on ``port``: its CPU time is what metrics cost,
    whatever else the machine runs meanwhile."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise RuntimeError(f"no process listens on {port}")


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def alternate(
    targets: Sequence[Target], path: str, body: bytes, options: Options
) -> tuple[list[Round], dict[str, float]]:
    """Warm both, then rounds in the order on, off, off, on, ...; the rounds, and each
    server's CPU microseconds per request over them."""
    for target in targets:
        await run_round(target, path, body, 200, options.concurrency)
    per_round = -(-options.requests // options.rounds)
    processes = {t.name: server_process(t.client.base_url.port) for t in targets}
    cpu = dict.fromkeys(processes, 0.0)
    rounds = []
    for index in range(options.rounds):
        order = targets if index % 2 == 0 else list(reversed(targets))
        for target in order:
            before = _cpu_s(processes[target.name])
            rounds.append(
                await run_round(target, path, body, per_round, options.concurrency, index=index)
            )
            cpu[target.name] += _cpu_s(processes[target.name]) - before
    served = {t.name: sum(r.ok for r in rounds if r.target == t.name) for t in targets}
    return rounds, {side: cpu[side] / served[side] * 1e6 for side in cpu}


def cost(path: str, measured: tuple[Sequence[Round], dict[str, float]]) -> Cost:
    rounds, cpu = measured

    def rps(side: str) -> float:
        mine = [r for r in rounds if r.target == side]
        return sum(r.ok for r in mine) / sum(r.elapsed_s for r in mine)

    def p50(side: str) -> float:
        latencies = [t for r in rounds if r.target == side for t in r.latencies_s]
        return percentile(latencies, 50) * 1e6

    pairs = _pairs(rounds)
    ratio = statistics.median(on.rps / off.rps for on, off in pairs)
    added = statistics.median((_p50(on) - _p50(off)) * 1e6 for on, off in pairs)
    figures = (rps("on"), rps("off"), p50("on"), p50("off"), ratio, added)
    return Cost(path, *figures, cpu["on"], cpu["off"])


def _pairs(rounds: Sequence[Round]) -> list[tuple[Round, Round]]:
    by_index: dict[int, dict[str, Round]] = {}
    for r in rounds:
        by_index.setdefault(r.index, {})[r.target] = r
    return [(pair["on"], pair["off"]) for pair in by_index.values()]


def _p50(r: Round) -> float:
    return percentile(r.latencies_s, 50)


def first_token_cost(samples: dict[str, list[float]]) -> Cost:
    """From requests interleaved on, off, on, ...: each pair's difference, then the median."""
    on, off = samples["on"], samples["off"]
    added = statistics.median((a - b) * 1e6 for a, b in zip(on, off, strict=True))
    p50_on, p50_off = percentile(on, 50) * 1e6, percentile(off, 50) * 1e6
    return Cost("chat relay (first token)", 0, 0, p50_on, p50_off, float("nan"), added)


async def time_to_first_token(targets: Sequence[Target], count: int) -> dict[str, list[float]]:
    """Seconds to the first token of streamed requests, interleaved on, off, on, ..."""
    for target in targets:
        for _ in range(20):
            await chat_relay.first_token(target)
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(count):
        for target in targets:
            samples[target.name].append((await chat_relay.first_token(target))[0])
    return samples


async def bench(options: Options, root: Path) -> list[Cost]:
    async with AsyncExitStack() as stack:
        image = await image_servers(stack, root, options.concurrency)
        chat = await chat_servers(stack, root, options.concurrency)
        costs = [cost("images", await alternate(image, images.PATH, images.BODY, options))]
        body = json.dumps({"model": chat_relay.MODEL, "messages": chat_relay.MESSAGES})
        relay = await alternate(chat, chat_relay.PATH, body.encode(), options)
        costs.append(cost("chat relay (whole reply)", relay))
        costs.append(first_token_cost(await time_to_first_token(chat, options.sequential)))
    return costs


def table(costs: Sequence[Cost], load: tuple[float, float]) -> Table:
    caption = f"Load average {load[0]:.2f} before, {load[1]:.2f} after; budget: >= 0.97, <= 50 us"
    out = Table(title="Metrics on / off", caption=caption)
    columns = ("path", "req/s on", "req/s off", "ratio (median)", "p50 on us", "p50 off us")
    for column in (*columns, "added (median)", "CPU us/req on", "off"):
        out.add_column(column, justify="left" if column == "path" else "right")
    for c in costs:
        out.add_row(
            c.path,
            f"{c.rps_on:.0f}",
            f"{c.rps_off:.0f}",
            f"{c.throughput_ratio:.3f}",
            f"{c.p50_on_us:.0f}",
            f"{c.p50_off_us:.0f}",
            f"{c.p50_added_us:+.0f} us",
            f"{c.cpu_on_us:.0f}",
            f"{c.cpu_off_us:.0f}",
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="hyperlocal-bench-") as tmp,
        asyncio.Runner(loop_factory=images._loop_factory()) as runner,
    ):
        costs = runner.run(bench(options, Path(tmp)))
    load = (round(before, 2), round(os.getloadavg()[0], 2))
    console.print(table(costs, load))
    options.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    out = options.results / f"metrics-cost-{stamp[:10]}.json"
    figures = [asdict(c) | {"throughput_ratio": c.throughput_ratio} for c in costs]
    out.write_text(json.dumps({"date": stamp, "load_average": load, "costs": figures}, indent=2))
    console.print(f"JSON: {out}")


if __name__ == "__main__":
    main()
