"""Outputs in a local directory, served by the app under ``/files/``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from hyperlocal.storage.base import StoredFile

__all__ = ["LocalStorage"]


class LocalStorage:
    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")

    def path_for(self, key: str) -> Path:
        clean = PurePosixPath(key)
        if clean.is_absolute() or ".." in clean.parts:
            raise ValueError(f"unsafe storage key: {key!r}")
        return self.root.joinpath(*clean.parts)

    async def put(self, key: str, data: bytes, content_type: str) -> str:  # noqa: ARG002
        await asyncio.to_thread(self._write, self.path_for(key), data)
        return await self.url(key)

    async def url(self, key: str) -> str:
        return f"{self.base_url}/files/{key}"

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        # Write then rename, so a reader never sees half a file.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)

    def staging_key(self, key: str, run: str) -> str:
        """Beside the output, under a hidden name (``/files/`` serves no dot-name): publishing
        is then one rename in one folder."""
        folder, _, name = key.rpartition("/")
        staged = f".staged-{run}-{name}"
        return f"{folder}/{staged}" if folder else staged

    async def publish(self, staged: str, key: str) -> None:
        await asyncio.to_thread(self.path_for(staged).replace, self.path_for(key))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)

    async def files(self, prefix: str = "") -> AsyncIterator[StoredFile]:
        for found in await asyncio.to_thread(self._walk, prefix):
            yield found

    def _walk(self, prefix: str) -> list[StoredFile]:
        found: list[StoredFile] = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        stat = path.stat()
                        found.append(StoredFile(key, stat.st_size, stat.st_mtime))
        return found

    async def aclose(self) -> None:
        return None
