"""The chat charge that overlaps the backend (``open_chat``, ``ChatStream.prime(charge)``).

When the key's balance as known at authentication covers the price, the backend is asked while
the charge commits. With the auth cache on, that balance can be stale: the charge then fails
(402), the backend request is stopped, and nothing is charged or recorded. A key whose known
balance is already short is charged first, and the backend is never asked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core.keys import IssuedKey, hash_key
from hyperlocal.settings import Settings
from tests.chat.conftest import LiveServer, bearer
from tests.chat.fake_upstream import FakeUpstream
from tests.conftest import services_of
from tests.support import serve_in_thread

ASK = [{"role": "user", "content": "Say hello."}]
PRICE = 2  # the chat test models' per_message price for a short conversation


@dataclass
class Served:
    app: FastAPI
    live: LiveServer

    def cached_credits(self, raw_key: str) -> int | None:
        """The balance that the server's auth cache holds for this key, if it holds it."""
        info = services_of(self.app).key_cache.get(hash_key(raw_key))
        return None if info is None else info.credits


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """Like ``live``, keeping a handle on the app to look at its auth cache."""
    assert settings.auth_cache_seconds >= 5.0  # the default: the cache is on
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield Served(app, LiveServer(url, settings))


async def _upstream_asked(fake: FakeUpstream, count: int, timeout: float = 5.0) -> bool:
    """Whether the upstream has received ``count`` requests, waiting up to ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(fake.bodies) < count:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _spend_the_only_chat(served: Served, client: httpx.AsyncClient, key: IssuedKey) -> str:
    """One paid chat that takes the key's whole balance; its job id once it is recorded."""
    body = {"model": "test-echo", "messages": ASK, "stream": False}
    first = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert first.status_code == 200, first.text
    assert first.json()["creditsUsed"] == PRICE
    job = await served.live.finished_job(first.json()["id"])
    assert job.status == "completed"
    # The precondition of the overlap path: the cache still holds the old balance.
    assert await served.live.balance(key.info.id) == 0
    assert served.cached_credits(key.key) == PRICE
    return job.id


async def test_a_stale_cached_balance_asks_the_backend_then_402_stops_it(
    served: Served, fake_upstream: FakeUpstream
) -> None:
    live = served.live
    key = await live.key(credits=PRICE)  # exactly one chat
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        first_id = await _spend_the_only_chat(served, client, key)
        asked = len(fake_upstream.bodies)
        # An endless upstream stream: left running, it would never stop.
        body = {"model": "test-endless", "messages": ASK, "stream": True}
        second = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert second.status_code == 402
    assert second.headers["content-type"] == "application/json"
    assert second.json() == {"error": "Insufficient credits", "required": PRICE, "available": 0}
    # The backend was asked while the charge ran (the overlap), and then stopped.
    assert await _upstream_asked(fake_upstream, asked + 1)
    assert fake_upstream.bodies[-1]["model"] == "endless"
    assert await asyncio.to_thread(fake_upstream.abandoned.wait, 5.0)
    # Nothing charged, nothing recorded.
    assert await live.balance(key.info.id) == 0
    assert await live.ledger_kinds(key.info.id) == ["charge", "grant"]
    assert await live.chat_job_ids(key.info.id) == [first_id]


async def test_a_stale_cached_balance_402_without_streaming(served: Served) -> None:
    live = served.live
    key = await live.key(credits=PRICE)
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        first_id = await _spend_the_only_chat(served, client, key)
        body = {"model": "test-echo", "messages": ASK, "stream": False}
        second = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        legacy = await client.post(
            "/v1/chat", json={"messages": ASK, "model": "test-echo"}, headers=bearer(key)
        )
    for response in (second, legacy):
        assert response.status_code == 402
        assert response.json() == {
            "error": "Insufficient credits",
            "required": PRICE,
            "available": 0,
        }
    assert await live.balance(key.info.id) == 0
    assert await live.ledger_kinds(key.info.id) == ["charge", "grant"]
    assert await live.chat_job_ids(key.info.id) == [first_id]


async def test_a_key_known_to_be_short_never_reaches_the_backend(
    served: Served, fake_upstream: FakeUpstream
) -> None:
    live = served.live
    key = await live.key(credits=PRICE - 1)
    body = {"model": "test-endless", "messages": ASK, "stream": True}
    asked = len(fake_upstream.bodies)
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        # The first request looks the key up; the second is served from the cache.
        for attempt in range(2):
            response = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert response.status_code == 402, attempt
            assert response.json() == {
                "error": "Insufficient credits",
                "required": PRICE,
                "available": PRICE - 1,
            }
            assert served.cached_credits(key.key) == PRICE - 1
    # Give any request that had gone out time to arrive.
    assert not await _upstream_asked(fake_upstream, asked + 1, timeout=0.5)
    assert not fake_upstream.abandoned.is_set()
    assert await live.balance(key.info.id) == PRICE - 1
    assert await live.ledger_kinds(key.info.id) == ["grant"]
    assert await live.chat_job_ids(key.info.id) == []
