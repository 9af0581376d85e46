"""What a running job reports, against a real database: its place in a provider's queue is
written beside the engine, in order, and never holds the engine up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from hyperlocal.core.lease import Lease
from hyperlocal.core.services import Services
from hyperlocal.queue.reporting import position_reporter
from hyperlocal.store import jobs as job_store
from tests.core.conftest import queued_job
from tests.support import eventually


async def _running(svc: Services) -> Lease:
    job_id, _ = await queued_job(svc)
    claim = await svc.lifecycle.start(job_id, "w1", 60.0)
    assert claim.lease is not None
    return claim.lease


async def _place(svc: Services, job_id: str) -> int | None:
    async with svc.db.read() as session:
        job = await job_store.get(session, job_id)
    assert job is not None
    return job.provider_queue_position


class HeldDatabase:
    """The real database, whose write transactions wait until the test lets them go."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.go = asyncio.Event()
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.waiting += 1
        await self.go.wait()
        async with self._db.transaction() as session:
            yield session


async def test_the_place_is_written_beside_the_engine_and_the_last_one_stays(
    services: Services,
) -> None:
    lease = await _running(services)
    held = HeldDatabase(services.db)
    report = position_reporter(held, lease)  # type: ignore[arg-type]

    async with asyncio.timeout(5):  # no report waits on the held database
        await report(7)
        await eventually(lambda: _true(held.waiting == 1), 20, "the first write to start")
        for place in (5, 3, 3, 0):
            await report(place)
    assert held.waiting == 1  # one write in flight; the places after it wait, coalesced
    assert await _place(services, lease.job_id) is None

    held.go.set()

    async def settled() -> bool:
        return await _place(services, lease.job_id) == 0 and held.waiting == 2

    await eventually(settled, 20, "the last place to be written")
    await report(None)  # leaving the queue clears it
    await eventually(
        lambda: _is(_place(services, lease.job_id), None), 20, "the place to be cleared"
    )


async def _is(value: Any, expected: object) -> bool:
    return await value is expected


async def _true(value: bool) -> bool:
    return value
