"""``gpu_serving.py --gpu``: full-size SD 2.1 with random weights, bare against hyperlocal.

On one CUDA device, in half precision, with guidance (two UNet passes a step, as SD 2.1 is
used), it measures:

1. per image at 512² and 1024²: the pipeline called in this process against
   ``POST /v1/images/generate`` (sync) to a real ``hyperlocal serve``, alternating;
2. throughput at batch 1, 4 and 8: 8 concurrent requests to an entry whose ``max_batch``
   engine option is 1, 4 or 8 (512²);
3. a model swap: a second server whose budget holds one model, serving two copies of the
   weights in turn (their page cache dropped first), against reading those weights from disk;
4. the server process's peak device memory (nvidia-smi, sampled) against its budget.

``--rehearse`` walks the same path on the CPU with the tiny configs, at 64² and 128², so the
script is known to work before GPU time is spent on it. The goals (issue 18): overhead at most
2% per image, batching at least 1.5x sequential throughput at 512², a swap within 1.5x of the
disk read.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from _sd_models import build_pipeline, drop_cached, filesystem, paint, read_seconds
from _serving import Entry, Keys, Server, Workspace, alternate, issue_keys, ms, serving

__all__ = ["FULL", "REHEARSAL", "Plan", "cuda_name", "measure_gpu"]

WEIGHTS, SWAPPED = "sd21-a", "sd21-b"
MODEL, OTHER = "bench-sd21", "bench-sd21-b"


@dataclass(frozen=True, slots=True)
class Plan:
    device: str
    dtype: str
    tiny: bool
    sizes: tuple[int, ...]
    images: tuple[int, ...]  # per size, on each side
    steps: int
    guidance: float
    batches: tuple[int, ...]
    swaps: int
    threads: int | None = None  # torch's CPU threads on each side (None: its default)

    def env(self) -> dict[str, str]:
        """The servers' environment: as many jobs at once as the largest batch."""
        env = {"HYPERLOCAL_WORKER_CONCURRENCY": str(max(self.batches))}
        if self.threads is not None:
            env |= {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        return env

    def entries(self) -> list[Entry]:
        batched = [
            Entry(f"{MODEL}-batch-{b}", WEIGHTS, self.steps, self.guidance, {"max_batch": b})
            for b in self.batches
        ]
        pair = [
            Entry(m, w, self.steps, self.guidance) for m, w in ((MODEL, WEIGHTS), (OTHER, SWAPPED))
        ]
        return pair + batched


FULL = Plan("cuda", "float16", False, (512, 1024), (5, 3), 20, 7.5, (1, 4, 8), 3)
REHEARSAL = Plan("cpu", "float32", True, (64, 128), (3, 2), 2, 7.5, (1, 4, 8), 2, threads=1)


def cuda_name() -> str | None:
    """The first CUDA device's name; None when torch sees none (or is not installed)."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None


def measure_gpu(ws: Workspace, plan: Plan) -> dict[str, Any]:
    if plan.threads is not None:
        import torch

        torch.set_num_threads(plan.threads)
    pipe = build_pipeline(ws.models / WEIGHTS, tiny=plan.tiny, device=plan.device, dtype=plan.dtype)
    shutil.copytree(ws.models / WEIGHTS, ws.models / SWAPPED)
    ws.write_catalog(plan.entries())
    keys = issue_keys(ws)
    with serving(ws, keys, plan.env()) as server, _peak_memory(server.pid, plan.device) as peak:
        per_size = {
            str(size): _paired(server, pipe, plan, size, n)
            for size, n in zip(plan.sizes, plan.images, strict=True)
        }
        batches = _throughput(server, plan)
        device = _device(server.workers(), plan.device)
    del pipe  # the bare pipeline's memory, before the swap server loads two
    swap = _swap(ws, keys, plan, device)
    memory = {
        "peak_mib": peak.process_mib,
        "device_peak_mib": peak.device_mib,
        "budget_mib": device["budget"] / 2**20,
        "model_mib": device["used"] / 2**20,
        "total_mib": device["total"] / 2**20,
    }
    return {
        "plan": asdict(plan),
        "per_size": per_size,
        "batches": batches,
        "swap": swap,
        "memory": memory,
    }


def _paired(server: Server, pipe: Any, plan: Plan, size: int, images: int) -> dict[str, Any]:
    shape = {"size": size, "steps": plan.steps, "guidance": plan.guidance}
    return alternate(server, MODEL, size, images, lambda seed: paint(pipe, **shape, seed=seed))


def _throughput(server: Server, plan: Plan) -> list[dict[str, Any]]:
    """``max(batches)`` concurrent requests per entry, at the first size: images per second."""
    size, jobs = plan.sizes[0], max(plan.batches)
    rows = []
    for batch in plan.batches:
        model = f"{MODEL}-batch-{batch}"
        server.generate(model, size, 0)  # the model is loaded already; this warms the entry
        with ThreadPoolExecutor(jobs) as pool:
            start = time.perf_counter()
            list(pool.map(lambda seed, m=model: server.generate(m, size, seed), range(jobs)))
            seconds = time.perf_counter() - start
        rows.append(
            {
                "max_batch": batch,
                "images": jobs,
                "seconds": round(seconds, 3),
                "images_per_s": round(jobs / seconds, 3),
            }
        )
    base = rows[0]["images_per_s"]
    return [r | {"vs_batch_1": round(r["images_per_s"] / base, 3)} for r in rows]


def _device(view: dict[str, Any], kind: str) -> dict[str, Any]:
    """The server's device that holds the model: the first CUDA device, or the CPU."""
    (worker,) = view["workers"]
    found: dict[str, Any] = next(d for d in worker["devices"] if d["device"].startswith(kind))
    return found


def _swap(ws: Workspace, keys: Keys, plan: Plan, device: dict[str, Any]) -> dict[str, Any]:
    """A server whose budget holds one model (1.5x its size) serves the two copies in turn."""
    fraction = min(0.9, 1.5 * device["used"] / device["total"])
    size = plan.sizes[0]
    env = plan.env() | {"HYPERLOCAL_GPU_MEMORY_FRACTION": f"{fraction:.9f}"}
    with serving(ws, keys, env) as server:
        steady = [server.generate(MODEL, size, seed) for seed in range(3)][1:]
        swaps = []
        for seed in range(plan.swaps):
            for model, weights in ((OTHER, SWAPPED), (MODEL, WEIGHTS)):
                drop_cached(ws.models / weights)
                swaps.append(server.generate(model, size, seed))
        loaded = [m["name"] for m in _device(server.workers(), plan.device)["models"]]
    reads = [read_seconds(ws.models / WEIGHTS) for _ in range(3)]
    read_s = statistics.median(s for s, _ in reads)
    swap_s = statistics.median(swaps) - statistics.median(steady)
    return {
        "budget_fraction": fraction,
        "steady": ms(steady),
        "with_swap": ms(swaps),
        "swap_s": round(swap_s, 3),
        "read_s": round(read_s, 3),
        "read_mib": round(reads[0][1] / 2**20, 1),
        "swap_vs_read": round(swap_s / read_s, 3),
        "loaded_after": loaded,
        "filesystem": filesystem(ws.models),
    }


class _Peak:
    """Peaks in MiB: the server process's own (0 where nvidia-smi does not show its pid, as in
    some containers) and the whole device's, which also holds this process's bare pipeline."""

    def __init__(self) -> None:
        self.process_mib = 0.0
        self.device_mib = 0.0


@contextmanager
def _peak_memory(pid: int, device: str) -> Iterator[_Peak]:
    """The server's peak memory while the block runs: nvidia-smi sampled every 0.2 s on CUDA,
    the kernel's peak RSS (VmHWM) on the CPU."""
    peak, done = _Peak(), threading.Event()
    sampler = threading.Thread(target=_sample, args=(pid, peak, done), daemon=True)
    if device == "cuda":
        sampler.start()
    try:
        yield peak
    finally:
        done.set()
        if device == "cuda":
            sampler.join()
        else:
            peak.process_mib = _vm_hwm_mib(pid)


def _sample(pid: int, peak: _Peak, done: threading.Event) -> None:
    apps = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    card = ["nvidia-smi", "-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
    while not done.wait(0.2):
        for line in _lines(apps):
            found, _, used = line.partition(",")
            if found.strip() == str(pid) and used.strip().isdigit():
                peak.process_mib = max(peak.process_mib, float(used))
        used = _lines(card)
        if used and used[0].strip().isdigit():
            peak.device_mib = max(peak.device_mib, float(used[0]))


def _lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()


def _vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
