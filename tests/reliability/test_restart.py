"""Never lose a job: kill -9 the server with 50 jobs in flight, restart it, and account for
every job, every credit and every webhook."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store.tables import Job, LedgerEntry
from tests.conftest import SettingsFactory
from tests.processes import server_env, server_process
from tests.receiver import Receiver, running_receiver
from tests.support import free_port

JOBS = 50 * int(os.environ.get("HYPERLOCAL_SOAK_SCALE", "1"))


def _env(settings: Settings) -> dict[str, str]:
    return server_env(
        settings.data_dir,
        HYPERLOCAL_WORKER_CONCURRENCY="4",
        HYPERLOCAL_JOB_LEASE_SECONDS="2",
        HYPERLOCAL_WEBHOOK_SCHEDULE="[0, 0.5, 0.5, 1, 1, 2, 2, 2]",
        HYPERLOCAL_WEBHOOK_POLL_INTERVAL="0.1",
        HYPERLOCAL_WEBHOOK_TIMEOUT="2",
    )


async def _submit(port: int, key: str, hook: str) -> list[str]:
    body = {
        "model": "test-slow-video",
        "input": {"prompt": "x", "seconds": 0.8},
        "webhook_url": hook,
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/videos/generate", json=body, headers=headers) for _ in range(JOBS))
        )
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    return [r.json()["jobId"] for r in responses]


async def _statuses(settings: Settings) -> dict[str, str]:
    db = await open_database(settings)
    try:
        async with db.read() as session:
            return dict((await session.execute(select(Job.id, Job.status))).all())  # type: ignore[arg-type]
    finally:
        await db.aclose()


async def _ledger_counts(settings: Settings) -> dict[tuple[str, str], int]:
    db = await open_database(settings)
    try:
        async with db.read() as session:
            stmt = select(LedgerEntry.job_id, LedgerEntry.kind, func.count()).group_by(
                LedgerEntry.job_id, LedgerEntry.kind
            )
            return {(j, k): n for j, k, n in (await session.execute(stmt)).all() if j}
    finally:
        await db.aclose()


async def _wait_terminal(settings: Settings, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = await _statuses(settings)
        if all(statuses[i] in ("completed", "failed", "canceled") for i in ids):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not terminal: {[i for i in ids if statuses[i] in ('queued', 'running')]}"
            )
        await asyncio.sleep(0.25)


def _delivered_job_ids(receiver: Receiver) -> set[str]:
    return {json.loads(r.body)["jobId"] for r in receiver.on("hook")}


@pytest.mark.slow
async def test_kill_minus_nine_loses_nothing(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    db = await open_database(settings)
    issued = await keys.create_key(db, KeySpec("crash", 10 * JOBS, 10_000, 100))
    await db.aclose()
    port, log = free_port(), tmp_path / "server.log"
    with running_receiver() as receiver:
        with server_process(port, _env(settings), log) as proc:
            ids = await _submit(port, issued.key, receiver.url("hook"))
            await asyncio.sleep(2.0)  # some done, some running, most queued
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        before = await _statuses(settings)
        assert any(s in ("queued", "running") for s in before.values()), "kill came too late"
        with server_process(port, _env(settings), log):
            statuses = await _wait_terminal(settings, ids, timeout=90)
            deadline = time.monotonic() + 30
            while _delivered_job_ids(receiver) != set(ids) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
    ledger = await _ledger_counts(settings)
    for job_id in ids:
        assert ledger[(job_id, "charge")] == 1
        expected_refunds = 0 if statuses[job_id] == "completed" else 1
        assert ledger.get((job_id, "refund"), 0) == expected_refunds
    assert _delivered_job_ids(receiver) == set(ids)
    assert sum(1 for s in statuses.values() if s == "completed") >= JOBS - 4
