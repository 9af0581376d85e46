"""``hyperlocal worker --gpus``: one worker process per GPU, started and watched by this one.

Each child is a plain ``hyperlocal worker`` whose ``CUDA_VISIBLE_DEVICES`` names one device,
so each has one device manager on one card, its own CUDA context, and its own report in
``GET /admin/workers``. The children consume the same model queues (Celery spreads the
deliveries), and a job goes to whichever child takes it first.

- SIGTERM or SIGINT here is forwarded to every child as SIGTERM: each drains gracefully
  (``shutdown_grace_seconds``) and exits 0; then this process exits 0.
- A child that exits on its own with a non-zero status (a crash, an out-of-memory kill) stops
  the others the same way, and this process exits non-zero: the process manager above it
  (systemd, Kubernetes) restarts the whole set. A child that exits 0 on its own (``--burst``
  once idle) is done; when all are, so is this process.
- The children start in their own process group, so a terminal's Ctrl-C reaches them once,
  through here; on Linux each is sent SIGTERM when this process dies, so none outlives it.

``--gpus all`` counts the devices without starting CUDA here: ``CUDA_VISIBLE_DEVICES`` when it
is set, else ``nvidia-smi -L``, else torch in a short-lived subprocess.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

__all__ = ["Child", "gpu_ids", "supervise", "visible_gpus"]

log = logging.getLogger(__name__)

WATCH_S = 1.0  # a child's end wakes the watch at once (SIGCHLD); this is the fallback
STOP_MARGIN_S = 30.0  # past the children's own grace, before they are killed
_PR_SET_PDEATHSIG = 1
_TORCH_COUNT = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"


@dataclass(frozen=True, slots=True)
class Child:
    device: str  # its CUDA_VISIBLE_DEVICES: an index or a GPU UUID
    argv: tuple[str, ...]


def gpu_ids(spec: str) -> list[str]:
    """``all`` (every visible GPU) or a comma-separated list (``0,1``); ValueError, saying
    why, for an empty or repeated list, or ``all`` with no GPU."""
    if spec.strip() == "all":
        found = visible_gpus()
        if not found:
            raise ValueError(
                "--gpus all: no GPU found (asked CUDA_VISIBLE_DEVICES when it is set, else "
                "nvidia-smi -L, else torch)"
            )
        return found
    ids = [part.strip() for part in spec.split(",")]
    if not all(ids) or len(set(ids)) != len(ids):
        raise ValueError(f"--gpus {spec!r}: give 'all' or distinct device ids, such as 0,1")
    return ids


def visible_gpus(*, ask_torch: bool = True) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` values, found without
    starting CUDA here. ``ask_torch``: when nvidia-smi is missing, ask torch in a subprocess
    (seconds: it imports torch)."""
    limited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if limited is not None:
        return _listed(limited)
    if shutil.which("nvidia-smi"):
        return [str(i) for i in range(_smi_count(_output(["nvidia-smi", "-L"])))]
    if ask_torch:
        return [str(i) for i in range(_last_int(_output([sys.executable, "-c", _TORCH_COUNT])))]
    return []


def _listed(value: str) -> list[str]:
    """CUDA's reading of the variable: the entries up to the first empty or invalid one."""
    ids: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part or part.startswith("-"):
            break
        ids.append(part)
    return ids


def _output(argv: list[str]) -> str:
    """What the command prints; nothing when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _smi_count(text: str) -> int:
    return len(re.findall(r"^GPU \d+:", text, flags=re.M))


def _last_int(text: str) -> int:
    lines = text.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


# -- supervising --------------------------------------------------------------------------------


def supervise(children: Sequence[Child], grace: float, env: Mapping[str, str] | None = None) -> int:
    """Runs ``children`` until SIGTERM (or SIGINT) here, or until one fails; returns the exit
    status. ``grace``: how long the children may take to drain once told to stop."""
    watch = _Watch()
    previous = watch.install()
    procs: list[tuple[Child, subprocess.Popen[bytes]]] = []
    try:
        for child in children:
            procs.append((child, _start(child, os.environ if env is None else env)))
        status = _watch(watch, procs)
    finally:
        stopped = _stop(procs, grace + STOP_MARGIN_S)
        watch.restore(previous)
    return status if status else stopped


class _Watch:
    """Woken by a child's end (SIGCHLD) or a request to stop (SIGTERM, SIGINT)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stopping = False

    def install(self) -> dict[int, object]:
        return {int(s): signal.signal(s, self._on_signal) for s in self.SIGNALS}

    def restore(self, previous: Mapping[int, object]) -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]

    def _on_signal(self, number: int, _frame: FrameType | None) -> None:
        if number != signal.SIGCHLD:
            self.stopping = True
        self.wake.set()


def _start(child: Child, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    log.info("starting a worker for GPU %s", child.device, extra={"gpu": child.device})
    return subprocess.Popen(
        list(child.argv),
        env={**env, "CUDA_VISIBLE_DEVICES": child.device},
        process_group=0,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _watch(watch: _Watch, procs: Sequence[tuple[Child, subprocess.Popen[bytes]]]) -> int:
    """Until a stop is asked (0), a child fails (non-zero), or every child is done (0)."""
    while not watch.stopping:
        watch.wake.wait(WATCH_S)
        watch.wake.clear()
        codes = [(child, proc.poll()) for child, proc in procs]
        for child, code in codes:
            if code:
                log.error(
                    "the worker for GPU %s exited with status %s; stopping the others",
                    child.device,
                    code,
                    extra={"gpu": child.device, "status": code},
                )
                return _status(code)
        if all(code == 0 for _, code in codes):
            return 0
    log.info("stopping: each worker drains its running jobs")
    return 0


def _stop(procs: Sequence[tuple[Child, subprocess.Popen[bytes]]], timeout: float) -> int:
    """SIGTERM to every child still running, then waits; 1 if any did not end well: 0, or
    the SIGTERM itself (one told to stop while it was still starting has nothing to drain)."""
    told = {id(p) for _, p in procs if p.poll() is None}
    for _, proc in procs:
        if id(proc) in told:
            proc.send_signal(signal.SIGTERM)
    failed = False
    for child, proc in procs:
        code = _wait(child, proc, timeout)
        stopped = code == -signal.SIGTERM and id(proc) in told
        failed = failed or not (code == 0 or stopped)
    return 1 if failed else 0


def _wait(child: Child, proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("the worker for GPU %s did not stop; killing it", child.device)
        proc.kill()
        return proc.wait()


def _status(code: int) -> int:
    """A child's status as a shell reports it: a signal N is 128 + N."""
    return 128 - code if code < 0 else code
