"""The SDK and the CLI against the real app on a real uvicorn on loopback: no mocks of ours.

Each test gets its own server and data directory. Its public URL is its real address, so the
output URLs it returns can be downloaded. The one admin key is written to the database before
the server starts; every other key is issued through the admin API, as an operator would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory
from tests.support import TEST_ENGINES, free_port, serve_in_thread


@dataclass(frozen=True)
class IssuedClientKey:
    key: str
    webhook_secret: str
    key_id: str


@dataclass(frozen=True)
class Live:
    """A running server: ``url`` to reach it, ``issue`` for keys."""

    url: str
    settings: Settings
    admin_key: str

    def issue(
        self, credits: int = 1000, *, rate_limit: int = 1000, name: str = "sdk"
    ) -> IssuedClientKey:
        body = {"name": name, "credits": credits, "rate_limit": rate_limit}
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        response = httpx.post(f"{self.url}/admin/keys", json=body, headers=headers, timeout=10)
        assert response.status_code == 201, response.text
        data = response.json()
        return IssuedClientKey(data["key"], data["webhookSecret"], data["id"])


def _admin_key(settings: Settings) -> IssuedKey:
    async def create() -> IssuedKey:
        db = await open_database(settings)
        try:
            return await keys.create_key(db, KeySpec("admin", 0, 100_000, 15, True))
        finally:
            await db.aclose()

    # A private event loop in a thread: async tests already run one on this thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create()).result()


@contextmanager
def running(settings: Settings, port: int) -> Iterator[Live]:
    """The real app on ``port``, which ``settings.public_url`` must name."""
    admin = _admin_key(settings)
    with serve_in_thread(create_app(settings, engines=TEST_ENGINES), port=port) as url:
        yield Live(url, settings, admin.key)


@pytest.fixture
def live(make_settings: SettingsFactory) -> Iterator[Live]:
    port = free_port()
    with running(make_settings(public_url=f"http://127.0.0.1:{port}"), port) as server:
        yield server


@pytest.fixture
def user(live: Live) -> IssuedClientKey:
    return live.issue()
