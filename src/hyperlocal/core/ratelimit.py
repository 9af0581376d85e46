"""Per-key rolling-window rate limits, via the ``limits`` package.

Embedded: in-memory moving window. With ``HYPERLOCAL_REDIS_URL``: the same moving window in
Redis, so every API process shares one count per key.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerHour
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from hyperlocal.errors import RateLimitedError

__all__ = ["RateLimitState", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_at: float  # unix seconds when the oldest counted request leaves the window


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self._storage: Storage = (
            RedisStorage(_async_uri(redis_url), implementation="redispy", key_prefix="hyperlocal")
            if redis_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def hit(self, key_id: str, limit: int) -> RateLimitState:
        """Count one request, or raise ``RateLimitedError`` without counting it."""
        item = RateLimitItemPerHour(limit)
        allowed = await self._limiter.hit(item, key_id)
        stats = await self._limiter.get_window_stats(item, key_id)
        if not allowed:
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimitedError(limit, stats.reset_time, retry_after)
        return RateLimitState(limit, stats.remaining, stats.reset_time)

    async def aclose(self) -> None:
        if isinstance(self._storage, RedisStorage):
            client: Any = getattr(self._storage.bridge, "storage", None)  # redis.asyncio.Redis
            if client is not None:
                await client.aclose()


def _async_uri(url: str) -> str:
    return url if url.startswith("async+") else "async+" + url
