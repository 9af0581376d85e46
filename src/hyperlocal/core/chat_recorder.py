"""How each chat ended, written behind the reply instead of in front of it.

A chat's charge is committed before its first token; what remains at the end is the record of
how it ended (finish reason, usage), which the client does not wait for. ``ChatRecorder``
takes those records as they come and writes everything pending in one transaction, so a burst
of replies ending together costs one commit and no reply waits for one.

If the process dies with records pending, their chats are still ``running`` under the chat
lease, and the lease sweep fails and refunds them: the client keeps the tokens, the operator
loses at most the last few milliseconds' charges. ``aclose()`` writes what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from hyperlocal.core.status import JobStatus
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database

__all__ = ["ChatRecorder"]

log = logging.getLogger(__name__)

_RUNNING = [JobStatus.RUNNING.value]
_RETRY_S = 0.5  # after a failed write, what failed is tried again this much later
_MAX_ATTEMPTS = 5  # then a record is given up (logged); the lease sweep fails and refunds it


@dataclass(slots=True)
class _Record:
    job_id: str
    values: dict[str, Any]
    attempts: int = 0


class ChatRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[_Record] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def record(self, job_id: str, **values: Any) -> None:
        """Queue the move of a running chat to its end state, with these column values."""
        self._pending.append(_Record(job_id, values))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Return once everything recorded so far is written (or given up)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            failed = await self._write_all(batch) if batch else []
            if failed:
                self._pending[:0] = failed
                await asyncio.sleep(_RETRY_S)
                self._wake.set()
                continue
            if not self._pending:
                self._idle.set()

    async def _write_all(self, batch: list[_Record]) -> list[_Record]:
        """Write the batch in one transaction; if that fails, each record alone, so that one
        record that cannot be written holds up no other. The records to try again."""
        if len(batch) > 1 and await self._write(batch):
            return []
        failed = [rec for rec in batch if not await self._write([rec])]
        for rec in failed:
            rec.attempts += 1
            if rec.attempts >= _MAX_ATTEMPTS:
                log.error("giving up recording a finished chat", extra={"job_id": rec.job_id})
        return [rec for rec in failed if rec.attempts < _MAX_ATTEMPTS]

    async def _write(self, batch: list[_Record]) -> bool:
        try:
            async with self._db.transaction() as session:
                for rec in batch:
                    await store.transition(session, rec.job_id, _RUNNING, **rec.values)
        except Exception:
            log.exception("recording finished chats failed; retrying", extra={"count": len(batch)})
            return False
        return True

    async def aclose(self) -> None:
        """Write what is pending (a failing database gets a few tries), then stop."""
        if self._pending or not self._idle.is_set():
            try:
                await asyncio.wait_for(self.flush(), timeout=10.0)
            except TimeoutError:
                ids = [rec.job_id for rec in self._pending]
                log.error("finished chats left unrecorded at shutdown", extra={"job_ids": ids})
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
