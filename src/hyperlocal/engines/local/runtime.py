"""What every local adapter shares: finding its weights, and holding them on a device.

Every adapter built from one ``EngineContext`` (the engine registry builds a process's
engines from one) keeps its models on one ``devices.DeviceManager``: one shelf of loaded
models per process, placed on its CUDA devices and its CPU within their budgets.

The blocking parts (imports of torch and friends, loading, inference) all run in the worker
thread that ``run_reporting`` starts, so the event loop never waits on them; that thread posts
progress, which the loop forwards to the job.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, Protocol, TypeVar, runtime_checkable

from hyperlocal.engines.base import DeviceMemory, EngineContext, InputValue, LoadObserver
from hyperlocal.engines.local.devices import DeviceManager, ModelSpec
from hyperlocal.engines.local.options import text
from hyperlocal.engines.local.probe import SystemProbe
from hyperlocal.engines.local.weights import check_name, loaded_bytes, models_dir
from hyperlocal.engines.media.progress import Report
from hyperlocal.errors import EngineUnavailableError, GenerationError
from hyperlocal.settings import Settings

__all__ = [
    "Preloading",
    "Resident",
    "Weights",
    "device_memory",
    "devices_for",
    "locate",
    "new_manager",
    "require",
    "sweep_interval",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Weights:
    """One way of loading one folder: the key under which a loaded model is kept."""

    folder: Path
    device: str  # "cuda" or "cpu"
    dtype: str  # a torch dtype name ("float16"), or a CTranslate2 compute type ("int8")
    threads: int = 0  # CPU threads, for runtimes that take a count at load (0: their default)


def locate(settings: Settings, options: Mapping[str, InputValue], engine: str, layout: str) -> Path:
    """The folder that ``engine_options.weights`` names; GenerationError, saying what belongs
    there and how to fetch it, when it is not installed."""
    name = text(options, "weights")
    if not name:
        raise GenerationError(f"{engine}: the catalogue entry sets no engine_options.weights")
    folder = models_dir(settings) / check_name(name)
    if not folder.is_dir():
        raise GenerationError(
            f"{engine}: weights {name!r} are not installed: expected {layout} in {folder} "
            f"(fetch them with `hyperlocal models pull {name}`)"
        )
    return folder


def require(engine: str, *modules: str) -> None:
    """EngineUnavailableError unless every module is importable; finding one imports nothing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        log.warning(
            "%s needs %s: install the gpu extra (pip install 'hyperlocal[gpu]')",
            engine,
            ", ".join(missing),
            extra={"engine": engine, "missing": missing},
        )
        raise EngineUnavailableError(engine)


@runtime_checkable
class Preloading(Protocol):
    """An engine that can load a catalogue entry's weights before any job asks for them
    (``hyperlocal worker --preload``): they are pinned, never evicted nor unloaded."""

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        """Loads and pins the weights that ``options`` (``engine_options``) name; returns
        the device that holds them."""


def new_manager(settings: Settings, observer: LoadObserver | None = None) -> DeviceManager:
    """A device manager for this machine's devices, as ``settings`` configure it."""
    return DeviceManager(
        SystemProbe(),
        fraction=settings.gpu_memory_fraction,
        idle_seconds=settings.model_idle_seconds,
        observer=observer,
        sweep_every=sweep_interval(settings.model_idle_seconds),
    )


def sweep_interval(idle_s: float) -> float:
    """Often enough that a model outstays its idle time by a tenth at most, or a minute."""
    return min(60.0, max(1.0, idle_s / 10))


_MANAGERS: weakref.WeakValueDictionary[int, DeviceManager] = weakref.WeakValueDictionary()
_CONTEXTS: dict[int, EngineContext] = {}  # each manager's context, so that its id stays unique
_SHARING = threading.Lock()


