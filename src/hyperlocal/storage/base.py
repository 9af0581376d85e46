"""The storage interface: put bytes under a key, get back the URL that clients fetch.

Jobs keep their outputs' keys, and their URLs are made when a client reads the job
(``url``): a presigned URL is then always fresh, and a changed public URL applies to old jobs.

Keys under ``STAGING`` are never served: a job's outputs are written there while it runs, and
``publish``ed to their own keys only after the transaction that completed the job.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["STAGING", "Storage"]

STAGING = "staging/"


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

    async def publish(self, staged: str, key: str) -> None:
        """Move what was ``put`` under ``staged`` (a key under ``staging/``, never served) to
        ``key``, where it is served: a job's outputs are made visible only once it completed."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing if there is none."""
        ...

    async def aclose(self) -> None: ...
