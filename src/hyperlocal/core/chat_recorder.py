"""How each chat ended, written behind the reply instead of in front of it.

A chat's charge is committed before its first token; what remains at the end is the record of
how it ended (finish reason, usage), which the client does not wait for. ``ChatRecorder``
takes those records as they come and writes everything pending in one transaction, at most
``delay`` seconds after the first of them (or at once, when ``MAX_BATCH`` are waiting). One
commit per chat cost about as much as the rest of a relayed chat's own work; gathered over a
few milliseconds, the chats of a busy server share one, and no reply waits for it.

A reader that must see the end of a chat (``GET /v1/jobs/{id}``) calls ``flush()`` first,
which writes what is pending at once. If the process dies with records pending, their chats
are still ``running`` under the chat lease, and the lease sweep fails and refunds them: the
client keeps the tokens, the operator loses at most the last ``delay``'s charges. The chat's
lease outlasts its stream's deadline by ``LEASE_MARGIN_S``, longer than every retry here, so a
sweep never refunds a chat whose end is merely waiting to be written.
``aclose()`` writes what is pending.

The records are written by ``JobLifecycle.end_chats``, in the recorder's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.core.status import JobStatus
from hyperlocal.store.db import Database

__all__ = ["LEASE_MARGIN_S", "ChatRecorder"]

log = logging.getLogger(__name__)

_RETRY_S = 0.5  # after a failed write, what failed is tried again this much later
_MAX_ATTEMPTS = 5  # then a record is given up (logged); the lease sweep fails and refunds it
# A chat's lease lasts its deadline plus this: the end of a stream that ran to its deadline is
# written within ``WRITE_DELAY_S`` plus the retries (``_RETRY_S * _MAX_ATTEMPTS``) after it.
LEASE_MARGIN_S = 30.0
WRITE_DELAY_S = 0.02  # how long the first pending record waits for others to join it
MAX_BATCH = 256  # this many pending are written at once


@dataclass(slots=True)
class _Record:
    job_id: str
    status: JobStatus
    values: dict[str, Any]
    attempts: int = 0

    @property
    def end(self) -> tuple[str, JobStatus, dict[str, Any]]:
        return self.job_id, self.status, self.values


class ChatRecorder:
    def __init__(self, db: Database, lifecycle: JobLifecycle, delay: float = WRITE_DELAY_S) -> None:
        self._db, self._lifecycle = db, lifecycle
        self.delay = delay  # seconds the first pending record waits for others to join it
        self._pending: list[_Record] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._timer: asyncio.TimerHandle | None = None  # the pending records' write is due
        self._task: asyncio.Task[None] | None = None

    def record(self, job_id: str, status: JobStatus, **values: Any) -> None:
        """Queue the move of a running chat to ``status``, with these column values."""
        self._pending.append(_Record(job_id, status, values))
        self._idle.clear()
        loop = asyncio.get_running_loop()
        if len(self._pending) >= MAX_BATCH:
            self._write_now()
        elif self._timer is None and not self._wake.is_set():
            self._timer = loop.call_later(self.delay, self._write_now)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())

    async def flush(self) -> None:
        """Write what is pending now, and return once everything recorded so far is written
        (or given up). A write that failed is still tried again only after its pause."""
        if self._timer is not None:
            self._write_now()
        await self._idle.wait()

    def _write_now(self) -> None:
        """Wake the writer; every wake goes through here, so no timer outlives it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            failed = await self._write_all(batch) if batch else []
            if failed:
                self._pending[:0] = failed
                await asyncio.sleep(_RETRY_S)
                self._write_now()  # with any recorded during the pause
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
        ends = [rec.end for rec in batch]
        try:
            async with self._db.transaction() as session:
                await self._lifecycle.end_chats(session, ends)
        except Exception:
            log.exception("recording finished chats failed; retrying", extra={"count": len(batch)})
            return False
        await self._lifecycle.published(ends)
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
