"""The load generator: a fixed number of identical POSTs over ``concurrency`` keep-alive
connections, timing each request from send to the last byte of the response."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter

import httpx

__all__ = ["Round", "Target", "percentile", "run_round"]

Advance = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Round:
    """One measured batch against one target. Latencies are of successful (200) requests."""

    target: str
    index: int
    latencies_s: tuple[float, ...]
    errors: int
    elapsed_s: float

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s


class Target:
    """One server under load: its name and a pooled client (the auth header lives only here)."""

    def __init__(
        self, name: str, base_url: str, headers: Mapping[str, str], concurrency: int
    ) -> None:
        self.name = name
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(
            base_url=base_url, headers=dict(headers), limits=limits, timeout=60.0
        )

    async def aclose(self) -> None:
        await self.client.aclose()


async def run_round(
    target: Target,
    path: str,
    body: bytes,
    requests: int,
    concurrency: int,
    *,
    index: int = 0,
    advance: Advance = lambda: None,
) -> Round:
    pending = iter(range(requests))  # shared by the workers: each request is taken once
    workers = [_worker(target.client, path, body, pending, advance) for _ in range(concurrency)]
    start = perf_counter()
    results = await asyncio.gather(*workers)
    elapsed = perf_counter() - start
    latencies = tuple(t for times, _ in results for t in times)
    return Round(target.name, index, latencies, sum(e for _, e in results), elapsed)


async def _worker(
    client: httpx.AsyncClient, path: str, body: bytes, pending: Iterator[int], advance: Advance
) -> tuple[list[float], int]:
    headers = {"content-type": "application/json"}
    times: list[float] = []
    errors = 0
    for _ in pending:
        start = perf_counter()
        response = await client.post(path, content=body, headers=headers)
        if response.status_code == 200:
            times.append(perf_counter() - start)
        else:
            errors += 1
        advance()
    return times, errors


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in (0, 100]."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
