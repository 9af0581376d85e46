"""``ChatRecorder``: finished chats written behind the reply, against a real SQLite database.

Everything pending goes in one transaction; a failed write is kept and tried again; ``flush()``
waits for what was recorded so far; ``aclose()`` writes what is pending before it stops."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from hyperlocal.core import keys
from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.keys import KeySpec
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.core.status import JobStatus
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

RECORDER_LOG = "hyperlocal.core.chat_recorder"
COMPLETED = JobStatus.COMPLETED


@pytest.fixture
async def key_id(db: Database) -> str:
    return (await keys.create_key(db, KeySpec("recorder", 0, 1000, 15))).info.id


@pytest.fixture
def db_path(settings: Settings) -> str:
    return str(settings.data_dir.resolve() / "hyperlocal.db")


@pytest.fixture
async def recorder(db: Database) -> AsyncIterator[ChatRecorder]:
    rec = ChatRecorder(db, JobLifecycle(db))
    try:
        yield rec
    finally:
        await rec.aclose()


@pytest.fixture
def commits(db: Database) -> Iterator[list[float]]:
    """Every commit of the database's writer, as it happens: SQLite's own trace of the shared
    write connection, where the write transactions commit (``store.prepared``)."""
    seen: list[float] = []

    def on_statement(statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            seen.append(time.monotonic())

    assert db._shared is not None
    conn = db._shared.get()
    conn.set_trace_callback(on_statement)
    yield seen
    conn.set_trace_callback(None)


async def _insert(db: Database, key_id: str, job_id: str, status: str = "running") -> None:
    now = time.time()
    job = Job(
        id=job_id,
        key_id=key_id,
        model="smollm2-135m",
        category="chat",
        status=status,
        params={},
        inputs={},
        credits=2,
        timeout_s=300.0,
        progress=0.0,
        attempts=1,
        created_at=now,
        started_at=now,
        lease_owner="chat" if status == "running" else None,
        lease_expires_at=now + 300 if status == "running" else None,
    )
    async with db.transaction() as session:
        await job_store.insert(session, job)


async def _job(db: Database, job_id: str) -> Job:
    async with db.read() as session:
        job = await job_store.get(session, job_id)
    assert job is not None
    return job


def _end(reason: str, tokens: int) -> dict[str, Any]:
    return {
        "result": {"finish_reason": reason, "usage": {"completion_tokens": tokens}},
        "progress": 1.0,
        "finished_at": 1234.5,
    }


async def test_records_of_one_loop_turn_are_written_together(
    db: Database, key_id: str, recorder: ChatRecorder, commits: list[float]
) -> None:
    ids = [f"chatcmpl-{i}" for i in range(5)]
    for job_id in ids:
        await _insert(db, key_id, job_id)
    commits.clear()
    for i, job_id in enumerate(ids):
        recorder.record(job_id, COMPLETED, **_end("stop", i))
    await asyncio.wait_for(recorder.flush(), timeout=5)
    assert len(commits) == 1  # one transaction for the five
    for i, job_id in enumerate(ids):
        job = await _job(db, job_id)
        assert job.status == "completed"
        assert job.result == {"finish_reason": "stop", "usage": {"completion_tokens": i}}
        assert job.progress == 1.0
        assert job.finished_at == 1234.5
        assert job.lease_owner is None and job.lease_expires_at is None


async def test_flush_with_nothing_recorded_returns_at_once(recorder: ChatRecorder) -> None:
    await asyncio.wait_for(recorder.flush(), timeout=0.5)


async def test_a_record_made_after_the_writer_started_is_written_too(
    db: Database, key_id: str, recorder: ChatRecorder
) -> None:
    for job_id in ("chatcmpl-a", "chatcmpl-b"):
        await _insert(db, key_id, job_id)
    recorder.record("chatcmpl-a", COMPLETED, **_end("stop", 1))
    await asyncio.sleep(0)  # the writer task starts on the first record
    recorder.record("chatcmpl-b", COMPLETED, **_end("length", 2))
    await asyncio.wait_for(recorder.flush(), timeout=5)
    assert (await _job(db, "chatcmpl-a")).status == "completed"
    job_b = await _job(db, "chatcmpl-b")
    assert job_b.status == "completed" and job_b.result is not None
    assert job_b.result["finish_reason"] == "length"


@pytest.mark.parametrize("status", ["failed", "completed", "queued"])
async def test_a_record_for_a_job_that_is_not_running_changes_nothing(
    db: Database, key_id: str, recorder: ChatRecorder, status: str
) -> None:
    await _insert(db, key_id, "chatcmpl-done", status=status)
    await _insert(db, key_id, "chatcmpl-live")
    before = await _job(db, "chatcmpl-done")
    recorder.record("chatcmpl-done", COMPLETED, **_end("stop", 9))
    recorder.record("chatcmpl-missing", COMPLETED, **_end("stop", 9))  # no such row at all
    recorder.record("chatcmpl-live", COMPLETED, **_end("stop", 3))
    await asyncio.wait_for(recorder.flush(), timeout=5)
    after = await _job(db, "chatcmpl-done")
    assert (after.status, after.result, after.progress, after.finished_at) == (
        before.status,
        before.result,
        before.progress,
        before.finished_at,
    )
    assert (await _job(db, "chatcmpl-live")).status == "completed"  # the batch still went in


async def test_aclose_writes_what_is_pending(db: Database, key_id: str) -> None:
    ids = ["chatcmpl-x", "chatcmpl-y"]
    for job_id in ids:
        await _insert(db, key_id, job_id)
    rec = ChatRecorder(db, JobLifecycle(db))
    for job_id in ids:
        rec.record(job_id, COMPLETED, **_end("disconnect", 4))
    await asyncio.wait_for(rec.aclose(), timeout=5)  # no flush first
    for job_id in ids:
        job = await _job(db, job_id)
        assert job.status == "completed"
        assert job.result is not None and job.result["finish_reason"] == "disconnect"


async def test_aclose_with_nothing_recorded_is_quick(db: Database) -> None:
    rec = ChatRecorder(db, JobLifecycle(db))
    await asyncio.wait_for(rec.aclose(), timeout=0.5)


async def _wait_for_failure(caplog: pytest.LogCaptureFixture, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.name == RECORDER_LOG and r.levelno >= logging.ERROR for r in caplog.records):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the recorder's write never failed")


async def test_a_failed_write_is_kept_and_retried(
    db: Database,
    key_id: str,
    recorder: ChatRecorder,
    db_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for job_id in ("chatcmpl-1", "chatcmpl-2", "chatcmpl-3"):
        await _insert(db, key_id, job_id)
    # A real failure of the database, from a second connection (as another process could):
    # every UPDATE of the jobs table aborts until the trigger is dropped.
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON jobs "
            "BEGIN SELECT RAISE(ABORT, 'scripted failure'); END"
        )
        with caplog.at_level(logging.ERROR, logger=RECORDER_LOG):
            recorder.record("chatcmpl-1", COMPLETED, **_end("stop", 1))
            recorder.record("chatcmpl-2", COMPLETED, **_end("stop", 2))
            await _wait_for_failure(caplog)
            flushed = asyncio.ensure_future(recorder.flush())
            await asyncio.sleep(0.05)
            assert not flushed.done()  # flush() waits for the write that failed
            recorder.record("chatcmpl-3", COMPLETED, **_end("length", 3))  # joins the kept batch
            for job_id in ("chatcmpl-1", "chatcmpl-2", "chatcmpl-3"):
                assert (await _job(db, job_id)).status == "running"
            other.execute("DROP TRIGGER refuse")
            await asyncio.wait_for(flushed, timeout=5)
    finally:
        other.close()
    for i, job_id in enumerate(("chatcmpl-1", "chatcmpl-2", "chatcmpl-3"), start=1):
        job = await _job(db, job_id)
        assert job.status == "completed"
        assert job.result is not None and job.result["usage"] == {"completion_tokens": i}


async def test_a_write_waits_out_another_process_holding_the_write_lock(
    db: Database, key_id: str, recorder: ChatRecorder, db_path: str
) -> None:
    await _insert(db, key_id, "chatcmpl-w")
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        recorder.record("chatcmpl-w", COMPLETED, **_end("stop", 1))
        flushed = asyncio.ensure_future(recorder.flush())
        await asyncio.sleep(0.3)
        assert not flushed.done()
        assert (await _job(db, "chatcmpl-w")).status == "running"  # readers are not blocked
        other.execute("COMMIT")
        await asyncio.wait_for(flushed, timeout=5)
    finally:
        other.close()
    assert (await _job(db, "chatcmpl-w")).status == "completed"


async def test_a_record_that_can_never_be_written_holds_up_no_other(
    db: Database,
    key_id: str,
    recorder: ChatRecorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr("hyperlocal.core.chat_recorder._RETRY_S", 0.01)
    for job_id in ("chatcmpl-good", "chatcmpl-poison"):
        await _insert(db, key_id, job_id)
    caplog.set_level(logging.ERROR, logger=RECORDER_LOG)
    recorder.record("chatcmpl-poison", COMPLETED, result={"not json": object()})  # fails every time
    recorder.record("chatcmpl-good", COMPLETED, **_end("stop", 3))
    await asyncio.wait_for(recorder.flush(), timeout=5)
    assert (await _job(db, "chatcmpl-good")).status == "completed"
    assert (await _job(db, "chatcmpl-poison")).status == "running"  # left to the lease sweep
    given_up = [r for r in caplog.records if r.getMessage().startswith("giving up")]
    assert [getattr(r, "job_id", None) for r in given_up] == ["chatcmpl-poison"]


async def _written(db: Database, job_ids: list[str], timeout: float) -> bool:
    """Whether every job is completed within ``timeout``, without asking for a flush."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [(await _job(db, job_id)).status for job_id in job_ids]
        if statuses == ["completed"] * len(job_ids):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_records_made_within_the_delay_share_one_commit(
    db: Database, key_id: str, commits: list[float]
) -> None:
    for job_id in ("chatcmpl-early", "chatcmpl-late"):
        await _insert(db, key_id, job_id)
    commits.clear()
    rec = ChatRecorder(db, JobLifecycle(db), delay=0.3)
    try:
        rec.record("chatcmpl-early", COMPLETED, **_end("stop", 1))
        await asyncio.sleep(0.1)  # other loop turns, other requests: no write yet
        assert (await _job(db, "chatcmpl-early")).status == "running"
        rec.record("chatcmpl-late", COMPLETED, **_end("stop", 2))
        assert await _written(db, ["chatcmpl-early", "chatcmpl-late"], timeout=5)
    finally:
        await rec.aclose()
    assert len(commits) == 1


async def test_flush_writes_at_once_however_long_the_delay(db: Database, key_id: str) -> None:
    await _insert(db, key_id, "chatcmpl-now")
    rec = ChatRecorder(db, JobLifecycle(db), delay=60.0)
    try:
        rec.record("chatcmpl-now", COMPLETED, **_end("stop", 1))
        await asyncio.wait_for(rec.flush(), timeout=2)
        assert (await _job(db, "chatcmpl-now")).status == "completed"
    finally:
        await rec.aclose()


async def test_a_full_batch_is_written_without_waiting(
    db: Database, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hyperlocal.core.chat_recorder.MAX_BATCH", 3)
    ids = [f"chatcmpl-full-{i}" for i in range(3)]
    for job_id in ids:
        await _insert(db, key_id, job_id)
    rec = ChatRecorder(db, JobLifecycle(db), delay=60.0)
    try:
        for job_id in ids:
            rec.record(job_id, COMPLETED, **_end("length", 4))
        assert await _written(db, ids, timeout=5)
    finally:
        await rec.aclose()
