"""Never lose a job: kill -9 the server with 50 jobs in flight, restart it, and account for
every job, every credit and every webhook. The waits are derived from the work submitted, so
``make soak`` (10 times the jobs) waits 10 times as long."""

from __future__ import annotations

import asyncio
import json
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
from tests.support import SOAK_SCALE, free_port, work_deadline

JOBS = 50 * SOAK_SCALE
JOB_SECONDS = 0.8  # each job's run in the slow stand-in engine
WORKERS = 4
PRICE = 10  # test-slow-video at its default duration: 10 credits per 5 s, 5 s
# Seconds before each webhook attempt; a delivery that fails them all is given up.
WEBHOOK_SCHEDULE = [0, 0.5, 0.5, 1, 1, 2, 2, 2]
WEBHOOK_PER_RECEIVER = 8  # the server's default
DELIVERY_SECONDS = 0.05  # one webhook POST on loopback, answered at once


def _env(settings: Settings) -> dict[str, str]:
    return server_env(
        settings.data_dir,
        HYPERLOCAL_WORKER_CONCURRENCY=str(WORKERS),
        HYPERLOCAL_JOB_LEASE_SECONDS="2",
        HYPERLOCAL_WEBHOOK_SCHEDULE=json.dumps(WEBHOOK_SCHEDULE),
        HYPERLOCAL_WEBHOOK_POLL_INTERVAL="0.1",
        HYPERLOCAL_WEBHOOK_TIMEOUT="2",
    )


async def _submit(port: int, key: str, hook: str) -> list[str]:
    body = {
        "model": "test-slow-video",
        "input": {"prompt": "x", "seconds": JOB_SECONDS},
        "webhook_url": hook,
    }
    headers = {"Authorization": f"Bearer {key}"}
    # A submit waits for a pooled connection for as long as the submits before it take (no
    # pool timeout); each request, once sent, has 30 s.
    timeout = httpx.Timeout(30, pool=None)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
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


async def _wait_delivered(receiver: Receiver, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (missing := set(ids) - _delivered_job_ids(receiver)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not missing, f"{len(missing)} webhooks not delivered in {timeout:.0f} s"


@pytest.mark.slow
async def test_kill_minus_nine_loses_nothing(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    db = await open_database(settings)
    issued = await keys.create_key(db, KeySpec("crash", PRICE * JOBS, 10_000, 100))
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
            # All of the work may be left after the restart; the overhead covers the start-up
            # and the leases of the jobs that were running, which must expire first.
            run_all = work_deadline(len(ids), JOB_SECONDS, WORKERS, overhead=60)
            statuses = await _wait_terminal(settings, ids, timeout=run_all)
            # The last jobs' webhooks, and any still in their retry schedule.
            deliver = work_deadline(
                len(ids), DELIVERY_SECONDS, WEBHOOK_PER_RECEIVER, sum(WEBHOOK_SCHEDULE) + 30
            )
            await _wait_delivered(receiver, ids, timeout=deliver)
    ledger = await _ledger_counts(settings)
    for job_id in ids:
        assert ledger[(job_id, "charge")] == 1
        expected_refunds = 0 if statuses[job_id] == "completed" else 1
        assert ledger.get((job_id, "refund"), 0) == expected_refunds
    assert sum(1 for s in statuses.values() if s == "completed") >= JOBS - 4
