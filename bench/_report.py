"""Turns measured rounds into a summary: a rich table, a JSON file and a markdown line."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from _load import Round, percentile
from rich.table import Table

__all__ = [
    "Machine",
    "Summary",
    "TargetStats",
    "append_markdown",
    "markdown_line",
    "summarize",
    "table",
    "write_json",
]

LOAD_NOTE = "the load generator (httpx, one process) shares these cores with both servers"
MARKDOWN_HEADER = (
    "| date | machine | workload | hyperlocal req/s, p50, p99 | bare req/s, p50, p99 "
    "| ratios (throughput, p50, p99) |\n|---|---|---|---|---|---|\n"
)


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    python: str
    platform: str
    uvicorn: str  # the options both servers ran with
    note: str = LOAD_NOTE

    @classmethod
    def current(cls, uvicorn: Sequence[str]) -> Machine:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return cls(
            _cpu_model(),
            cores or 1,
            platform.python_version(),
            platform.platform(),
            " ".join(uvicorn),
        )


@dataclass(frozen=True, slots=True)
class TargetStats:
    name: str
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    round_rps: tuple[float, ...]  # one per round, to show drift

    @classmethod
    def of(cls, name: str, rounds: Sequence[Round]) -> TargetStats:
        latencies = [t for r in rounds for t in r.latencies_s]
        ok, elapsed = sum(r.ok for r in rounds), sum(r.elapsed_s for r in rounds)
        return cls(
            name,
            ok,
            sum(r.errors for r in rounds),
            ok / elapsed,
            percentile(latencies, 50) * 1e3,
            percentile(latencies, 99) * 1e3,
            tuple(round(r.rps, 1) for r in rounds),
        )


@dataclass(frozen=True, slots=True)
class Ratios:
    """hyperlocal / bare. Throughput below 1 and latency above 1 mean hyperlocal is slower."""

    throughput: float
    p50: float
    p99: float


@dataclass(frozen=True, slots=True)
class Summary:
    date: str
    machine: Machine
    workload: str
    load_average: tuple[float, float]  # 1-minute, before and after: other work on the machine
    hyperlocal: TargetStats
    bare: TargetStats
    ratios: Ratios


def summarize(
    rounds: Sequence[Round], machine: Machine, workload: str, load_before: float
) -> Summary:
    hyper = TargetStats.of("hyperlocal", [r for r in rounds if r.target == "hyperlocal"])
    bare = TargetStats.of("bare", [r for r in rounds if r.target == "bare"])
    ratios = Ratios(hyper.rps / bare.rps, hyper.p50_ms / bare.p50_ms, hyper.p99_ms / bare.p99_ms)
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    load = (round(load_before, 2), round(os.getloadavg()[0], 2))
    return Summary(now, machine, workload, load, hyper, bare, ratios)


def table(summary: Summary) -> Table:
    m, (before, after) = summary.machine, summary.load_average
    caption = (
        f"{m.cpu}, {m.cores} cores; {m.note}. {summary.workload}. "
        f"Load average {before:.2f} before, {after:.2f} after."
    )
    out = Table(title="POST /v1/images/generate", caption=caption)
    for column in ("", "req/s", "p50 ms", "p99 ms", "requests", "errors", "req/s by round"):
        out.add_column(column, justify="left" if not column else "right")
    for s in (summary.hyperlocal, summary.bare):
        rounds = " ".join(f"{x:.0f}" for x in s.round_rps)
        out.add_row(
            s.name,
            f"{s.rps:.0f}",
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            str(s.requests),
            str(s.errors),
            rounds,
        )
    r = summary.ratios
    out.add_row(
        "hyperlocal / bare",
        f"{r.throughput:.2f}x",
        f"{r.p50:.2f}x",
        f"{r.p99:.2f}x",
        "",
        "",
        "",
        style="bold",
    )
    return out


def markdown_line(summary: Summary) -> str:
    m, h, b, r = summary.machine, summary.hyperlocal, summary.bare, summary.ratios
    before, after = summary.load_average
    return (
        f"| {summary.date[:10]} | {m.cpu}, {m.cores} cores shared with the load generator, "
        f"load average {before:.1f} to {after:.1f} "
        f"| {summary.workload} | {h.rps:.0f}, {h.p50_ms:.1f} ms, {h.p99_ms:.1f} ms "
        f"| {b.rps:.0f}, {b.p50_ms:.1f} ms, {b.p99_ms:.1f} ms "
        f"| {r.throughput:.2f}x, {r.p50:.2f}x, {r.p99:.2f}x |"
    )


def write_json(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"images-{summary.date[:10]}.json"
    data = asdict(summary) | {"markdown": markdown_line(summary)}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def append_markdown(summary: Summary, folder: Path) -> Path:
    """Keeps a history of runs in ``images.md``; the JSON files are not tracked by git."""
    path = folder / "images.md"
    header = "" if path.exists() else "# POST /v1/images/generate\n\n" + MARKDOWN_HEADER
    with path.open("a") as out:
        out.write(header + markdown_line(summary) + "\n")
    return path


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    names = (line.partition(":")[2].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.processor() or "unknown CPU")
