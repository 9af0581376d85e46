"""Who runs jobs, and on what: each worker process's devices, loaded models and running jobs.

A *worker* is one process that runs jobs: a ``hyperlocal worker`` (scale-out; one per GPU
with ``--gpus``), or an API server's in-process lanes (embedded). Each describes itself in a
:class:`WorkerReport`: who it is, each device's memory and the models on it (its device
manager's snapshot), and its running jobs by model (the jobs it holds leases on).

- Scale-out: each heartbeat (the lease sweep, every few seconds) also publishes the worker's
  report to Redis, under a key that expires with the heartbeat (``queue.dispatch``); an API
  server reads every live worker's report there: the queue is a :class:`ReportBoard`.
- Embedded: the API process is the one worker; it builds its report when asked.

:func:`overview` adds each model's queue depth from the jobs table; ``GET /admin/workers`` and
``hyperlocal workers`` show it. Devices are probed at a process's first model placement, never
just to be shown (that would start CUDA in a process that may never need it): until then a
report shows the CPU alone, from the operating system, with ``probed`` false.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hyperlocal.core import metrics
from hyperlocal.core.services import Services
from hyperlocal.engines.local.devices import DeviceSnapshot, ModelSnapshot
from hyperlocal.engines.local.probe import SystemProbe
from hyperlocal.engines.local.runtime import devices_for
from hyperlocal.engines.registry import EngineRegistry
from hyperlocal.store import workers as store
from hyperlocal.store.db import Database

__all__ = [
    "Identity",
    "Overview",
    "QueueDepth",
    "ReportBoard",
    "Reporter",
    "WorkerReport",
    "device_source",
    "overview",
    "process_started_at",
]

DeviceSource = Callable[[], Sequence[DeviceSnapshot]]


@dataclass(frozen=True, slots=True)
class Identity:
    """One worker process. Its job runner's id (``runtime.worker_id``: host:pid:token) is the
    lease owner of its jobs, so ``lease_prefix`` finds them."""

    worker: str
    host: str
    pid: int
    started_at: float | None  # epoch seconds; None where the system does not say
    gpus: str | None  # CUDA_VISIBLE_DEVICES as the process has it (``worker --gpus``)

    @classmethod
    def current(cls, worker: str | None = None) -> Identity:
        host, pid = socket.gethostname(), os.getpid()
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        return cls(worker or f"{host}:{pid}", host, pid, process_started_at(), gpus)

    @property
    def lease_prefix(self) -> str:
        return f"{self.host}:{self.pid}:"


@dataclass(frozen=True, slots=True)
class WorkerReport:
    identity: Identity
    reported_at: float
    probed: bool  # False: no model placed yet, so only the CPU is shown (see the module)
    devices: tuple[DeviceSnapshot, ...]
    running: Mapping[str, int] = field(default_factory=dict)  # jobs running here, by model

    def as_dict(self) -> dict[str, Any]:
        """As ``GET /admin/workers`` shows it, and as Redis carries it."""
        i = self.identity
        return {
            "id": i.worker,
            "host": i.host,
            "pid": i.pid,
            "startedAt": i.started_at,
            "gpus": i.gpus,
            "reportedAt": self.reported_at,
            "probed": self.probed,
            "devices": [_device_dict(d) for d in self.devices],
            "running": dict(self.running),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerReport:
        """The inverse of ``as_dict``; KeyError or TypeError for another shape."""
        identity = Identity(
            str(data["id"]), str(data["host"]), int(data["pid"]), data["startedAt"], data["gpus"]
        )
        devices = tuple(_device(d) for d in data["devices"])
        running = {str(m): int(n) for m, n in data["running"].items()}
        return cls(identity, float(data["reportedAt"]), bool(data["probed"]), devices, running)


def _device_dict(device: DeviceSnapshot) -> dict[str, Any]:
    return {
        "device": device.device,
        "total": device.total,
        "free": device.free,
        "budget": device.budget,
        "used": device.used,
        "models": [_model_dict(m) for m in device.models],
    }


def _model_dict(model: ModelSnapshot) -> dict[str, Any]:
    return {
        "name": model.name,
        "engine": model.owner,
        "size": model.size,
        "users": model.users,
        "pinned": model.pinned,
        "loading": model.loading,
        "idleSeconds": round(model.idle_s, 3),
    }


def _device(data: Mapping[str, Any]) -> DeviceSnapshot:
    return DeviceSnapshot(
        str(data["device"]),
        int(data["total"]),
        int(data["free"]),
        int(data["budget"]),
        int(data["used"]),
        tuple(_model(m) for m in data["models"]),
    )


def _model(data: Mapping[str, Any]) -> ModelSnapshot:
    return ModelSnapshot(
        str(data["name"]),
        str(data["engine"]),
        int(data["size"]),
        int(data["users"]),
        bool(data["pinned"]),
        bool(data["loading"]),
        float(data["idleSeconds"]),
    )


@runtime_checkable
class ReportBoard(Protocol):
    """Where a shape's workers publish their reports (the Celery queue: Redis)."""

    async def worker_reports(self) -> list[WorkerReport]:
        """Every live worker's latest report."""
        ...


