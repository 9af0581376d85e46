"""A job's input media, kept for its run in the private area (``Services.private``, never
served): written at submit, read back by the runner, deleted if the submit fails, and swept
if a process died in between.

A submit writes its inputs before the transaction that creates its job, so no worker ever
claims a job whose inputs are not there yet. A submit that does not commit deletes them again,
whatever stopped it (``discard``). What is left only by a process that died between the two is
an orphan: ``sweep_orphans`` deletes it once it is an hour old (no submit takes that long) and
no job row names it.

Keys are ``inputs/<job id>/<token>-<field>-<i>``: the job id, for the sweep; and a random
token, because a job's id is public (video, audio and 3D outputs are named after it). Jobs of
versions before the private area kept theirs as ``inputs/<job id>/<field>-<i>`` in the public
storage; their records carry no ``private`` mark, and are read from there (``/files/`` serves
nothing under ``inputs/``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from hyperlocal.engines.base import MediaInput, MediaKind
from hyperlocal.storage.base import Storage
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database

__all__ = ["FOLDER", "ORPHAN_AGE_S", "discard", "load", "store_inputs", "sweep_orphans"]

log = logging.getLogger(__name__)

FOLDER = "inputs/"
ORPHAN_AGE_S = 3600.0
_ID_BATCH = 500  # job ids per existence query


async def store_inputs(
    private: Storage, job_id: str, media: Mapping[str, Sequence[MediaInput]], written: list[str]
) -> dict[str, Any]:
    """Write ``media`` for job ``job_id``; the records that ``Job.inputs`` keeps. Each key goes
    into ``written`` before its write begins, for ``discard`` to find whatever happens."""
    token = secrets.token_hex(16)
    stored: dict[str, Any] = {}
    for name, items in media.items():
        stored[name] = []
        for i, item in enumerate(items):
            key = f"{FOLDER}{job_id}/{token}-{name}-{i}"
            written.append(key)
            await private.put(key, item.data, item.content_type)
            stored[name].append(_record(key, item))
    return stored


def _record(key: str, item: MediaInput) -> dict[str, Any]:
    source = "data:" if item.source.startswith("data:") else item.source  # the bytes are here
    return {
        "key": key,
        "private": True,
        "kind": item.kind.value,
        "content_type": item.content_type,
        "field": item.field,
        "source": source,
    }


async def load(
    private: Storage, public: Storage, stored: Mapping[str, Any]
) -> dict[str, list[MediaInput]]:
    """The media of ``Job.inputs``; records without the ``private`` mark are read from the
    public storage, where versions before the private area wrote them."""
    media: dict[str, list[MediaInput]] = {}
    for name, items in stored.items():
        media[name] = [await _load_one(private if r.get("private") else public, r) for r in items]
    return media


async def _load_one(storage: Storage, record: Mapping[str, Any]) -> MediaInput:
    return MediaInput(
        field=record["field"],
        kind=MediaKind(record["kind"]),
        content_type=record["content_type"],
        data=await storage.get(record["key"]),
        source=record["source"],
    )


async def discard(
    db: Database, private: Storage, job_id: str, keys: Sequence[str], *, unsure: bool
) -> None:
    """Delete the inputs of a submit that failed. When the failure came at or after the commit
    (``unsure``: a dropped connection, a cancellation), the job may exist all the same: its
    inputs then stay. Never raises: what cannot be deleted now is left to the sweep."""
    if not keys:
        return
    try:
        if unsure and await _existing(db, {job_id}):
            return
        for key in keys:
            await private.delete(key)
    except Exception:
        log.warning("deleting a refused job's inputs failed", extra={"job_id": job_id})


async def sweep_orphans(
    db: Database, private: Storage, now: float, *, min_age: float = ORPHAN_AGE_S
) -> list[str]:
    """Delete every stored input older than ``min_age`` whose job does not exist; their keys."""
    old = [f.key async for f in private.files(FOLDER) if f.modified < now - min_age]
    live = await _existing(db, {_job_of(key) for key in old})
    orphans = [key for key in old if _job_of(key) not in live]
    for key in orphans:
        await private.delete(key)
    if orphans:
        log.info("orphaned inputs deleted", extra={"count": len(orphans)})
    return orphans


def _job_of(key: str) -> str:
    return key.removeprefix(FOLDER).partition("/")[0]


async def _existing(db: Database, job_ids: set[str]) -> set[str]:
    ordered, found = sorted(job_ids), set[str]()
    async with db.read() as session:
        for start in range(0, len(ordered), _ID_BATCH):
            found |= await store.existing_ids(session, ordered[start : start + _ID_BATCH])
    return found
