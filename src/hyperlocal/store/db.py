"""The database handle: one async engine and a session factory, owned by the app's lifespan."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from importlib import resources
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from hyperlocal.store import prepared, sqlite_on_loop
from hyperlocal.store.sqlite_on_loop import Checkpointer, SharedConnection

__all__ = ["Database", "on_sqlite"]

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 0x6879_7065_726C


class Database:
    """An engine plus sessions. ``transaction()`` is how ``core`` writes; ``single_statement()``
    is for the one unit of work that ``store`` runs by itself (``jobs.create_paid``)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._checkpointer: Checkpointer | None = None
        self._shared: SharedConnection | None = None
        self._bypass_session: AsyncSession | None = None  # reused: see _SQLiteTransaction
        if self.is_sqlite:
            # SQLite allows one writer at a time. Writers in this process queue on a lock
            # (woken in order); readers get their own engine, whose transactions never take
            # the write lock (WAL lets them run alongside). Both call SQLite on the loop's
            # thread (see ``sqlite_on_loop``).
            path = _sqlite_path(url)
            self._shared = SharedConnection(path)
            self.engine = _sqlite_engine(url, path, writer=True, echo=echo, shared=self._shared)
            self.read_engine = _sqlite_engine(url, path, writer=False, echo=echo)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
            self._checkpointer = Checkpointer(path)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=20, max_overflow=20, pool_pre_ping=True
            )
            self.read_engine = self.engine
            self._write_lock = None
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    def _session_for(self, conn: sqlite3.Connection) -> AsyncSession:
        """The session of SQLite's write transactions, made once per write connection: the
        writers take turns, and each transaction leaves it empty (``_end_sqlite`` closes it
        if SQLAlchemy joined in). Making one per transaction cost more than its statements."""
        session = self._bypass_session
        if session is None or session.info[prepared.BYPASS].conn is not conn:
            bypass = prepared.Bypass(
                conn, self.engine.dialect, self.engine.url.database or "sqlite"
            )
            session = self._bypass_session = self.sessions(info={prepared.BYPASS: bypass})
        return session

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        if self._shared is not None:
            return _SQLiteTransaction(self, self._shared)
        return self._pg_transaction()

    @asynccontextmanager
    async def _pg_transaction(self) -> AsyncIterator[AsyncSession]:
        session = await self._begin()  # PostgreSQL: row locks, no process-wide writer
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
        finally:
            await session.close()

    async def _begin(self) -> AsyncSession:
        """A session whose transaction has begun."""
        session = self.sessions()
        try:
            await session.connection()
        except BaseException:
            await session.close()
            raise
        return session

    async def _retry_locked(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """``attempt()``, again after a growing sleep while SQLite says another process holds
        the write lock, for up to ``_LOCK_WAIT_S``; then the error stands."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LOCK_WAIT_S
        delay = 0.001
        while True:
            try:
                return await attempt()
            except (OperationalError, sqlite3.OperationalError) as exc:
                # A migration's BEGIN goes straight to sqlite3 (``_on_begin``): its error comes
                # unwrapped.
                if not (self.is_sqlite and _is_locked(exc)) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit mode, for a unit of work that is one statement (atomic
        by itself): no BEGIN or COMMIT round trips, and row locks last only while it runs."""
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only; on SQLite it never blocks or waits for writers."""
        async with self.read_sessions() as session:
            yield session

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    def start_background(self) -> None:
        """Start the SQLite checkpointer (a long-running process calls this once)."""
        if self._checkpointer is not None:
            self._checkpointer.start()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to race from many processes)."""
        await self._retry_locked(self._migrate_once)

    async def _migrate_once(self) -> None:
        async with self._writer(), self.engine.begin() as conn:
            await conn.run_sync(_upgrade, is_postgres=not self.is_sqlite)

    async def aclose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self._shared is not None:
            self._shared.close()
        if self._checkpointer is not None:
            await self._checkpointer.aclose()


def on_sqlite(session: AsyncSession) -> bool:
    """Whether ``session`` works on SQLite: for the few store functions that do one thing in
    a different way for each database, so that their callers need not ask."""
    return session.get_bind().dialect.name == "sqlite"


_T = TypeVar("_T")


class _SQLiteTransaction:
    """SQLite: the process's writers take turns (``Database``'s lock); BEGIN IMMEDIATE on the
    writer's connection, and a session that runs prepared statements straight on it
    (``store.prepared``); SQLAlchemy joins the same transaction only if something else runs.
    A class rather than nested generator-based managers: every request that pays enters one,
    and each layer of those cost microseconds."""

    __slots__ = ("_conn", "_db", "_session", "_shared")

    def __init__(self, db: Database, shared: SharedConnection) -> None:
        self._db, self._shared = db, shared

    async def __aenter__(self) -> AsyncSession:
        lock = self._db._write_lock
        assert lock is not None
        await lock.acquire()
        try:
            conn = self._conn = self._shared.get()
            try:
                _begin_immediate(conn)
            except OperationalError as exc:  # another process holds the write lock: wait it out
                if not _is_locked(exc):
                    raise
                await self._db._retry_locked(partial(_begin_later, conn))
            self._session = self._db._session_for(conn)
        except BaseException:
            lock.release()
            raise
        return self._session

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            await _end_sqlite(self._session, self._conn, commit=exc_type is None)
        finally:
            assert self._db._write_lock is not None
            self._db._write_lock.release()


# How long a writer waits for another process's write lock before the error reaches the caller.
_LOCK_WAIT_S = 30.0


def _is_locked(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


def _sqlite_path(url: str) -> str:
    path = make_url(url).database
    if not path or path == ":memory:":
        raise ValueError("hyperlocal needs an SQLite database file, not an in-memory database")
    return path


def _begin_immediate(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it: callers catch its classes
        raise DBAPIError.instance("BEGIN IMMEDIATE", (), exc, sqlite3.Error) from exc


async def _begin_later(conn: sqlite3.Connection) -> None:
    _begin_immediate(conn)


async def _end_sqlite(session: AsyncSession, conn: sqlite3.Connection, *, commit: bool) -> None:
    """Commit (or roll back) an SQLite write transaction: through the session if SQLAlchemy
    joined it, else on the connection; either way the connection ends outside a
    transaction."""
    joined = prepared.joined(session)
    try:
        if joined:
            await (session.commit() if commit else session.rollback())
        elif commit:
            conn.commit()
    finally:
        if conn.in_transaction:  # a rollback, or a commit that failed
            conn.rollback()
        if joined:
            await session.close()


def _sqlite_engine(
    url: str, path: str, *, writer: bool, echo: bool, shared: SharedConnection | None = None
) -> AsyncEngine:
    creator = shared.create if shared is not None else sqlite_on_loop.connect(path, writer=writer)
    pool: dict[str, Any] = {"poolclass": StaticPool} if shared is not None else {}
    engine = create_async_engine(
        url,
        echo=echo,
        async_creator=creator,
        # Every transaction ends in an explicit commit or rollback: no reset on checkin.
        pool_reset_on_return=None,
        **pool,
    )

    # pysqlite would start transactions lazily, in DEFERRED mode, and a deferred reader that
    # later writes fails at once with SQLITE_BUSY. Writers take the write lock up front.
    # Sent straight to sqlite3: SQLAlchemy's statement machinery would cost more than SQLite.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite_on_loop.OnLoopConnection)
        driver.begin(immediate=writer)

    return engine


def _upgrade(connection: Connection, *, is_postgres: bool) -> None:
    from alembic import command
    from alembic.config import Config

    if is_postgres:
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("hyperlocal.store") / "migrations")
    )
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
