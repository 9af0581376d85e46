"""SQLite for the async engine without a thread hop per call.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on a thread of its own and
wakes the event loop for each result. A one-statement transaction costs about 16 such hops,
about 1 ms, while SQLite does the work itself in tens of microseconds (WAL, ``synchronous =
NORMAL``: a commit does not wait for the disk). This module gives SQLAlchemy's aiosqlite dialect
(through ``async_creator``) a connection with aiosqlite's shape that calls ``sqlite3`` itself,
on the event loop's thread.

What keeps the loop from stalling:

- Writers in this process already queue on ``Database``'s lock, so ``BEGIN IMMEDIATE`` only
  ever waits for *another* process. Write connections have ``busy_timeout = 0``:
  ``Database.transaction`` sees "database is locked" at once and retries after an async sleep.
- Readers never wait for writers in WAL mode; their short ``busy_timeout`` covers only
  SQLite's rare internal locks (WAL recovery after a crash).
- Automatic checkpoints are off (they would fsync on the loop). ``Checkpointer`` copies the WAL
  back into the database on a worker thread, with a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["Checkpointer", "OnLoopConnection", "SharedConnection", "connect", "open_connection"]

log = logging.getLogger(__name__)

READ_BUSY_MS = 50


class OnLoopCursor:
    """An aiosqlite-shaped cursor over a ``sqlite3`` cursor."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> OnLoopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OnLoopCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> OnLoopCursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class OnLoopConnection:
    """An aiosqlite-shaped connection over a ``sqlite3`` connection, used on the loop's thread."""

    def __init__(
        self, conn: sqlite3.Connection, on_close: Callable[[], None] | None = None
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._on_close = on_close

    @property
    def _connection(self) -> sqlite3.Connection | None:  # what SQLAlchemy's adapter checks
        return self._conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    def cursor(self) -> OnLoopCursor:
        """As aiosqlite's: SQLAlchemy enters it with ``async with``, without awaiting it."""
        return OnLoopCursor(self._live().cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OnLoopCursor:
        return await self.cursor().execute(sql, parameters)

    def begin(self, *, immediate: bool) -> None:
        """Start a transaction now: IMMEDIATE takes the write lock (or fails at once). A
        transaction already begun on the connection (``Database.transaction``) is joined."""
        conn = self._live()
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def commit(self) -> None:
        self._live().commit()

    async def rollback(self) -> None:
        self._live().rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._live().create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            if self._on_close is not None:
                self._on_close()


def open_connection(path: str, *, writer: bool) -> sqlite3.Connection:
    """A ``sqlite3`` connection to ``path`` in autocommit mode (transactions are begun
    explicitly), with hyperlocal's settings."""
    busy_ms = 0 if writer else READ_BUSY_MS
    # The busy timeout applies from the first statement on (sqlite3's default would let
    # ``journal_mode=WAL`` wait 5 s on a locked file, on the loop's thread).
    conn = sqlite3.connect(
        path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False
    )
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "wal_autocheckpoint=0",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def connect(path: str, *, writer: bool) -> Callable[[], Any]:
    """The ``async_creator`` for an engine of write (or read-only) connections to ``path``."""

    async def create() -> OnLoopConnection:
        return OnLoopConnection(open_connection(path, writer=writer))

    return create


class SharedConnection:
    """The one write connection to an SQLite file in this process, opened on first use.

    Writers here take turns anyway (``Database``'s lock), so one connection serves them all:
    the prepared statements run on it, bypassing SQLAlchemy (``store.prepared``), and
    SQLAlchemy's pool (a ``StaticPool``) hands out the same connection, so that both work
    inside one transaction.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def get(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_connection(self.path, writer=True)
        return self._conn

    async def create(self) -> OnLoopConnection:
        """The ``async_creator`` for the writer engine."""
        return OnLoopConnection(self.get(), on_close=self._forget)

    def _forget(self) -> None:
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Checkpointer:
    """Copies the WAL back into the database every ``interval`` seconds, off the loop.

    A PASSIVE checkpoint never waits for readers or writers; a busy database is simply tried
    again next time. Closing makes one last checkpoint, so that short-lived handles (the CLI)
    copy back what they wrote.
    """

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.checkpoint("PASSIVE")

    async def checkpoint(self, mode: str) -> None:
        try:
            await asyncio.to_thread(_checkpoint, self.path, mode)
        except sqlite3.Error as exc:
            log.warning("SQLite checkpoint failed", extra={"error": str(exc)})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.checkpoint("PASSIVE")


def _checkpoint(path: str, mode: str) -> None:
    conn = sqlite3.connect(path, timeout=0.1)
    try:
        conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
    finally:
        conn.close()
