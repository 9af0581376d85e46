"""The storage interface: put bytes under a key, get back the URL that clients fetch.

Jobs keep their outputs' keys, and their URLs are made when a client reads the job
(``url``): a presigned URL is then always fresh, and a changed public URL applies to old jobs.

A job's outputs are written under a ``staging_key`` while it runs, never served, and
``publish``ed to their own keys only after the transaction that completed the job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["STAGING", "Storage", "StoredFile"]

STAGING = "staging/"  # where object storage stages outputs (local storage stages beside them)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One stored file, as a listing shows it: its key, size, and last change (unix s)."""

    key: str
    size: int
    modified: float


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key`` (``images/res_x.png``) and return its public URL."""
        ...

    async def url(self, key: str) -> str:
        """The URL a client fetches ``key`` at, now."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``FileNotFoundError`` if there are none."""
        ...

    def staging_key(self, key: str, run: str) -> str:
        """Where run ``run`` writes the output that will be ``key``: a key never served."""
        ...

    async def publish(self, staged: str, key: str) -> None:
        """Move what was ``put`` under ``staged`` (a ``staging_key``) to ``key``, where it is
        served: a job's outputs become visible only once the job has completed."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing if there is none."""
        ...

    def files(self, prefix: str = "") -> AsyncIterator[StoredFile]:
        """Every stored file whose key starts with ``prefix``, staged ones included, in no
        particular order (for reports and sweeps: a listing of a large bucket is slow)."""
        ...

    async def aclose(self) -> None: ...
