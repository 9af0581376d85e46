"""The device manager: one shelf of loaded models for every local adapter of a process.

A worker process owns its accelerators: each CUDA device, and the CPU as a device too. Each
device gets a budget, ``HYPERLOCAL_GPU_MEMORY_FRACTION`` of its total memory, and the models
on it never add up to more:

- a job asks for a model (:class:`ModelSpec`) and gets a :class:`Lease` on a loaded copy;
- placement: a free copy on a device that already holds the model (affinity); otherwise a
  new copy on the device with the most free budget, where it fits;
- it fits once the least recently used *idle* models there are evicted, as many as needed;
  a model in use, or pinned by ``preload``, is never evicted;
- a model that fits only once models in use are released waits for them (on a condition);
  one that can never fit (bigger than every budget, less what is pinned) fails at once with
  :class:`ModelTooLargeError`, a ``GenerationError``: the job fails and is refunded;
- before a load, its size is the last one measured, else the spec's estimate (the weights
  on disk); after it, the size is measured (the CUDA allocator's growth, or the bytes of the
  model's tensors), so the budget counts what the model really holds;
- ``sweep()`` unloads models idle longer than ``HYPERLOCAL_MODEL_IDLE_SECONDS``; a daemon
  thread calls it while anything is loaded.

Memory is read through a ``probe.MemoryProbe`` (``probe.SystemProbe`` asks torch, imported
only once a local engine places its first model); tests inject fake devices, and a clock.
The rules of room on one device live in ``shelf``; this module adds the threads: jobs call
the manager from their worker threads, and wait on its condition.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar, cast

from hyperlocal.engines.base import LoadObserver
from hyperlocal.engines.local.probe import MemoryProbe
from hyperlocal.engines.local.shelf import (
    DeviceSnapshot,
    ModelSnapshot,
    ModelSpec,
    ModelTooLargeError,
    Shelf,
    Slot,
    check_fits,
    readable,
)
from hyperlocal.errors import GenerationError

__all__ = [
    "DeviceManager",
    "DeviceSnapshot",
    "Lease",
    "ModelSnapshot",
    "ModelSpec",
    "ModelTooLargeError",
    "NoDeviceError",
    "readable",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
WAKE_S = 2.0  # a waiting job looks up this often, to notice that it was cancelled


class NoDeviceError(GenerationError):
    """The model asks for a device (``cuda``, ``cuda:1``) that this process does not have."""


class Lease(Generic[T]):
    """A job's hold on a placed model, for the ``with`` block of ``use`` only: it lets go
    of the model as the block ends, so that a lease left in a variable cannot keep an
    evicted model's memory from being freed."""

    __slots__ = ("_model", "device")

    def __init__(self, model: T, device: str) -> None:
        self._model: T | None = model
        self.device = device  # where it was placed: "cuda:0", "cpu"

    @property
    def model(self) -> T:
        if self._model is None:
            raise RuntimeError("the lease has ended: the model may be unloaded")
        return self._model

    def end(self) -> None:
        self._model = None


def _nothing() -> None:
    return None


