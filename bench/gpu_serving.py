#!/usr/bin/env python
"""Time per image through hyperlocal against the same diffusers pipeline in a bare loop.

The CPU part (the default; ``make bench`` runs it) builds a tiny SD-2.1-shaped pipeline with
random weights (``gpu_configs/`` shrunk by ``tiny.json``) into a temporary models directory,
and starts a real ``hyperlocal serve`` whose catalogue has one ``diffusers-image`` entry on it.
This process loads the same folder as a bare ``StableDiffusionPipeline``. Then, one image at a
time and alternating (the order flips every image): the pipeline called here, its image
encoded to PNG as the engine encodes it; and ``POST /v1/images/generate`` (sync) to the
server, timed from sending to the last byte of the answer. Both sides run torch on
``--threads`` threads. It prints each side's p50 per image and hyperlocal's overhead on it,
against the goal of at most 5%.

``--gpu`` measures full-size SD 2.1 on a CUDA device instead (``_gpu_measures.py``);
``--gpu --rehearse`` walks that path on the CPU at a tiny scale. See bench/README.md.

    .venv/bin/python bench/gpu_serving.py [--images 20] [--size 192] [--steps 4] [--threads 1]
    .venv/bin/python bench/gpu_serving.py --gpu [--rehearse]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _report import Machine
from _sd_models import build_pipeline, load_pipeline, paint
from _server import BENCH_DIR
from _serving import Entry, Workspace, alternate, issue_keys, serving
from rich.console import Console
from rich.table import Table

WEIGHTS, MODEL = "bench-sd-tiny", "bench-sd-tiny"
GOAL_PCT = {"cpu": 5.0, "gpu": 2.0}
HISTORY = "gpu-serving.md"
console = Console()


@dataclass(frozen=True, slots=True)
class Options:
    images: int
    size: int
    steps: int
    threads: int
    results: Path
    json: Path | None
    gpu: bool
    rehearse: bool

    def describe(self) -> str:
        return (
            f"{self.images} images each, alternating, {self.size}x{self.size}, {self.steps} "
            f"steps, no guidance, torch on {self.threads} thread(s) on each side"
        )


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=20, help="measured per side (20)")
    parser.add_argument("--size", type=int, default=192, help="image side, px (192)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side (1)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--json", type=Path, help="write the JSON here (default: results/)")
    parser.add_argument("--gpu", action="store_true", help="full-size SD 2.1 on CUDA")
    parser.add_argument("--rehearse", action="store_true", help="with --gpu: on the CPU, tiny")
    a = parser.parse_args(argv)
    if a.images < 1 or a.size % 8 or a.steps < 1 or a.threads < 1:
        parser.error("--images, --steps and --threads must be at least 1; --size a multiple of 8")
    return Options(a.images, a.size, a.steps, a.threads, a.results, a.json, a.gpu, a.rehearse)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.gpu:
        return run_gpu(options)
    return run_cpu(options)


# -- the CPU part -------------------------------------------------------------------------------


def run_cpu(options: Options) -> int:
    import torch

    torch.set_num_threads(options.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hyperlocal-gpu-serving-") as tmp:
        figures = measure_cpu(Workspace(Path(tmp)), options)
    result = _result("cpu", options.describe(), load_before, figures)
    console.print(cpu_table(result))
    _save(result, options, f"gpu-serving-{result['date'][:10]}.json", _cpu_line(result))
    return 0


def measure_cpu(ws: Workspace, options: Options) -> dict[str, Any]:
    build_pipeline(ws.models / WEIGHTS, tiny=True)
    ws.write_catalog([Entry(MODEL, WEIGHTS, options.steps, 0.0)])
    threads = str(options.threads)
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with serving(ws, issue_keys(ws), env) as server:
        pipe = load_pipeline(ws.models / WEIGHTS)
        shape = {"size": options.size, "steps": options.steps, "guidance": 0.0}
        figures = alternate(
            server,
            MODEL,
            options.size,
            options.images,
            lambda seed: paint(pipe, **shape, seed=seed),
        )
        (worker,) = server.workers()["workers"]
    (model,) = worker["devices"][0]["models"]  # as the server measured it
    return figures | {"model_mib": round(model["size"] / 2**20, 2)}


def cpu_table(result: dict[str, Any]) -> Table:
    before, after = result["load_average"]
    caption = f"{result['workload']}. Load average {before:.2f} before, {after:.2f} after."
    table = Table(title="time per image: hyperlocal against a bare loop", caption=caption)
    for column in ("", "p50 ms", "mean ms", "min ms", "CPU p50 ms"):
        table.add_column(column, justify="left" if not column else "right")
    for side in ("hyperlocal", "bare"):
        s = result[side]
        figures = (s["p50_ms"], s["mean_ms"], s["min_ms"], s["cpu_p50_ms"])
        table.add_row(side, *(f"{x:.1f}" for x in figures))
    verdict = "met" if result["overhead_pct"] <= result["goal_pct"] else "missed"
    overhead = f"{result['overhead_pct']:+.2f}% (goal <= {result['goal_pct']:.0f}%: {verdict})"
    cpu = f"{result['cpu_overhead_pct']:+.2f}%"
    table.add_row("overhead on p50", overhead, "", "", cpu, style="bold")
    paired = f"{result['paired_overhead_pct']:+.2f}%, {result['paired_overhead_ms']:+.1f} ms"
    table.add_row("median of the pairs", paired, "", "", "")
    return table


def _cpu_line(result: dict[str, Any]) -> str:
    m, h, b = result["machine"], result["hyperlocal"], result["bare"]
    before, after = result["load_average"]
    overhead = (
        f"{result['overhead_pct']:+.2f}% (goal <= {result['goal_pct']:.0f}%); CPU time "
        f"{result['cpu_overhead_pct']:+.2f}%"
    )
    return (
        f"| {result['date'][:10]} | CPU: {m['cpu']}, {m['cores']} cores, load average "
        f"{before:.1f} to {after:.1f} | {result['workload']} | {h['p50_ms']:.1f} ms "
        f"| {b['p50_ms']:.1f} ms | {overhead} |"
    )


# -- the GPU part -------------------------------------------------------------------------------


def run_gpu(options: Options) -> int:
    from _gpu_measures import FULL, REHEARSAL, cuda_name, measure_gpu

    name = "CPU (rehearsal)" if options.rehearse else cuda_name()
    if name is None:
        print("gpu_serving --gpu: no CUDA device (torch sees none)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="hyperlocal-gpu-serving-") as tmp:
        figures = measure_gpu(Workspace(Path(tmp)), REHEARSAL if options.rehearse else FULL)
    result = _result("gpu", f"SD 2.1 class, random weights, on {name}", load_before, figures)
    result |= {"device": name, "goals": gpu_goals(result)}
    console.print_json(json.dumps(result))
    stem = "gpu-serving-rehearsal" if options.rehearse else "gpu-serving-cuda"
    line = _gpu_line(result)
    # A rehearsal's figures mean nothing: they stay out of the tracked history.
    _save(result, options, f"{stem}-{result['date'][:10]}.json", line, not options.rehearse)
    return 0


def gpu_goals(result: dict[str, Any]) -> dict[str, bool]:
    """Issue 18's goals: at most 2% per image, batching at least 1.5x sequential throughput
    at the first size (512²), a swap within 1.5x of reading the weights from disk."""
    overheads = {f"overhead {s}²": f["overhead_pct"] <= 2.0 for s, f in result["per_size"].items()}
    best = max(b["vs_batch_1"] for b in result["batches"])
    return overheads | {
        "batching >= 1.5x": best >= 1.5,
        "swap <= 1.5x read": result["swap"]["swap_vs_read"] <= 1.5,
    }


def _gpu_line(result: dict[str, Any]) -> str:
    sizes = ", ".join(
        f"{s}²: {f['hyperlocal']['p50_ms']:.0f} vs {f['bare']['p50_ms']:.0f} ms "
        f"({f['overhead_pct']:+.1f}%)"
        for s, f in result["per_size"].items()
    )
    batches = ", ".join(f"x{b['max_batch']} {b['vs_batch_1']:.2f}x" for b in result["batches"])
    swap, memory = result["swap"], result["memory"]
    return (
        f"| {result['date'][:10]} | {result['device']} | {sizes}; batching {batches}; swap "
        f"{swap['swap_s']:.2f} s vs read {swap['read_s']:.2f} s ({swap['swap_vs_read']:.2f}x); "
        f"server peak {memory['peak_mib']:.0f} MiB (device {memory['device_peak_mib']:.0f} MiB) "
        f"against a {memory['budget_mib']:.0f} MiB budget | | | |"
    )


# -- results ------------------------------------------------------------------------------------


def _result(
    kind: str, workload: str, load_before: float, figures: dict[str, Any]
) -> dict[str, Any]:
    machine = Machine.current(["hyperlocal serve (uvicorn defaults)"])
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": asdict(machine),
        "workload": workload,
        "load_average": (round(load_before, 2), round(os.getloadavg()[0], 2)),
        "goal_pct": GOAL_PCT[kind],
        **figures,
    }


def _save(
    result: dict[str, Any], options: Options, name: str, line: str, history: bool = True
) -> None:
    """The JSON (git-ignored) and a line of the tracked history, ``results/gpu-serving.md``."""
    options.results.mkdir(parents=True, exist_ok=True)
    path = options.json or options.results / name
    path.write_text(json.dumps(result | {"markdown": line}, indent=2) + "\n")
    console.print(f"JSON: {path}")
    if history:
        kept = options.results / HISTORY
        header = "" if kept.exists() else _HEADER
        with kept.open("a") as out:
            out.write(header + line + "\n")
        console.print(f"history: {kept}")
    console.print(line, markup=False, highlight=False, soft_wrap=True)


_HEADER = (
    "# Time per image: hyperlocal against the bare pipeline (bench/gpu_serving.py)\n\n"
    "| date | machine | workload | hyperlocal p50 | bare p50 | overhead |\n"
    "|---|---|---|---|---|---|\n"
)


if __name__ == "__main__":
    sys.exit(main())
