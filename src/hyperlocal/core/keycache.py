"""Recently authenticated keys, kept in this process for a few seconds.

Every request authenticates, and most requests come from a few keys, so looking the key up
in the database each time is the largest fixed cost of a request. An entry lives for ``ttl``
seconds. A revocation made through this process takes effect at once; one made elsewhere (the
CLI, another API process) takes effect within ``ttl``. Only valid keys are cached, so an
unknown or revoked key always reaches the database. The balance in a cached ``KeyInfo`` is as
of its authentication: a hint (chat uses it to decide whether to overlap the charge with the
backend), never what a charge or a 402 is decided on.

A key read from the database just before a revocation must not be cached after it (the
revocation's ``forget`` would then be undone for ``ttl``): a reader takes ``epoch()`` before
its read and passes it to ``put``, which stores nothing if any key was forgotten since.
Revocations are rare, so the cost is an occasional extra database read.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from hyperlocal.core.keys import KeyInfo

__all__ = ["KeyCache"]


@dataclass(frozen=True, slots=True)
class _Entry:
    info: KeyInfo
    expires_at: float


class KeyCache:
    """Valid keys by hash, for ``ttl`` seconds, at most ``max_entries`` (least recent dropped)."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._forgets = 0

    def epoch(self) -> int:
        """Take before reading a key from the database; pass to ``put``."""
        return self._forgets

    def get(self, key_hash: str) -> KeyInfo | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            del self._entries[key_hash]
            return None
        self._entries.move_to_end(key_hash)
        return entry.info

    def put(self, key_hash: str, info: KeyInfo, read_at: int) -> None:
        """Cache ``info``, read from the database at ``epoch()`` == ``read_at``: unless a key
        was forgotten since (it may have been this one, revoked after the read)."""
        if self.ttl <= 0 or info.revoked or read_at != self._forgets:
            return
        self._entries[key_hash] = _Entry(info, time.monotonic() + self.ttl)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key_id: str) -> None:
        """Drop every entry for ``key_id`` (revoked, or its limits changed)."""
        self._forgets += 1
        stale = [h for h, e in self._entries.items() if e.info.id == key_id]
        for key_hash in stale:
            del self._entries[key_hash]

    def __len__(self) -> int:
        return len(self._entries)
