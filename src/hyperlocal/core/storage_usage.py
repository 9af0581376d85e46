"""What the stored files take: bytes and file counts by kind and by age, for operators
(``hyperlocal storage usage`` and ``GET /admin/storage``). It lists the storage itself, not
the database, so it counts what is really there: staged outputs, inputs, orphans."""

from __future__ import annotations

from dataclasses import dataclass, field

from hyperlocal.storage.base import Storage, StoredFile

__all__ = ["AGES", "KINDS", "StorageUsage", "Tally", "measure"]

# The top folder of an output's key -> its kind (``queue.runner`` names the folders).
_FOLDER_KINDS = {"images": "images", "videos": "videos", "audio": "audio", "3d": "3d"}
KINDS = ("images", "videos", "audio", "3d", "inputs", "other")
# Age buckets: (name, files younger than this many seconds); the last takes the rest.
AGES: tuple[tuple[str, float], ...] = (
    ("<1h", 3600.0),
    ("<1d", 86_400.0),
    ("<7d", 7 * 86_400.0),
    ("older", float("inf")),
)


@dataclass(slots=True)
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size


@dataclass(frozen=True, slots=True)
class StorageUsage:
    total: Tally = field(default_factory=Tally)
    by_kind: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    by_age: dict[str, Tally] = field(default_factory=lambda: {a: Tally() for a, _ in AGES})

    def as_dict(self) -> dict[str, object]:
        """As ``GET /admin/storage`` and ``hyperlocal storage usage --json`` show it."""
        return {
            "total": _tally(self.total),
            "byKind": {k: _tally(t) for k, t in self.by_kind.items()},
            "byAge": {a: _tally(t) for a, t in self.by_age.items()},
        }

    def count(self, kind: str, age_s: float, size: int) -> None:
        self.total.add(size)
        self.by_kind[kind].add(size)
        self.by_age[next(name for name, below in AGES if age_s < below)].add(size)


async def measure(outputs: Storage, inputs: Storage, now: float) -> StorageUsage:
    """Tally every stored file: in ``outputs`` each by its key's top folder, and every file in
    ``inputs`` (the private storage of job inputs) as an input. One storage given twice is
    listed once."""
    usage = StorageUsage()
    async for found in outputs.files():
        usage.count(kind_of(found), now - found.modified, found.size)
    if inputs is not outputs:
        async for found in inputs.files():
            usage.count("inputs", now - found.modified, found.size)
    return usage


def kind_of(found: StoredFile) -> str:
    folder = found.key.partition("/")[0]
    if folder == "inputs":
        return "inputs"
    return _FOLDER_KINDS.get(folder, "other")


def _tally(tally: Tally) -> dict[str, int]:
    return {"files": tally.files, "bytes": tally.bytes}
