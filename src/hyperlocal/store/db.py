"""The database handle: one async engine and a session factory, owned by the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = ["Database"]

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_ID = 0x6879_7065_726C


class Database:
    """An engine plus sessions. ``transaction()`` is the only way ``core`` writes."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, **self._engine_args())
        self.read_engine = self.engine
        # SQLite allows one writer at a time. Writers in this process queue on a lock (woken
        # in order) instead of sleeping in SQLite's busy handler; readers get their own
        # engine whose transactions never take the write lock (WAL lets them run alongside).
        self._write_lock: asyncio.Lock | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, immediate=True)
            self.read_engine = create_async_engine(url, echo=echo, **self._engine_args())
            _configure_sqlite(self.read_engine, immediate=False)
            self._write_lock = asyncio.Lock()
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    def _engine_args(self) -> dict[str, Any]:
        if self.is_sqlite:
            return {"connect_args": {"timeout": 30}}
        return {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": True}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        async with self._writer(), self.sessions() as session, session.begin():
            yield session

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

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to race from many processes)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, is_postgres=not self.is_sqlite)

    async def aclose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    # pysqlite's own transaction handling starts transactions lazily in DEFERRED mode, and a
    # deferred reader that later writes fails at once with SQLITE_BUSY instead of waiting. So we
    # take the write lock up front (BEGIN IMMEDIATE): writers queue on busy_timeout instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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
