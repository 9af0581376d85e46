#!/usr/bin/env python
"""Run every benchmark in bench/ and write one report; ``make bench`` runs this.

    .venv/bin/python bench/run_all.py                  # quick sizes
    .venv/bin/python bench/run_all.py --full           # full sizes (10,000 SSE streams, ...)
    .venv/bin/python bench/run_all.py --only webhooks sse_streams

A module with ``run(quick: bool) -> dict`` is imported and called; any other runs as a script
with the arguments in ``SCRIPTS``, and its JSON result is read back. A missing or failing one
is recorded as failed, with its error, and the rest still run. The report is
``bench/results/<date>.md``: one table of every figure, with a ratio where two things were
measured side by side, and PNG charts beside it (``_plots.py``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"  # where every benchmark writes its JSON by default
ORDER = (
    "images",
    "jobs_poll",
    "submits",
    "chat_relay",
    "webhooks",
    "providers",
    "sse_streams",
    "scaling",
    "gpu_serving",
)
Data = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Script:
    """How to run a module that has no ``run(quick)``: its arguments and where its JSON goes."""

    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    stem: str = ""  # it writes results/<stem>-<date>.json
    json_flag: bool = False  # it writes JSON only to the path given with --json


SCRIPTS = {
    "images": Script(("--requests", "500", "--rounds", "2"), stem="images"),
    "submits": Script(
        (
            *("--submits", "500", "--polls", "500", "--backends", "sqlite", "postgres"),
            *("--workers", "1", "2", "--seconds", "6"),
        ),
        stem="submits",
    ),
    "chat_relay": Script(
        ("--requests", "400", "--rounds", "2", "--sequential", "40"), stem="chat-relay"
    ),
    # the CPU part only; its --gpu part runs by hand on a CUDA machine (bench/README.md)
    "gpu_serving": Script(("--images", "12"), ("--images", "40"), json_flag=True),
}
ENGINES = Script(("--repeats", "1"), ("--repeats", "3"), json_flag=True)


def benches() -> list[str]:
    engines = sorted(p.stem for p in BENCH_DIR.glob("engines_*.py"))
    return [*ORDER, *engines]


# -- running one ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    name: str
    ok: bool
    seconds: float
    data: Data = field(default_factory=dict)
    error: str = ""


def run_one(name: str, quick: bool) -> Outcome:
    if not (BENCH_DIR / f"{name}.py").exists():
        return Outcome(name, False, 0.0, error=f"missing: bench/{name}.py does not exist (yet)")
    start = time.monotonic()
    try:
        data = _call(name, quick)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: one benchmark must not end the run
        return Outcome(name, False, time.monotonic() - start, error=_describe(exc))
    return Outcome(name, True, time.monotonic() - start, data)


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}".replace("\n", " ")[:500]


def _call(name: str, quick: bool) -> Data:
    module = importlib.import_module(name)
    run = getattr(module, "run", None)
    if _is_contract(run):
        data: Data = run(quick)  # type: ignore[misc]
        return data
    return _script(name, quick)


def _is_contract(run: object) -> bool:
    """``run(quick: bool)``, not some other ``run`` a module happens to have."""
    if not callable(run) or inspect.iscoroutinefunction(run):
        return False
    return list(inspect.signature(run).parameters) == ["quick"]


def _script(name: str, quick: bool) -> Data:
    spec = ENGINES if name.startswith("engines_") else SCRIPTS.get(name, Script())
    args = list(spec.quick if quick else spec.full)
    out = RESULTS / f"{name.replace('_', '-')}-{datetime.now():%Y-%m-%d}.json"
    if spec.json_flag:
        args += ["--json", str(out)]
    started = time.time()
    command = [sys.executable, str(BENCH_DIR / f"{name}.py"), *args]
    done = subprocess.run(command, cwd=ROOT, stderr=subprocess.PIPE, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        raise RuntimeError(f"exit status {done.returncode}: {last}")
    return _read_json(out if spec.json_flag else None, spec.stem or name, started)


def _read_json(path: Path | None, stem: str, since: float) -> Data:
    if path is None:
        fresh = [p for p in RESULTS.glob(f"{stem}-*.json") if p.stat().st_mtime >= since - 1]
        path = max(fresh, key=lambda p: p.stat().st_mtime, default=None)
    if path is None or not path.exists():
        raise RuntimeError(f"it wrote no results/{stem}-<date>.json")
    data: Data = json.loads(path.read_text()) | {"json": str(path)}
    return data


# -- figures ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    detail: str = ""
    baseline: str = ""  # what the ratio compares against
    ratio: float | None = None


def compared(
    name: str, value: float, unit: str, base: float, label: str, *, detail: str = ""
) -> Figure:
    """``value`` against ``base``, in the same unit; the ratio is value / base."""
    ratio = value / base if base else None
    return Figure(name, value, unit, detail, f"{label} {_number(base)} {unit}", ratio)


def paired(data: Data) -> list[Figure]:
    """images.py and jobs_poll.py: hyperlocal against a bare endpoint."""
    h, b = data["hyperlocal"], data["bare"]
    detail = f"{h['requests']} requests, {h['errors']} errors"
    return [
        compared("hyperlocal throughput", h["rps"], "req/s", b["rps"], "bare", detail=detail),
        compared("hyperlocal p50", h["p50_ms"], "ms", b["p50_ms"], "bare"),
        compared("hyperlocal p99", h["p99_ms"], "ms", b["p99_ms"], "bare"),
    ]


def _latency(row: Data, unit: str = "ms") -> str:
    return f"p50 {_number(row['p50_ms'])} {unit}, p99 {_number(row['p99_ms'])} {unit}"


def submits(data: Data) -> list[Figure]:
    rows = data["phases"]
    return [
        Figure(
            f"{p['backend']} {p['phase']} ({p.get('client', 'httpx')})",
            p["rps"],
            "req/s",
            _latency(p),
        )
        for p in rows
    ]


def chat_relay(data: Data) -> list[Figure]:
    ttft, whole = data["ttft_p50_ms"], data["whole_p50_ms"]
    out = [
        compared("time to first token p50", ttft["hyperlocal"], "ms", ttft["upstream"], "direct"),
        Figure(
            "added per request p50",
            data["overhead_p50_ms"],
            "ms",
            "goal: under 1 ms",
            f"direct {_number(whole['upstream'])} ms",
        ),
    ]
    if "alone_overhead_p50_ms" in data:
        out.append(
            Figure(
                "added per request p50, no stream between",
                data["alone_overhead_p50_ms"],
                "ms",
                "goal: under 1 ms",
                f"the bare relay adds {_number(data['bare_alone_overhead_p50_ms'])} ms",
            )
        )
    if "bare" in whole:  # the bare relay: what any Python relay adds on this machine
        out.append(
            Figure(
                "added by the bare relay p50",
                data["bare_overhead_p50_ms"],
                "ms",
                "the floor: Starlette and the same HTTP client, nothing else",
                f"hyperlocal adds {_number(data['over_bare_p50_ms'])} ms over it",
            )
        )
    rates = {t["target"]: t for t in data["throughput"]}
    for name, t in rates.items():
        out.append(Figure(f"{name} throughput", t["rps"], "req/s", _latency(t)))
    for peer, label in (("litellm", "LiteLLM"), ("bare", "the bare relay")):
        if "hyperlocal" in rates and peer in rates:
            mine, theirs = rates["hyperlocal"]["rps"], rates[peer]["rps"]
            out.append(compared(f"hyperlocal throughput vs {peer}", mine, "req/s", theirs, label))
    return out


def webhooks(data: Data) -> list[Figure]:
    """Each receiver's deliveries/s; for the fast one in a mix, its p99 against the fast-only
    phase at the same pace (near 1: the slow receiver does not hold it up)."""
    groups = {(g["phase"], g["group"]): g for g in data["groups"]}
    out = []
    for (phase, group), g in groups.items():
        name, detail = f"{phase}, {group} receiver", f"{g['delivered']}/{g['jobs']}, {_latency(g)}"
        out.append(Figure(name, g["per_s"], "deliveries/s", detail))
        alone = groups.get((phase.replace("mixed", "fast"), "fast"))
        if "mixed" in phase and group == "fast" and alone:
            p99 = f"{phase}, fast receiver p99"
            out.append(compared(p99, g["p99_ms"], "ms", alone["p99_ms"], "fast only"))
    return out


def providers(data: Data) -> list[Figure]:
    """A fal job through hyperlocal against the same job with httpx, polled and webhooked."""
    paths = {(p["variant"], p["side"]): p for p in data["paths"]}
    concurrency = data["options"]["concurrency"]
    out = []
    for a in data["added"]:
        direct, hyper = paths[a["variant"], "direct"], paths[a["variant"], "hyperlocal"]
        detail = f"goal: at most 5 ms; p99 +{_number(a['p99_ms'])} ms"
        out.append(
            Figure(
                f"{a['variant']}: added per job p50",
                a["p50_ms"],
                "ms",
                detail,
                f"direct {_number(direct['p50_ms'])} ms",
            )
        )
        name = f"{a['variant']}: jobs/s at {concurrency} in flight"
        rate, base = hyper["jobs_per_s"], direct["jobs_per_s"]
        loaded = (
            f"p50 {_number(hyper['loaded_p50_ms'])} ms, p99 {_number(hyper['loaded_p99_ms'])} ms"
        )
        out.append(compared(name, rate, "jobs/s", base, "direct", detail=loaded))
    return out


def sse_streams(data: Data) -> list[Figure]:
    d = data
    alive = f"of {d['streams']}; {d['alive_at_end']} still open at the end"
    if d["first_close_s"]:
        alive += f"; the server ended the first after {d['first_close_s']:.1f} s"
    opening = f"p50 {_number(d['open_p50_ms'])} ms, p99 {_number(d['open_p99_ms'])} ms each"
    base, cpu = f"base {d['rss_base_mib']:.0f} MiB", f"{d['cpu_open_pct']:.0f}% while opening"
    out = [
        Figure("streams opened", d["opened"], "streams", alive),
        compared("server RSS, peak", d["rss_peak_mib"], "MiB", d["goal_mib"], "goal", detail=base),
        Figure("server RSS per stream", d["kib_per_stream"], "KiB"),
        Figure("time to open all", d["open_s"], "s", opening),
        Figure("server CPU, holding", d["cpu_hold_pct"], "% of a core", cpu),
    ]
    out += [Figure(f"failed: {why}", n, "streams") for why, n in d["failures"].items()]
    errors = d.get("server_errors", {}).items()
    return out + [Figure("server log", n, "lines", line.replace("|", "/")) for line, n in errors]


def scaling(data: Data) -> list[Figure]:
    one = {p["mode"]: p for p in data["points"] if p["workers"] == 1}
    out = []
    for p in data["points"]:
        name = f"{p['mode']}, {p['workers']} worker(s)"
        detail = f"{data['workload']}; job p50 {p['job_p50_s']:.2f} s, CPU {p['cpu_pct']:.0f}%"
        rate, base = p["jobs_per_s"], one.get(p["mode"]) if p["workers"] != 1 else None
        if base:
            out.append(
                compared(name, rate, "jobs/s", base["jobs_per_s"], "1 worker", detail=detail)
            )
        else:
            out.append(Figure(name, rate, "jobs/s", detail))
    out += [Figure(f"skipped: {what}", math.nan, "", why) for what, why in data["skipped"].items()]
    return out


def gpu_serving(data: Data) -> list[Figure]:
    """The time per image through hyperlocal against the bare pipeline loop."""
    h, b = data["hyperlocal"], data["bare"]
    goal = f"overhead {data['overhead_pct']:+.1f}% (goal <= {data['goal_pct']:.0f}%)"
    paired = f"{data['paired_overhead_pct']:+.1f}%, {data['paired_overhead_ms']:+.1f} ms"
    return [
        compared("hyperlocal per image p50", h["p50_ms"], "ms", b["p50_ms"], "bare", detail=goal),
        Figure("overhead, median of the pairs", data["paired_overhead_pct"], "%", paired),
        compared("CPU per image p50", h["cpu_p50_ms"], "ms", b["cpu_p50_ms"], "bare"),
    ]


def generic(data: Data) -> list[Figure]:
    """Engine timings (a list of cases with ``wall_s``), else the top-level numbers."""
    cases = next(
        (
            v
            for v in data.values()
            if isinstance(v, list) and v and isinstance(v[0], dict) and "wall_s" in v[0]
        ),
        None,
    )
    if cases:
        return [_engine_case(c) for c in cases]
    numbers = {
        k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return [Figure(k, float(v), "") for k, v in numbers.items()]


def _engine_case(case: Data) -> Figure:
    cpu = f"CPU {case['cpu_s']:.2f} s" if "cpu_s" in case else ""
    return Figure(str(case.get("case") or case.get("name")), case["wall_s"], "s wall", cpu)


FIGURES: dict[str, Callable[[Data], list[Figure]]] = {
    "images": paired,
    "jobs_poll": paired,
    "submits": submits,
    "chat_relay": chat_relay,
    "webhooks": webhooks,
    "providers": providers,
    "sse_streams": sse_streams,
    "scaling": scaling,
    "gpu_serving": gpu_serving,
}


def figures(outcome: Outcome) -> list[Figure]:
    try:
        return FIGURES.get(outcome.name, generic)(outcome.data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return generic(outcome.data)  # its JSON changed shape: show what can be shown


# -- charts -----------------------------------------------------------------------------------


def charts(outcome: Outcome, stem: Path) -> list[Path]:
    import _plots

    d, name = outcome.data, outcome.name
    path = stem.with_name(f"{stem.name}-{name}.png")
    if name in ("images", "jobs_poll"):
        series = {t: {"p50": d[t]["p50_ms"], "p99": d[t]["p99_ms"]} for t in ("hyperlocal", "bare")}
        return [_plots.percentile_bars(path, f"{name}: latency, hyperlocal vs bare", series)]
    if name == "chat_relay":
        series = {t["target"]: {"p50": t["p50_ms"], "p99": t["p99_ms"]} for t in d["throughput"]}
        return [_plots.percentile_bars(path, "chat relay: latency under load", series)]
    if name == "webhooks":
        series = {
            f"{g['phase']}, {g['group']}": {q: g[f"{q}_ms"] for q in ("p50", "p90", "p99")}
            for g in d["groups"]
        }
        return [_plots.percentile_bars(path, "webhooks: job finished -> receiver's 200", series)]
    if name == "sse_streams":
        title = f"SSE streams: server RSS ({d['opened']} opened)"
        return [_plots.memory_curve(path, title, d["curve"], d["goal_mib"])]
    if name == "scaling":
        curves: dict[str, list[tuple[int, float]]] = {}
        for p in d["points"]:
            curves.setdefault(p["mode"], []).append((p["workers"], p["jobs_per_s"]))
        return [_plots.scaling_curve(path, f"throughput: {d['workload']}", curves)]
    return []


def safe_charts(outcome: Outcome, stem: Path) -> list[Path]:
    try:
        return charts(outcome, stem) if outcome.ok else []
    except (KeyError, TypeError, ValueError, ImportError) as exc:
        print(f"no chart for {outcome.name}: {_describe(exc)}", file=sys.stderr)
        return []


# -- the report -------------------------------------------------------------------------------


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(outcomes: Sequence[Outcome], pictures: Sequence[Path], header: str) -> str:
    lines = [
        header,
        "",
        "| benchmark | figure | value | detail | compared with | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if not o.ok:
            lines.append(f"| {o.name} | **failed** | | {o.error.replace('|', '/')} | | |")
            continue
        for f in figures(o):
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
            value = f"{_number(f.value)} {f.unit}".strip()
            lines.append(f"| {o.name} | {f.name} | {value} | {f.detail} | {f.baseline} | {ratio} |")
    lines += [
        "",
        "Seconds per benchmark: " + ", ".join(f"{o.name} {o.seconds:.0f}" for o in outcomes),
        "",
    ]
    lines += [f"![{p.stem}]({p.name})" for p in pictures]
    return "\n".join(lines) + "\n"


def header(quick: bool, load_before: float) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.now().astimezone()
    return (
        f"# Benchmarks, {now:%Y-%m-%d %H:%M} ({'quick' if quick else 'full'} sizes)\n\n"
        f"{cores} cores; the load generators run on the same cores as the servers they measure. "
        f"1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at "
        f"the end. Each benchmark's JSON (bench/results/) has its machine, options and "
        f"every measured number. Ratios: see bench/README.md for which way is better."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="just these benchmarks")
    parser.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="not these")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCH_DIR))  # the benchmarks import their helpers (_server, ...)
    names = [n for n in (args.only or benches()) if n not in args.skip]
    load_before, quick = os.getloadavg()[0], not args.full
    outcomes = []
    for name in names:
        print(f"\n=== {name} ({'quick' if quick else 'full'}) ===", flush=True)
        outcomes.append(run_one(name, quick))
        if not outcomes[-1].ok:
            print(f"=== {name} failed: {outcomes[-1].error}", flush=True)
    write_report(outcomes, header(quick, load_before))


def write_report(outcomes: Sequence[Outcome], head: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{datetime.now():%Y-%m-%d}"
    pictures = [p for o in outcomes for p in safe_charts(o, stem)]
    report = stem.with_suffix(".md")
    report.write_text(markdown(outcomes, pictures, head))
    failed = [o.name for o in outcomes if not o.ok]
    print(f"\nreport: {report}")
    for p in pictures:
        print(f"chart:  {p}")
    if failed:
        print(f"failed: {', '.join(failed)} (errors in the report)")


if __name__ == "__main__":
    main()