class Reporter:
    """Builds one process's report. ``devices`` gives its device manager's snapshot
    (:func:`device_source`); ``fraction`` is the budget's share of memory, for the CPU shown
    before anything was probed."""

    def __init__(
        self,
        identity: Identity,
        db: Database,
        devices: DeviceSource,
        fraction: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity, self._db, self._devices = identity, db, devices
        self._fraction, self._clock = fraction, clock

    async def report(self) -> WorkerReport:
        async with self._db.read() as session:
            running = await store.running_by_model(session, self.identity.lease_prefix)
        shots = tuple(self._devices())
        devices = shots or (_host_device(self._fraction),)
        return WorkerReport(self.identity, self._clock(), bool(shots), devices, running)


def _host_device(fraction: float) -> DeviceSnapshot:
    memory = SystemProbe().memory("cpu")  # the operating system's figures; imports no torch
    return DeviceSnapshot("cpu", memory.total, memory.free, int(memory.total * fraction), 0, ())


def device_source(engines: EngineRegistry) -> DeviceSource:
    """The snapshot of the device manager that ``engines``' local adapters share."""
    context = engines.context  # it keys the process's device manager (runtime.devices_for)

    def snapshot() -> list[DeviceSnapshot]:
        return devices_for(context).snapshot()

    return snapshot


@dataclass(frozen=True, slots=True)
class QueueDepth:
    model: str
    queued: int
    running: int


@dataclass(frozen=True, slots=True)
class Overview:
    workers: tuple[WorkerReport, ...]
    queues: tuple[QueueDepth, ...]  # models with jobs queued or running, in every worker

    def as_dict(self) -> dict[str, Any]:
        queues = [{"model": q.model, "queued": q.queued, "running": q.running} for q in self.queues]
        return {"workers": [w.as_dict() for w in self.workers], "queues": queues}


async def overview(svc: Services) -> Overview:
    """Every live worker's report, and the jobs queued and running by model."""
    reports = await _reports(svc)
    depth = await metrics.snapshot(svc.db)
    models = sorted(depth.queued.keys() | depth.running.keys())
    queues = (QueueDepth(m, depth.queued.get(m, 0), depth.running.get(m, 0)) for m in models)
    ordered = sorted(reports, key=lambda r: (r.identity.host, r.identity.pid, r.identity.worker))
    return Overview(tuple(ordered), tuple(queues))


async def _reports(svc: Services) -> list[WorkerReport]:
    if isinstance(svc.queue, ReportBoard):
        return await svc.queue.worker_reports()
    # Embedded: this process is the worker.
    fraction = svc.settings.gpu_memory_fraction
    devices = device_source(svc.engines)
    reporter = Reporter(Identity.current(), svc.db, devices, fraction, svc.clock)
    return [await reporter.report()]


def process_started_at() -> float | None:
    """When this process started (epoch seconds), from /proc; None where there is none."""
    try:
        stat = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(float(line.split()[1]) for line in lines if line.startswith("btime "))
        ticks = int(stat[19])  # field 22, starttime: clock ticks after boot
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")
