"""SQLite on the event loop's thread (``store.sqlite_on_loop``) through ``Database``, on a real
database file: eager write transactions that wait for another connection's write lock without
blocking the loop, readers that never wait for writers, and checkpoints off the loop."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hyperlocal.core.keys import KeySpec, create_key
from hyperlocal.store import db as db_module
from hyperlocal.store.db import Database
from hyperlocal.store.sqlite_on_loop import Checkpointer

# Migrations begin through SQLAlchemy's event, whose BEGIN error comes unwrapped.
LOCKED = (OperationalError, sqlite3.OperationalError)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hyperlocal.db"


@pytest.fixture
async def db(path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE scratch (n INTEGER NOT NULL)"))
    try:
        yield database
    finally:
        await database.aclose()


@pytest.fixture
def other(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection, as far as SQLite can tell: no busy timeout of its own."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def _count(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(text("SELECT count(*) FROM scratch"))).scalar_one())


async def _insert(db: Database, n: int) -> None:
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO scratch (n) VALUES (:n)"), {"n": n})


def _release_later(conn: sqlite3.Connection, seconds: float) -> threading.Timer:
    """Commit ``conn``'s transaction from another thread: even a loop blocked inside SQLite
    would see the lock go."""
    timer = threading.Timer(seconds, conn.execute, args=("COMMIT",))
    timer.start()
    return timer


async def _tick(ticks: list[float]) -> None:
    while True:
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


async def test_transaction_waits_for_another_writer_without_blocking_the_loop(
    db: Database, other: sqlite3.Connection
) -> None:
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO scratch (n) VALUES (1)")
    ticks: list[float] = []
    ticker = asyncio.create_task(_tick(ticks))
    await asyncio.sleep(0.03)
    timer = _release_later(other, 0.3)
    started = time.monotonic()
    try:
        spec = KeySpec("waits", credits=10, rate_limit=10, max_running_jobs=1)
        issued = await create_key(db, spec)  # one write transaction, through Database
        await _insert(db, 2)
    finally:
        ended = time.monotonic()
        ticker.cancel()
        timer.join()
    assert ended - started >= 0.25  # it did wait for the other connection's commit
    during = [t for t in ticks if started <= t <= ended]
    assert len(during) >= 5, f"the event loop ticked only {len(during)} times in the wait"
    async with db.read() as session:
        names = (await session.execute(text("SELECT name FROM api_keys"))).scalars().all()
        rows = (await session.execute(text("SELECT n FROM scratch ORDER BY n"))).scalars().all()
    assert names == ["waits"] and issued.info.name == "waits"
    assert rows == [1, 2]  # the other writer's row first, then ours


async def test_lock_held_past_the_wait_raises_locked(
    db: Database, other: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "_LOCK_WAIT_S", 0.2)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="locked"):  # SQLAlchemy's class, as callers expect
        await _insert(db, 1)
    waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0
    other.execute("ROLLBACK")
    await _insert(db, 2)  # the failed attempt left nothing behind: the next one goes through
    assert await _count(db) == 1


async def test_transaction_takes_the_write_lock_before_any_statement(
    db: Database, other: sqlite3.Connection
) -> None:
    async with db.transaction():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # released on leaving the block
    other.execute("ROLLBACK")


async def test_error_in_the_body_rolls_back_and_the_database_stays_usable(
    db: Database, other: sqlite3.Connection
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO scratch (n) VALUES (1)"))
            raise RuntimeError("boom")
    assert await _count(db) == 0
    other.execute("BEGIN IMMEDIATE")  # the write lock was given back
    other.execute("ROLLBACK")
    await _insert(db, 2)
    assert await _count(db) == 1


async def test_reads_proceed_while_another_connection_holds_the_write_lock(
    db: Database, other: sqlite3.Connection
) -> None:
    await _insert(db, 1)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO scratch (n) VALUES (2)")
    started = time.monotonic()
    async with asyncio.timeout(1):
        assert await _count(db) == 1  # the committed row; not the other's uncommitted one
    assert time.monotonic() - started < 0.5  # a wait would be a "locked" error, or the timeout
    other.execute("COMMIT")
    assert await _count(db) == 2


async def test_a_read_does_not_take_the_write_lock(db: Database, other: sqlite3.Connection) -> None:
    async with db.read() as session:
        await session.execute(text("SELECT count(*) FROM scratch"))
        other.execute("BEGIN IMMEDIATE")  # timeout 0: fails at once if the reader held it
        other.execute("INSERT INTO scratch (n) VALUES (1)")
        other.execute("COMMIT")
        # The read transaction keeps its snapshot.
        assert (await session.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 0
    assert await _count(db) == 1


async def test_connection_settings(db: Database) -> None:
    pragmas = ("busy_timeout", "journal_mode", "wal_autocheckpoint", "foreign_keys")
    async with db.transaction() as session:
        write = [(await session.execute(text(f"PRAGMA {p}"))).scalar_one() for p in pragmas]
    async with db.read() as session:
        read = [(await session.execute(text(f"PRAGMA {p}"))).scalar_one() for p in pragmas]
    assert write == [0, "wal", 0, 1]
    assert read[0] > 0 and read[1:] == ["wal", 0, 1]


async def test_migrate_waits_for_another_writer(path: Path) -> None:
    setup = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("BEGIN IMMEDIATE")
        timer = _release_later(setup, 0.3)
        database = Database(f"sqlite+aiosqlite:///{path}")
        started = time.monotonic()
        try:
            await database.migrate()
            assert time.monotonic() - started >= 0.25
            await create_key(database, KeySpec("after-migrate", 1, 1, 1))
        finally:
            timer.join()
            await database.aclose()
    finally:
        setup.close()


async def test_opening_a_locked_database_not_yet_in_wal_mode_does_not_block_the_loop(
    path: Path,
) -> None:
    # A file still in rollback-journal mode, exclusively locked by another process: switching
    # it to WAL must wait asynchronously, not in sqlite3's own 5 s busy handler on the loop.
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("CREATE TABLE legacy (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        timer = _release_later(holder, 0.5)
        database = Database(f"sqlite+aiosqlite:///{path}")
        ticks: list[float] = []
        ticker = asyncio.create_task(_tick(ticks))
        try:
            await database.migrate()
        finally:
            ticker.cancel()
            timer.join()
            await database.aclose()
        assert len(ticks) >= 10  # the loop ran on while the lock was held (a blocked loop: 1)
    finally:
        holder.close()


async def test_migrate_gives_up_after_the_wait(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "_LOCK_WAIT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("BEGIN IMMEDIATE")
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            with pytest.raises(LOCKED, match="locked"):
                await database.migrate()
        finally:
            await database.aclose()
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def _stable_bytes(path: Path) -> bytes:
    """The file's bytes, read until two reads agree: a checkpoint running in the background
    may be writing pages while we read, and a copy taken mid-write is torn (SQLite calls it
    malformed). Two equal reads in a row are a copy of one state of the file."""
    previous = path.read_bytes()
    for _ in range(200):
        current = path.read_bytes()
        if current == previous:
            return current
        previous = current
        time.sleep(0.005)
    raise AssertionError(f"{path} kept changing while being read")


def _checkpointed_rows(path: Path, tmp_path: Path) -> int:
    """Rows of ``scratch`` in the database file itself, without the WAL: what checkpoints
    have copied back. Read from a copy, so that looking changes nothing. A copy that is
    still torn (a checkpoint's writer paused between two reads) is read again."""
    for _ in range(20):
        try:
            return _rows_in_copy(path, tmp_path)
        except sqlite3.DatabaseError:
            time.sleep(0.01)
    raise AssertionError(f"no consistent copy of {path} could be read")


def _rows_in_copy(path: Path, tmp_path: Path) -> int:
    snapshot = tmp_path / f"snapshot-{time.monotonic_ns()}.db"
    snapshot.write_bytes(_stable_bytes(path))
    conn = sqlite3.connect(snapshot)
    try:
        exists = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'scratch'"
        ).fetchone()[0]
        return int(conn.execute("SELECT count(*) FROM scratch").fetchone()[0]) if exists else 0
    finally:
        conn.close()


