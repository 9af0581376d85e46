"""Per-key rolling-window rate limits: an exact moving window over the last hour.

Embedded: ``MemoryWindow``, in this process. With ``HYPERLOCAL_REDIS_URL``: the ``limits``
package's moving window in Redis, so every API process shares one count per key.

The embedded window is ours rather than ``limits``' in-memory storage because that one is
built for a different load: each counted request starts an expiry task that hops to a thread
for every key, and inserts at the front of a list as long as the limit, which together cost
more than the rest of a relayed chat request.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerHour
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from hyperlocal.errors import RateLimitedError

__all__ = ["WINDOW_S", "MemoryWindow", "RateLimitState", "RateLimiter"]

WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_at: float  # unix seconds when the oldest counted request leaves the window


class MemoryWindow:
    """For each key, the times of the requests counted in the last ``window_s``, oldest first.

    A request is counted if fewer than ``limit`` were counted in the window before it; one that
    is refused is not counted. A key holds at most ``limit`` times (one float each); keys with
    nothing left in the window are dropped once a minute (``sweep``).
    """

    SWEEP_EVERY_S = 60.0

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s, self._clock = window_s, clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = clock() + self.SWEEP_EVERY_S

    def hit(self, key: str, limit: int) -> tuple[bool, RateLimitState]:
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep()
            self._next_sweep = now + self.SWEEP_EVERY_S
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        horizon = now - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        # When enough counted requests leave the window for one more to fit (the limit may
        # have been lowered below what the window holds).
        leaving = hits[max(0, len(hits) - limit)] if hits else now
        return allowed, RateLimitState(limit, max(0, limit - len(hits)), leaving + self.window_s)

    def __len__(self) -> int:
        return len(self._hits)

    def sweep(self) -> None:
        """Forget keys with nothing left in the window."""
        horizon = self._clock() - self.window_s
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= horizon]:
            del self._hits[key]


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self._memory: MemoryWindow | None = None
        self._storage: RedisStorage | None = None
        if redis_url:
            self._storage = RedisStorage(
                _async_uri(redis_url), implementation="redispy", key_prefix="hyperlocal"
            )
            self._limiter = MovingWindowRateLimiter(self._storage)
        else:
            self._memory = MemoryWindow()

    async def hit(self, key_id: str, limit: int) -> RateLimitState:
        """Count one request, or raise ``RateLimitedError`` without counting it."""
        if self._memory is not None:
            allowed, state = self._memory.hit(key_id, limit)
        else:
            allowed, state = await self._shared_hit(key_id, limit)
        if not allowed:
            retry_after = max(1, math.ceil(state.reset_at - time.time()))
            raise RateLimitedError(limit, state.reset_at, retry_after)
        return state

    async def _shared_hit(self, key_id: str, limit: int) -> tuple[bool, RateLimitState]:
        item = RateLimitItemPerHour(limit)
        allowed = await self._limiter.hit(item, key_id)
        stats = await self._limiter.get_window_stats(item, key_id)
        return allowed, RateLimitState(limit, stats.remaining, stats.reset_time)

    async def aclose(self) -> None:
        if self._storage is not None:
            client: Any = getattr(self._storage.bridge, "storage", None)  # redis.asyncio.Redis
            if client is not None:
                await client.aclose()


def _async_uri(url: str) -> str:
    return url if url.startswith("async+") else "async+" + url
