"""How many SSE streams (chat replies and job events) each key holds open in this process.

A stream holds a connection, a task and its buffers for as long as the client reads, so one key
may open at most ``limit`` at once; one more is refused (429) before anything is charged. The
count is per process: each API process guards its own connections.
"""

from __future__ import annotations

from collections import Counter

from hyperlocal.errors import TooManyStreamsError

__all__ = ["StreamSlot", "StreamSlots"]


class StreamSlot:
    """One open stream's place; ``release`` gives it back (once, however often called)."""

    __slots__ = ("_key_id", "_slots")

    def __init__(self, slots: StreamSlots, key_id: str) -> None:
        self._slots: StreamSlots | None = slots
        self._key_id = key_id

    def release(self) -> None:
        if self._slots is not None:
            self._slots.give_back(self._key_id)
            self._slots = None


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def take(self, key_id: str) -> StreamSlot:
        """A place for one more stream of ``key_id``; ``TooManyStreamsError`` at the limit."""
        if self._open[key_id] >= self.limit:
            raise TooManyStreamsError(self.limit)
        self._open[key_id] += 1
        return StreamSlot(self, key_id)

    def give_back(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]

    def open_for(self, key_id: str) -> int:
        return self._open[key_id]