class DeviceManager:
    """The process's devices and the models loaded on them (see the module's docstring).

    ``fraction`` of each device's total is its budget; models idle ``idle_seconds`` (by
    ``clock``) are unloaded by ``sweep()``, which a daemon thread calls every ``sweep_every``
    seconds while anything is loaded (None: only when called). ``observer`` is told of each
    model placed on (``resident(device, 1)``) or removed from (-1) a device."""

    def __init__(
        self,
        probe: MemoryProbe,
        *,
        fraction: float = 0.9,
        idle_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        observer: LoadObserver | None = None,
        sweep_every: float | None = None,
    ) -> None:
        self._probe, self._fraction, self._clock = probe, fraction, clock
        self._idle_s, self._observer = idle_seconds, observer
        self._sweep_every = sweep_every if idle_seconds > 0 else None
        self._changed = threading.Condition()
        self._devices: dict[str, Shelf] | None = None  # probed at the first placement
        self._measured: dict[Hashable, int] = {}  # the last measured size of each model
        self._sweeper: _Sweeper | None = None

    # -- jobs -------------------------------------------------------------------------------

    @contextmanager
    def use(self, spec: ModelSpec[T], waiting: Callable[[], None] = _nothing) -> Iterator[Lease[T]]:
        """Blocking: places ``spec`` (loading it unless a free copy is loaded) and holds it
        for the ``with`` block. ``waiting`` is called while it waits for room or for a busy
        copy, about every ``WAKE_S``: it may raise to give up (a cancelled job)."""
        slot = self._acquire(spec, waiting)
        lease = Lease(cast(T, slot.model), slot.device)
        try:
            yield lease
        finally:
            lease.end()
            self._release(slot)

    def preload(self, spec: ModelSpec[Any]) -> str:
        """Blocking: loads ``spec`` unless loaded, and pins it: never evicted nor unloaded
        while idle. Returns the device that holds it."""
        slot = self._acquire(spec, _nothing)
        with self._changed:
            slot.pinned = True
        self._release(slot)
        log.info("pinned %s on %s", spec.name, slot.device, extra={"device": slot.device})
        return slot.device

    # -- upkeep -----------------------------------------------------------------------------

    def sweep(self) -> int:
        """Unloads the models idle longer than ``idle_seconds``; returns how many."""
        if self._idle_s <= 0:
            return 0
        with self._changed:
            now = self._clock()
            stale = [s for s in self._slots() if s.idle() and now - s.last_used >= self._idle_s]
            self._remove(stale)
        self._drop(stale, "idle")
        return len(stale)

    def unload(self, owner: str | None = None) -> None:
        """Blocking: unloads ``owner``'s models (None: every model), pinned or in use (those
        jobs keep their reference until they end), once the ones loading have loaded."""
        with self._changed:
            self._changed.wait_for(lambda: all(s.loaded for s in self._owned(owner)))
            gone = list(self._owned(owner))
            self._remove(gone)
        self._drop(gone, "closed")

    def snapshot(self) -> list[DeviceSnapshot]:
        """Each device's memory and models now; empty until a local engine first placed a
        model (devices are probed then, so that a scrape never starts CUDA)."""
        with self._changed:
            shelves, now = list((self._devices or {}).values()), self._clock()
            held = [(shelf, shelf.snapshot(0, now)) for shelf in shelves]
        return [replace(shot, free=self._probe.memory(s.name).free) for s, shot in held]

    # -- placing ----------------------------------------------------------------------------

    def _acquire(self, spec: ModelSpec[Any], waiting: Callable[[], None]) -> Slot:
        with self._changed:
            while (claimed := self._claim(spec)) is None:
                waiting()
                self._changed.wait(WAKE_S)
        slot, evicted = claimed
        if not slot.loaded:
            self._load(slot, evicted)
        return slot

    def _claim(self, spec: ModelSpec[Any]) -> tuple[Slot, list[Slot]] | None:
        """Under the lock: a free copy, or a new one reserved (with what it evicts), or None
        to wait. Raises when the model can never be placed."""
        devices = self._candidates(spec)
        size = self._measured.get(spec.key, spec.estimate)
        check_fits(spec, size, devices)
        copies = [s for d in devices for s in d.slots if s.spec.key == spec.key]
        if free := [s for s in copies if s.free()]:
            slot = max(free, key=lambda s: self._device(s.device).room())
            slot.users += 1
            return slot, []
        if not all(s.loaded for s in copies):
            return None  # one copy loads at a time: wait for it
        holding = {s.device for s in copies}
        for device in sorted(devices, key=Shelf.room, reverse=True):
            if device.name not in holding and (evicted := device.evictable(size)) is not None:
                self._remove(evicted)
                slot = Slot(spec, device.name, size, self._clock())
                device.slots.append(slot)
                return slot, evicted
        return None

    def _candidates(self, spec: ModelSpec[Any]) -> list[Shelf]:
        devices = self._known()
        if spec.wants in devices:
            return [devices[spec.wants]]
        found = [d for d in devices.values() if d.name.partition(":")[0] == spec.wants]
        if not found:
            raise NoDeviceError(
                f"{spec.name} asks for device {spec.wants!r}; this worker has {', '.join(devices)}"
            )
        return found

    def _known(self) -> dict[str, Shelf]:
        if self._devices is None:
            self._devices = {name: self._probed(name) for name in self._probe.devices()}
            log.info("devices: %s", ", ".join(d.describe() for d in self._devices.values()))
        return self._devices

    def _probed(self, name: str) -> Shelf:
        total = self._probe.memory(name).total
        return Shelf(name, total, int(total * self._fraction))

    def _device(self, name: str) -> Shelf:
        return self._known()[name]

    def _slots(self) -> Iterator[Slot]:
        for device in (self._devices or {}).values():
            yield from device.slots

    def _owned(self, owner: str | None) -> Iterator[Slot]:
        return (s for s in self._slots() if owner in (None, s.spec.owner))

    # -- loading and unloading --------------------------------------------------------------

    def _load(self, slot: Slot, evicted: list[Slot]) -> None:
        """Outside the lock, one load per device at a time: what the reservation evicted is
        freed first, so the device never holds both; then the model's size is measured."""
        device = self._device(slot.device)
        try:
            with device.loading:
                self._drop(evicted, f"making room for {slot.spec.name}")
                before = self._probe.allocated(device.name)
                model = slot.spec.load(device.name)
                size = self._measure(slot, model, before)
        except BaseException:
            with self._changed:
                device.slots.remove(slot)
                self._changed.notify_all()
            raise
        self._loaded(slot, model, size)

    def _measure(self, slot: Slot, model: object, before: int) -> int:
        grown = self._probe.allocated(slot.device) - before
        measured = max(grown, self._probe.footprint(model))
        return measured if measured > 0 else slot.size  # a runtime we cannot see into

    def _loaded(self, slot: Slot, model: object, size: int) -> None:
        device = self._device(slot.device)
        with self._changed:
            slot.model, slot.size, slot.loaded = model, size, True
            self._measured[slot.spec.key] = size
            over = device.evictable(0) or []  # measured above its estimate: settle
            self._remove(over)
            self._changed.notify_all()
            self._start_sweeping()
        if device.room() < 0:
            log.warning("%s is over its budget: the models in use there hold it", device.name)
        log.info(
            "placed %s on %s: %s of %s used",
            slot.spec.name,
            device.name,
            readable(device.used()),
            readable(device.budget),
            extra={"device": device.name, "bytes": size},
        )
        if self._observer is not None:
            self._observer.resident(device.name, 1)
        self._drop(over, f"{slot.spec.name} measured larger than estimated")

    def _release(self, slot: Slot) -> None:
        with self._changed:
            slot.users -= 1
            slot.last_used = self._clock()
            self._changed.notify_all()

    def _remove(self, slots: list[Slot]) -> None:
        """Under the lock: off the shelf, so their room is counted free."""
        for slot in slots:
            self._device(slot.device).slots.remove(slot)
        if slots:
            self._changed.notify_all()
        if self._sweeper is not None and not any(True for _ in self._slots()):
            self._sweeper.stop()
            self._sweeper = None

    def _drop(self, slots: list[Slot], why: str) -> None:
        """Outside the lock: lets go of removed models, and of the memory they held."""
        for slot in slots:
            slot.model = None
            log.info("unloaded %s from %s (%s)", slot.spec.name, slot.device, why)
            if self._observer is not None:
                self._observer.resident(slot.device, -1)
        if slots:
            gc.collect()  # pipelines hold reference cycles; their memory waits on the collector
            _empty_cuda_cache()

    def _start_sweeping(self) -> None:
        if self._sweep_every is not None and self._sweeper is None:
            self._sweeper = _Sweeper(self, self._sweep_every)


def _empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")  # never imported just to be emptied
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Sweeper:
    """A daemon thread that calls ``sweep()`` every ``every`` seconds. It holds the manager
    weakly, so a manager nobody uses any more is collected, and the thread ends with it."""

    def __init__(self, manager: DeviceManager, every: float) -> None:
        self._manager = weakref.ref(manager)
        self._every = every
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="model-sweeper", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._every):
            manager = self._manager()
            if manager is None:
                return
            try:
                manager.sweep()
            except Exception:
                log.exception("unloading idle models failed")
            del manager
