"""Scale-out fixtures: a fresh PostgreSQL database, a private Redis namespace, and the
settings (in-process) or environment (subprocesses) that point every process at both."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.transport.redis import Channel
from pydantic import SecretStr

from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.queue.celery_app import message_priority
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database
from tests.conftest import REDIS_URL, SettingsFactory

CATALOG = Path(__file__).parent / "data" / "catalog.toml"
REPO = Path(__file__).resolve().parents[2]


class RedisScope:
    """One test's Redis namespace; deletes every key it made, and the rate-limit keys of the
    API keys it tracks, when the test ends."""

    def __init__(self, url: str) -> None:
        self.namespace = "hltest-" + secrets.token_hex(4)
        self.client = redis.Redis.from_url(url)
        self._key_ids: list[str] = []

    def track(self, key_id: str) -> None:
        self._key_ids.append(key_id)

    def broker_list(self, model: str) -> str:
        """The Redis list that holds ``model``'s queue of normal-priority jobs: kombu's global
        key prefix, the queue's name, and its priority step (see ``queue.celery_app``)."""
        step = message_priority(0)
        return f"{self.namespace}:{self.namespace}.{model}{Channel.sep}{step}"

    def flush(self) -> None:
        patterns = [f"{self.namespace}*", *(f"*{key_id}*" for key_id in self._key_ids)]
        for pattern in patterns:
            for name in self.client.scan_iter(match=pattern, count=1000):
                self.client.delete(name)
        self.client.close()


@pytest.fixture
def redis_scope() -> Iterator[RedisScope]:
    scope = RedisScope(REDIS_URL)
    try:
        yield scope
    finally:
        scope.flush()


class ScaleOut:
    """Settings for an in-process app, and the same as environment for subprocesses."""

    def __init__(self, make: SettingsFactory, scope: RedisScope, values: dict[str, Any]) -> None:
        self._make, self.scope, self.values = make, scope, values

    def settings(self, **extra: Any) -> Settings:
        return self._make(**(self.values | extra))

    def env(self, **extra: Any) -> dict[str, str]:
        settings = self.settings(**extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERLOCAL_")}
        env["PYTHONUNBUFFERED"] = "1"
        for name in Settings.model_fields:
            value = getattr(settings, name)
            if value is not None:
                env[f"HYPERLOCAL_{name.upper()}"] = _env_value(value)
        return env

    @property
    def database_url(self) -> str:
        return str(self.values["database_url"])


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


@pytest.fixture
def scale_out(
    make_settings: SettingsFactory, postgres_url: str, redis_scope: RedisScope
) -> ScaleOut:
    values = {
        "database_url": postgres_url,
        "redis_url": REDIS_URL,
        "queue_namespace": redis_scope.namespace,
        "catalog": CATALOG,
        "log_level": "WARNING",  # subprocess logs are read on failure; INFO would log all SQL
    }
    return ScaleOut(make_settings, redis_scope, values)


@pytest.fixture
async def database(scale_out: ScaleOut) -> AsyncIterator[Database]:
    db = Database(scale_out.database_url)
    await db.migrate()
    try:
        yield db
    finally:
        await db.aclose()


async def new_key(
    db: Database, scope: RedisScope, credits: int = 10_000, *, max_running: int = 15
) -> IssuedKey:
    """A key made directly in the database, as an operator's script would."""
    issued = await keys.create_key(db, KeySpec("scaleout", credits, 1_000_000, max_running))
    scope.track(issued.info.id)
    return issued
