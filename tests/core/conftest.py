"""Fixtures for the domain tests: the test settings' database, migrated and open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings)
    try:
        yield database
    finally:
        await database.aclose()
