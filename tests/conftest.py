"""Every test builds the real app from test settings, against real databases."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.core.services import Services
from hyperlocal.settings import Settings
from tests.netguard import loopback_only
from tests.support import TEST_CATALOG, TEST_ENGINES

POSTGRES_URL = os.environ.get(
    "HYPERLOCAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HYPERLOCAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

SettingsFactory = Callable[..., Settings]


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """No test may resolve a name over DNS or connect anywhere but loopback."""
    with loopback_only():
        yield


_PROVIDER_KEYS = (
    "FAL_KEY",
    "REPLICATE_API_TOKEN",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "BFL_API_KEY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def pytest_configure() -> None:
    """A provider key in the developer's shell must not route the tests' jobs to the real
    provider (every test that wants one sets its key, pointing at a loopback fake), nor an
    OpenTelemetry collector of theirs receive the tests' traces."""
    for name in _PROVIDER_KEYS:
        os.environ.pop(name, None)


def pytest_unconfigure() -> None:
    """llama-cpp-python opens two ``/dev/null`` files at import (``llama_cpp._utils``) and never
    closes them; at the interpreter's exit each printed a ResourceWarning after the summary."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


KeyFactory = Callable[..., Awaitable[IssuedKey]]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "public_url": "http://testserver",
            "allow_private_urls": True,
            "bootstrap_keys": False,
            # Many apps start and stop in one test process: each would collect (tens of ms)
            # and freeze on start. Its own test turns it on.
            "gc_freeze": False,
            "catalog": TEST_CATALOG,
            "log_json": True,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


def _admin_sql(statement: str) -> None:
    """Run one statement on the maintenance database, on a private event loop."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = "hl_test_" + secrets.token_hex(6)
    _admin_sql(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Settings:
    """Test settings on SQLite, then again on PostgreSQL."""
    if request.param == "sqlite":
        return make_settings()
    return make_settings(database_url=request.getfixturevalue("postgres_url"))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, engines=TEST_ENGINES)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
def issue_key(app: FastAPI) -> KeyFactory:
    async def issue(
        credits: int = 1000,
        *,
        rate_limit: int = 1000,
        max_running: int = 15,
        admin: bool = False,
        name: str = "test",
    ) -> IssuedKey:
        spec = KeySpec(name, credits, rate_limit, max_running, admin)
        return await keys.create_key(services_of(app).db, spec)

    return issue


def auth(issued: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.key}"}
