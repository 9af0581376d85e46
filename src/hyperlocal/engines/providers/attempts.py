"""What the router records of a job's way through its routes, and what it tells adapters.

:class:`Attempt` is one route tried (its record goes to the job's row, ``route_attempts``);
:class:`Run` is one job on its way, with every attempt so far; :class:`AttemptWatch` is the
router's side of ``base.Watch`` for one attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperlocal.engines.base import GenerationRequest, PositionCallback, ProgressCallback
from hyperlocal.engines.providers.hub import WebhookHub
from hyperlocal.engines.providers.routes import RouteSpec

__all__ = ["Attempt", "AttemptWatch", "Run", "all_failed", "outcome_of", "total_cost"]

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """One route tried for one job; ``outcome`` is ``ok``, ``unavailable``, ``throttled``,
    ``invalid``, ``failed``, ``canceled``, or ``skipped`` (with the reason in ``error``)."""

    route: str
    provider: str
    started: float = field(default_factory=time.monotonic)
    outcome: str = "running"
    request_id: str | None = None
    status: int | None = None
    error: str | None = None
    latency_s: float | None = None
    cost_usd: float | None = None

    def end(self, outcome: str, error: str | None = None, status: int | None = None) -> None:
        self.outcome, self.error, self.status = outcome, error, status
        self.latency_s = round(time.monotonic() - self.started, 4)

    def record(self) -> dict[str, object]:
        return {
            "route": self.route,
            "provider": self.provider,
            "requestId": self.request_id,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
            "latencyS": self.latency_s,
            "costUsd": self.cost_usd,
        }


@dataclass
class Run:
    """One job on its way through the routes."""

    request: GenerationRequest
    progress: ProgressCallback
    position: PositionCallback
    attempts: list[Attempt] = field(default_factory=list)

    def attempt(self, route: RouteSpec) -> Attempt:
        self.attempts.append(Attempt(route.to, route.provider))
        return self.attempts[-1]

    def records(self) -> tuple[dict[str, object], ...]:
        return tuple(a.record() for a in self.attempts)


class AttemptWatch:
    """The router's side of ``base.Watch`` for one attempt."""

    def __init__(
        self,
        attempt: Attempt,
        hub: WebhookHub,
        progress: ProgressCallback,
        position: PositionCallback,
    ) -> None:
        self._attempt, self.hub = attempt, hub
        self._progress, self._position = progress, position

    async def submitted(self, request_id: str) -> None:
        self._attempt.request_id = request_id
        log.info(
            "provider accepted the job",
            extra={"provider": self._attempt.provider, "request_id": request_id},
        )

    async def progress(
        self, fraction: float | None = None, queue_position: int | None = None
    ) -> None:
        await self._position(queue_position)
        if fraction is not None:
            await self._progress(fraction, self._attempt.provider)

    async def wait(self, request_id: str, seconds: float) -> Mapping[str, Any] | None:
        return await self.hub.wait(self._attempt.provider, request_id, seconds)


def outcome_of(exc: BaseException) -> str:
    return "canceled" if isinstance(exc, asyncio.CancelledError) else "failed"


def total_cost(attempts: Sequence[Attempt]) -> float | None:
    costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
    return round(sum(costs), 6) if costs else None


def all_failed(attempts: Sequence[Attempt]) -> str:
    tried = "; ".join(f"{a.route}: {a.error or a.outcome}" for a in attempts)
    return f"Every route of this model failed ({tried})"
