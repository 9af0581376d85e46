"""What every local adapter shares: finding its weights, loading them once, one job at a time.

The blocking parts (imports of torch and friends, loading, inference) all run in the worker
thread that ``run_reporting`` starts, so the event loop never waits on them; that thread posts
progress, which the loop forwards to the job.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from hyperlocal.engines.base import InputValue, LoadObserver
from hyperlocal.engines.local.options import text
from hyperlocal.engines.local.weights import check_name, models_dir
from hyperlocal.engines.media.progress import Report
from hyperlocal.errors import EngineUnavailableError, GenerationError
from hyperlocal.settings import Settings

__all__ = ["Resident", "Weights", "locate", "require"]

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


class Resident(Generic[T]):
    """The one model an adapter keeps loaded, and the gate that runs jobs on it one at a time.

    Asking for other weights (another folder, device or dtype) unloads the resident model
    first: an accelerator holds one large model, not a shelf of them. The gate is a thread
    semaphore taken inside the worker thread, so one holder serves every event loop; a job
    waiting for it ties up a thread, not the loop. ``concurrency`` above 1 lets that many jobs
    share the loaded model, for small models on a large GPU.
    """

    def __init__(
        self,
        engine: str,
        load: Callable[[Weights], T],
        concurrency: int = 1,
        observer: LoadObserver | None = None,
    ) -> None:
        self._engine = engine
        self._observer = observer  # told of each load and release (the operator's metrics)
        self._load = load
        self._gate = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._weights: Weights | None = None
        self._model: T | None = None

    def run(self, weights: Weights, work: Callable[[T], R], report: Report) -> R:
        """Blocking: waits for the gate, loads ``weights`` unless resident, runs ``work``."""
        report(0.0, "waiting for the model")  # one job at a time holds it
        with self._gate:
            report(0.01, "starting")  # raises here, before any work, if the job was cancelled
            return work(self._resident(weights, report))

    def clear(self) -> None:
        with self._lock:
            self._release()

    def _resident(self, weights: Weights, report: Report) -> T:
        with self._lock:
            if self._model is None or self._weights != weights:
                self._release()
                report(0.02, f"loading {weights.folder.name}")
                self._model = self._timed_load(weights)
                self._weights = weights
            return self._model

    def _timed_load(self, weights: Weights) -> T:
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
            self._observer.resident(weights.device, 1)
        return model

    def _release(self) -> None:
        if self._model is None or self._weights is None:
            return
        device = self._weights.device
        self._model, self._weights = None, None
        if self._observer is not None:
            self._observer.resident(device, -1)
        gc.collect()  # pipelines hold reference cycles; their GPU memory waits on the collector
        _empty_cuda_cache()


def _empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")  # never imported just to be emptied
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
