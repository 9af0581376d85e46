"""The job lifecycle's leases, against a real database (SQLite, then PostgreSQL): a lease
belongs to one run of one job, and a transient database error never fails a finished job."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from hyperlocal.core import keys
from hyperlocal.core.generation import SubmitRequest, submit
from hyperlocal.core.keys import KeyInfo, KeySpec
from hyperlocal.core.lifecycle import MOVES, JobLifecycle, MoveError, _check
from hyperlocal.core.services import Services
from hyperlocal.core.status import JobStatus
from hyperlocal.engines.base import Category
from hyperlocal.queue.runner import JobRunner, Outcome
from hyperlocal.runtime import close_services, open_services
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.tables import Job
from tests.conftest import SettingsFactory
from tests.core.conftest import queued_job
from tests.support import TEST_ENGINES, eventually


async def _row(svc: Services, job_id: str) -> Job:
    async with svc.db.read() as session:
        job = await job_store.get(session, job_id)
    assert job is not None
    return job


async def _ledger(svc: Services, key_id: str) -> list[str]:
    async with svc.db.read() as session:
        rows = await ledger_store.entries_for_key(session, key_id, limit=50, before_id=None)
    return sorted(r.kind for r in rows)


def _runner(svc: Services, lifecycle: JobLifecycle, lease_s: float) -> JobRunner:
    return JobRunner(
        lifecycle,
        svc.catalog,
        svc.router,
        svc.storage,
        private=svc.private,
        worker="w1",
        lease_s=lease_s,
    )


class FlakyDatabase:
    """The real database, except that the next ``failures`` transactions fail as a dropped
    connection does (a transient error outside us)."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.failures = 0
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def transaction(self) -> Any:
        if self.failures:
            self.failures -= 1
            self.failed += 1
            return _dropped()
        return self._db.transaction()


@contextlib.asynccontextmanager
async def _dropped() -> AsyncIterator[Any]:
    raise OperationalError("UPDATE jobs", {}, ConnectionResetError("connection reset"))
    yield  # pragma: no cover


async def test_failed_renewals_do_not_fail_a_finished_job(services: Services) -> None:
    job_id, key_id = await queued_job(services, seconds=1.2)
    flaky = FlakyDatabase(services.db)
    runner = _runner(services, JobLifecycle(flaky, services.events), lease_s=0.3)  # type: ignore[arg-type]
    run = asyncio.ensure_future(runner.run(job_id))
    await eventually(lambda: _status_is(services, job_id, "running"), 30, "the claim")
    flaky.failures = 3  # renewals (and a progress write) fail while the engine works
    result = await asyncio.wait_for(run, 30)

    assert flaky.failed == 3
    assert result.outcome is Outcome.FINISHED and result.view is not None
    job = await _row(services, job_id)
    assert job.status == "completed", (job.status, job.error)
    assert await _ledger(services, key_id) == ["charge", "grant"]
    assert job.output_keys and await services.storage.get(job.output_keys[0])


async def test_a_run_that_lost_its_lease_writes_nothing_even_in_the_same_process(
    services: Services,
) -> None:
    """Run 1 stalls past its lease; the sweep requeues the job; run 2 (the same process, the
    same worker id) claims it. Run 1 finishing first must not complete the job under run 2."""
    job_id, key_id = await queued_job(services, seconds=1.0)
    runner = _runner(services, services.lifecycle, lease_s=60)
    first = asyncio.ensure_future(runner.run(job_id))
    await eventually(lambda: _status_is(services, job_id, "running"), 30, "the first claim")
    await _expire_lease(services, job_id)
    assert await services.lifecycle.expire(max_attempts=3) == [job_id]
    second = asyncio.ensure_future(runner.run(job_id))
    await eventually(lambda: _attempts_are(services, job_id, 2), 30, "the second claim")

    lost = await asyncio.wait_for(first, 30)
    assert lost.view is None  # it wrote nothing
    assert (await _row(services, job_id)).status == "running"  # run 2 still has it
    won = await asyncio.wait_for(second, 30)
    assert won.view is not None and won.view.status is JobStatus.COMPLETED
    assert await _ledger(services, key_id) == ["charge", "grant"]
    files = services.settings.data_dir / "files"
    assert [p.name for p in files.rglob("*") if p.is_file()] == [f"{job_id}.png"]


async def test_only_the_diagram_s_moves_are_allowed() -> None:
    allowed = {(a, b) for a, targets in MOVES.items() for b in targets}
    for source in JobStatus:
        for target in JobStatus:
            if (source, target) in allowed:
                assert _check([source], target) == [source.value]
            else:
                with pytest.raises(MoveError):
                    _check([source], target)
    assert not any(MOVES[s] for s in JobStatus if s.terminal)  # an end is final


async def _status_is(svc: Services, job_id: str, status: str) -> bool:
    return (await _row(svc, job_id)).status == status


async def _attempts_are(svc: Services, job_id: str, attempts: int) -> bool:
    job = await _row(svc, job_id)
    return job.status == "running" and job.attempts == attempts


async def _expire_lease(svc: Services, job_id: str) -> None:
    """As if the worker had been paused past its lease (a stop-the-world pause, a frozen VM)."""
    async with svc.db.transaction() as session:
        stmt = update(Job).where(Job.id == job_id).values(lease_expires_at=time.time() - 1)
        await session.execute(stmt)


@pytest.mark.postgres
async def test_a_cancel_that_races_the_claim_still_stops_the_job(
    make_settings: SettingsFactory, postgres_url: str
) -> None:
    """The cancel reads the job queued; a worker's claim commits before the cancel's own
    UPDATE: the job is no longer queued, so the cancel must mark it for its runner, not
    answer as if nothing ran. (On SQLite the writer lock orders the two whole.)"""
    svc = await open_services(
        make_settings(database_url=postgres_url), TEST_ENGINES, start_queue=False
    )
    try:
        issued = await keys.create_key(svc.db, KeySpec("race", 100, 1000, 15))
        job = await submit(svc, _request(issued.info))
        async with svc.db.transaction() as claiming:  # a worker's claim, not yet committed
            assert await job_store.claim(claiming, job.id, "w/1", time.time(), 30.0)
            cancel = asyncio.ensure_future(svc.lifecycle.cancel(issued.info, job.id, wait=0))
            await eventually(lambda: _waiting_on_a_lock(svc), 30, "the cancel to wait on the row")
        answered = await asyncio.wait_for(cancel, 30)
        assert answered.status is JobStatus.RUNNING
        row = await _row(svc, job.id)
        assert row.status == "running" and row.cancel_requested_at is not None
        assert await _ledger(svc, issued.info.id) == ["charge", "grant"]  # refunded once stopped
    finally:
        await close_services(svc)


def _request(key: KeyInfo) -> SubmitRequest:
    inputs = {"prompt": "x", "seconds": 1.0}
    return SubmitRequest(
        key=key, model="test-slow-video", categories=(Category.VIDEO,), inputs=inputs
    )


async def _waiting_on_a_lock(svc: Services) -> bool:
    async with svc.db.read() as session:
        waiting = await session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
    return bool(waiting)
