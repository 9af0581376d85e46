"""Rate limits shared through Redis: two app instances, one count per key."""

from __future__ import annotations

import secrets

import httpx
import pytest
from asgi_lifespan import LifespanManager

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import KeySpec
from hyperlocal.core.ratelimit import RateLimiter
from hyperlocal.errors import RateLimitedError
from tests.conftest import REDIS_URL, SettingsFactory, auth


@pytest.mark.redis
async def test_limit_is_shared_across_instances(make_settings: SettingsFactory) -> None:
    settings = make_settings(redis_url=REDIS_URL)
    first, second = create_app(settings), create_app(settings)
    async with LifespanManager(first), LifespanManager(second):
        key = await keys.create_key(first.state.services.db, KeySpec("shared", 100, 5, 5))
        statuses = []
        for index in range(8):
            app = (first, second)[index % 2]
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client:
                statuses.append((await client.get("/v1/account", headers=auth(key))).status_code)
    assert statuses == [200] * 5 + [429] * 3


@pytest.mark.redis
async def test_redis_limiter_counts_exactly() -> None:
    limiter = RateLimiter(REDIS_URL)
    key_id = "key_" + secrets.token_hex(6)
    try:
        remaining = [(await limiter.hit(key_id, 3)).remaining for _ in range(3)]
        assert remaining == [2, 1, 0]
        with pytest.raises(RateLimitedError) as caught:
            await limiter.hit(key_id, 3)
        assert caught.value.limit == 3 and 1 <= caught.value.retry_after <= 3600
    finally:
        await limiter.aclose()
