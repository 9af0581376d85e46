"""The shelf: which models sit on which device, and the rules of room on it.

The typed values here are what :mod:`devices` takes and shows: a :class:`ModelSpec` is a
model that a job needs, a :class:`DeviceSnapshot` what one device holds now. :class:`Shelf`
is one device's models with the two rules the manager places by: the least recently used
idle models are evicted first (:meth:`Shelf.evictable`), and a model larger than a budget,
less what is pinned there, can never be placed (:func:`check_fits`). Nothing here locks:
the manager calls it under its own lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hyperlocal.errors import GenerationError

__all__ = [
    "GIB",
    "DeviceSnapshot",
    "ModelSnapshot",
    "ModelSpec",
    "ModelTooLargeError",
    "Shelf",
    "Slot",
    "check_fits",
    "readable",
]

T = TypeVar("T")
GIB = 1024**3


class ModelTooLargeError(GenerationError):
    """The model needs more memory than any device's budget can ever give it."""


@dataclass(frozen=True, slots=True)
class ModelSpec(Generic[T]):
    """One model a job needs. Specs with equal ``key`` are the same model."""

    owner: str  # the engine that loads it: metrics, and what ``unload(owner)`` drops
    name: str  # for people: logs and errors
    key: Hashable
    wants: str  # "cpu", "cuda" (any CUDA device) or "cuda:1"
    estimate: int  # bytes it will hold once loaded, until a load has measured it
    load: Callable[[str], T] = field(compare=False)  # blocking: the device's name -> the model
    concurrency: int = 1  # jobs that may share one loaded copy


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    name: str
    owner: str
    size: int  # bytes: measured, or reserved while it loads
    users: int
    pinned: bool
    loading: bool
    idle_s: float  # since its last job ended; 0 while in use or loading


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device: str
    total: int
    free: int  # as the device reports it: other processes' use included
    budget: int
    used: int  # by the models on the shelf here
    models: tuple[ModelSnapshot, ...]


@dataclass(slots=True, eq=False)
class Slot:
    """One copy of a model on one device: loading, in use, or idle."""

    spec: ModelSpec[Any]
    device: str
    size: int
    last_used: float
    users: int = 1  # the job that reserved it
    model: object = None
    loaded: bool = False
    pinned: bool = False

    def free(self) -> bool:
        return self.loaded and self.users < self.spec.concurrency

    def idle(self) -> bool:
        return self.loaded and self.users == 0 and not self.pinned

    def snapshot(self, now: float) -> ModelSnapshot:
        idle = max(0.0, now - self.last_used) if self.users == 0 and self.loaded else 0.0
        spec = self.spec
        return ModelSnapshot(
            spec.name, spec.owner, self.size, self.users, self.pinned, not self.loaded, idle
        )


@dataclass(slots=True, eq=False)
class Shelf:
    """One device: its budget, and the models on it."""

    name: str
    total: int
    budget: int
    slots: list[Slot] = field(default_factory=list)
    loading: threading.Lock = field(default_factory=threading.Lock)  # one load at a time

    def used(self) -> int:
        return sum(s.size for s in self.slots)

    def room(self) -> int:
        return self.budget - self.used()

    def pinned(self) -> int:
        return sum(s.size for s in self.slots if s.pinned)

    def evictable(self, size: int) -> list[Slot] | None:
        """The idle models to evict, least recently used first, to make ``size`` bytes of
        room; None when even all of them would not do."""
        need = size - self.room()
        idle = sorted((s for s in self.slots if s.idle()), key=lambda s: s.last_used)
        if need > sum(s.size for s in idle):
            return None
        evicted: list[Slot] = []
        for slot in idle:
            if need <= 0:
                break
            evicted.append(slot)
            need -= slot.size
        return evicted

    def snapshot(self, free: int, now: float) -> DeviceSnapshot:
        models = tuple(s.snapshot(now) for s in self.slots)
        return DeviceSnapshot(self.name, self.total, free, self.budget, self.used(), models)

    def describe(self) -> str:
        return f"{self.name} (budget {readable(self.budget)} of {readable(self.total)})"


def check_fits(spec: ModelSpec[Any], size: int, shelves: list[Shelf]) -> None:
    """ModelTooLargeError, naming the sizes, unless some budget (less what is pinned on that
    device, which never leaves) can hold ``size``."""
    best = max(shelves, key=lambda d: d.budget - d.pinned())
    if size <= best.budget - best.pinned():
        return
    pinned = f", {readable(best.pinned())} of it held by pinned models" if best.pinned() else ""
    raise ModelTooLargeError(
        f"model {spec.name} needs {readable(size)}; device {best.name}'s budget is "
        f"{readable(best.budget)}{pinned}"
    )


def readable(size: int) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB // 10 else f"{size / 1024**2:.1f} MiB"
