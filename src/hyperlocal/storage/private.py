"""Where job inputs are kept: a ``Storage`` that is never served (``Services.private``).

Local storage keeps them under ``<data_dir>/private``, outside the folder that ``/files/``
serves. S3 keeps them in the outputs' bucket under ``<prefix>-private/``: beside the outputs'
prefix, not inside it, so a bucket policy that makes ``<prefix>/*`` public does not reach them.
Their keys carry a random token besides the job id (``core.stored_inputs``), and no URL is ever
made for one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from hyperlocal.storage.base import Storage, StoredFile

__all__ = ["PrivateStorage", "private_prefix"]


def private_prefix(prefix: str) -> str:
    """The S3 key prefix of the private area beside the outputs' ``prefix``."""
    clean = prefix.strip("/")
    return f"{clean}-private" if clean else "private"


class PrivateStorage:
    """``inner``, with every way to a URL refused: ``url`` raises and ``put`` returns ``""``."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        await self._inner.put(key, data, content_type)
        return ""

    async def url(self, key: str) -> str:
        raise PermissionError(f"a private object is never given a URL: {key!r}")

    async def get(self, key: str) -> bytes:
        return await self._inner.get(key)

    def staging_key(self, key: str, run: str) -> str:
        return self._inner.staging_key(key, run)

    async def publish(self, staged: str, key: str) -> None:
        await self._inner.publish(staged, key)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    def files(self, prefix: str = "") -> AsyncIterator[StoredFile]:
        return self._inner.files(prefix)

    async def aclose(self) -> None:
        await self._inner.aclose()