def _wal_frames_left(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return int(busy), int(log), int(done)


async def _write_many(db: Database, count: int) -> None:
    for n in range(count):
        await _insert(db, n)


async def test_writes_stay_in_the_wal_until_a_checkpoint(
    db: Database, path: Path, tmp_path: Path
) -> None:
    await _write_many(db, 200)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 32 * 1024  # 200 commits' worth of frames, none copied back
    assert _checkpointed_rows(path, tmp_path) == 0
    await Checkpointer(str(path)).checkpoint("PASSIVE")
    assert _checkpointed_rows(path, tmp_path) == 200
    busy, log, done = _wal_frames_left(path)
    assert busy == 0 and log > 0 and log == done


async def test_started_checkpointer_copies_the_wal_back(
    db: Database, path: Path, tmp_path: Path
) -> None:
    checkpointer = Checkpointer(str(path), interval=0.05)
    await _write_many(db, 50)
    assert _checkpointed_rows(path, tmp_path) == 0
    checkpointer.start()
    try:
        deadline = time.monotonic() + 3
        while _checkpointed_rows(path, tmp_path) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _checkpointed_rows(path, tmp_path) == 50
        await _write_many(db, 10)  # it keeps running
        while _checkpointed_rows(path, tmp_path) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _checkpointed_rows(path, tmp_path) == 60
    finally:
        await checkpointer.aclose()
    busy, log, done = _wal_frames_left(path)
    assert busy == 0 and log == done


async def test_database_start_background_checkpoints(
    db: Database, path: Path, tmp_path: Path
) -> None:
    await _write_many(db, 20)
    assert _checkpointed_rows(path, tmp_path) == 0
    db.start_background()
    deadline = time.monotonic() + 4  # the default interval is 1 s
    while _checkpointed_rows(path, tmp_path) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert _checkpointed_rows(path, tmp_path) == 20


async def test_aclose_makes_a_last_checkpoint(path: Path, tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE scratch (n INTEGER NOT NULL)"))
    # Another connection that has read the database and stays open: closing ours is then not
    # the database's last close, which SQLite would checkpoint by itself.
    bystander = sqlite3.connect(path)
    try:
        bystander.execute("SELECT count(*) FROM scratch").fetchall()
        await _write_many(database, 30)
        assert _checkpointed_rows(path, tmp_path) == 0
        await database.aclose()
        assert _checkpointed_rows(path, tmp_path) == 30
    finally:
        bystander.close()


async def test_failed_checkpoint_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-dir" / "x.db"
    with caplog.at_level(logging.WARNING, logger="hyperlocal.store.sqlite_on_loop"):
        await Checkpointer(str(missing)).checkpoint("PASSIVE")
    assert any(r.getMessage() == "SQLite checkpoint failed" for r in caplog.records)


@pytest.mark.parametrize(
    "url",
    ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:", "sqlite://", "sqlite:///:memory:"],
)
def test_in_memory_database_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory"):
        Database(url)
