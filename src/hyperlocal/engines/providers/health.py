"""How the router treats a provider's health and its limits.

- :class:`Breaker`: a provider that failed its last ``failures`` calls (unavailable: 5xx,
  timeouts, refused connections) is skipped for ``cooldown`` seconds; then one call is let
  through, and its outcome closes the breaker again or opens it for another cool-down.
- :class:`InFlight`: at most ``cap`` jobs of this process run at a provider at once, the
  operator's concurrency limit there; more wait for a place, in order.
- :class:`Lane`: what a local engine route's queue looks like from here, for ``overflow``.

All three are per process: in a fleet each worker keeps its own, which errs towards trying a
provider again sooner, never towards losing a job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

__all__ = ["DEFAULT_CAP", "Breaker", "InFlight", "Lane", "cap_of"]

DEFAULT_CAP = 32
_EWMA = 0.3  # weight of the newest run in a lane's mean run time

Clock = Callable[[], float]


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None


class Breaker:
    def __init__(self, failures: int, cooldown: float, clock: Clock = time.monotonic) -> None:
        self._limit, self._cooldown, self._clock = failures, cooldown, clock
        self._circuits: dict[str, _Circuit] = {}

    def is_open(self, provider: str) -> bool:
        """Whether calls to ``provider`` are being skipped now."""
        circuit = self._circuits.get(provider)
        if circuit is None or circuit.opened_at is None:
            return False
        return self._clock() - circuit.opened_at < self._cooldown

    def succeeded(self, provider: str) -> None:
        self._circuits.pop(provider, None)

    def failed(self, provider: str) -> None:
        circuit = self._circuits.setdefault(provider, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self._limit:
            circuit.opened_at = self._clock()  # (re)opened: a failed trial call starts over

    def state(self, provider: str) -> str:
        if self.is_open(provider):
            return "open"
        circuit = self._circuits.get(provider)
        return "half-open" if circuit and circuit.opened_at is not None else "closed"


def cap_of(caps: Mapping[str, int], provider: str) -> int:
    """How many of ``provider``'s jobs may be in flight at once (``provider_concurrency``)."""
    return max(1, caps.get(provider, DEFAULT_CAP))


class InFlight:
    def __init__(self, caps: Mapping[str, int]) -> None:
        self._caps = dict(caps)
        self._slots: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        semaphore = self._slots.get(provider)
        if semaphore is None:
            semaphore = asyncio.Semaphore(cap_of(self._caps, provider))
            self._slots[provider] = semaphore
        async with semaphore:
            yield


@dataclass
class Lane:
    """A local engine's jobs in this process: how many are in it, since when, and its mean run
    time, so that a new job's expected wait there can be told."""

    clock: Clock = time.monotonic
    mean_run_s: float | None = None
    _started: dict[int, float] = field(default_factory=dict)
    _next: int = 0

    def expected_wait(self) -> float:
        """Seconds a job entering now would wait: the jobs ahead of it (the engine runs one
        at a time), each taking the mean run time, or at least as long as it has run."""
        now = self.clock()
        return sum(max(self.mean_run_s or 0.0, now - since) for since in self._started.values())

    @asynccontextmanager
    async def entered(self) -> AsyncIterator[None]:
        ticket, self._next = self._next, self._next + 1
        self._started[ticket] = self.clock()
        finished = False
        try:
            yield
            finished = True
        finally:
            began = self._started.pop(ticket)
            if finished:
                self._learn(self.clock() - began)

    def _learn(self, seconds: float) -> None:
        mean = self.mean_run_s
        self.mean_run_s = seconds if mean is None else (1 - _EWMA) * mean + _EWMA * seconds
