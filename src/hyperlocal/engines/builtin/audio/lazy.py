"""Load-once holders for models: the first request loads in a thread, the rest reuse it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Lazy"]

T = TypeVar("T")


class Lazy(Generic[T]):
    """Holds what ``load`` returns. Concurrent first callers wait on one load, not several.

    The guard is a thread lock taken inside the worker thread, not an asyncio lock, so one
    holder serves any event loop (tests run one loop per test; the server, one in all). A failed
    load is not remembered: the next request tries again.
    """

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        return await asyncio.to_thread(self.get_blocking)

    def get_blocking(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._load()
            return self._value

    def clear(self) -> None:
        self._value = None
