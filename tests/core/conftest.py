"""Fixtures for the domain tests: the test settings' database, migrated and open; and a
process's services that run no queue (a test drives its runs), on SQLite, then PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hyperlocal.core import keys
from hyperlocal.core.generation import SubmitRequest, submit
from hyperlocal.core.keys import KeySpec
from hyperlocal.core.services import Services
from hyperlocal.engines.base import Category
from hyperlocal.runtime import close_services, open_database, open_services
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database
from tests.support import TEST_ENGINES


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings)
    try:
        yield database
    finally:
        await database.aclose()


@pytest.fixture
async def services(db_settings: Settings) -> AsyncIterator[Services]:
    svc = await open_services(db_settings, TEST_ENGINES, start_queue=False)
    try:
        yield svc
    finally:
        await close_services(svc)


async def queued_job(
    svc: Services, seconds: float = 5.0, webhook_url: str | None = None
) -> tuple[str, str]:
    """A queued ``test-slow-video`` job of a new key: the job's id and the key's."""
    issued = await keys.create_key(svc.db, KeySpec("core", 100, 1000, 15))
    request = SubmitRequest(
        key=issued.info,
        model="test-slow-video",
        categories=(Category.VIDEO,),
        inputs={"prompt": "x", "seconds": seconds},
        webhook_url=webhook_url,
    )
    job = await submit(svc, request)
    return job.id, issued.info.id