def devices_for(context: EngineContext) -> DeviceManager:
    """The device manager that every adapter built from ``context`` shares.

    The registry builds all of a process's engines from one context, so this is the process's
    one manager, while two apps in one test process (two contexts) each get their own. It
    lives as long as an adapter holds it; the context is kept until then, so that its id,
    the key here, cannot be reused by another context meanwhile."""
    with _SHARING:
        manager = _MANAGERS.get(id(context))
        if manager is None:
            manager = new_manager(context.settings, context.loads)
            _MANAGERS[id(context)] = manager
            _CONTEXTS[id(context)] = context
            weakref.finalize(manager, _CONTEXTS.pop, id(context), None)
        return manager


def device_memory(context: EngineContext) -> list[DeviceMemory]:
    """The budgets of the device manager that ``context``'s adapters share, for the metrics;
    empty while no local engine has placed a model (nothing is probed, CUDA not started)."""
    with _SHARING:
        manager = _MANAGERS.get(id(context))
    if manager is None:
        return []
    return [DeviceMemory(d.device, d.used, d.budget) for d in manager.snapshot()]


def _silent(_fraction: float, _message: str) -> None:
    return None


class Resident(Generic[T]):
    """An adapter's models, on the process's shelf (``devices_for(context)``).

    Each job leases the model its weights name: loaded where it fits (a CUDA device for
    ``device = "cuda"``, whichever suits), and left loaded beside other adapters' models,
    until it idles out or is evicted for another. ``concurrency`` jobs share one loaded
    copy; more than 1 suits small models on a large GPU. The work runs with the weights as
    placed: ``device`` is then the device that holds them (``cuda:1``)."""

    def __init__(
        self,
        engine: str,
        load: Callable[[Weights], T],
        context: EngineContext,
        concurrency: int = 1,
    ) -> None:
        self._engine, self._load, self._concurrency = engine, load, concurrency
        self._observer = context.loads  # told of each load (the operator's metrics)
        self._devices = devices_for(context)
        self._estimates: dict[Weights, int] = {}

    def run(self, weights: Weights, work: Callable[[T, Weights], R], report: Report) -> R:
        """Blocking: waits for the model (loading it if need be), then runs ``work``."""
        report(0.0, "waiting for the model")

        def waiting() -> None:  # raises once the job is cancelled
            report(0.0, "waiting for the model")

        with self._devices.use(self._spec(weights, report), waiting) as lease:
            report(0.02, "starting")  # raises here, before any work, if the job was cancelled
            return work(lease.model, replace(weights, device=lease.device))

    def preload(self, weights: Weights) -> str:
        """Blocking: loads and pins ``weights``; returns the device that holds them."""
        return self._devices.preload(self._spec(weights, _silent))

    async def apreload(self, weights: Callable[[], Weights]) -> str:
        """``preload`` in a worker thread, of the weights that ``weights()`` finds there."""
        return await asyncio.to_thread(lambda: self.preload(weights()))

    def clear(self) -> None:
        """Blocking: unloads this adapter's models (once any load in progress is done)."""
        self._devices.unload(self._engine)

    def _spec(self, weights: Weights, report: Report) -> ModelSpec[T]:
        def load(device: str) -> T:
            return self._timed_load(replace(weights, device=device), report)

        return ModelSpec(
            owner=self._engine,
            name=weights.folder.name,
            key=(self._engine, weights),
            wants=weights.device,
            estimate=self._estimate(weights),
            load=load,
            concurrency=self._concurrency,
        )

    def _estimate(self, weights: Weights) -> int:
        found = self._estimates.get(weights)
        if found is None:  # reads the folder's file headers: once per weights
            found = self._estimates[weights] = loaded_bytes(weights.folder, weights.dtype)
        return found

    def _timed_load(self, weights: Weights, report: Report) -> T:
        report(0.01, f"loading {weights.folder.name}")
        facts = {"engine": self._engine, "weights": str(weights.folder), "device": weights.device}
        log.info(
            "loading %s for %s on %s (%s)",
            weights.folder.name,
            self._engine,
            weights.device,
            weights.dtype,
            extra=facts,
        )
        start = time.perf_counter()
        model = self._load(weights)
        seconds = time.perf_counter() - start
        log.info("loaded %s in %.1f s", weights.folder.name, seconds, extra={**facts, "s": seconds})
        if self._observer is not None:
            self._observer.model_loaded(self._engine, seconds)
        return model
