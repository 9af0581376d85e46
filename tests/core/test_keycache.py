"""The auth cache: valid keys by hash for ``ttl`` seconds, LRU-bounded, forgotten on revocation
made through this process; a revocation made elsewhere takes effect within ``ttl``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from hyperlocal.app import create_app
from hyperlocal.core import keycache, keys
from hyperlocal.core.keycache import KeyCache
from hyperlocal.core.keys import KeyInfo, KeySpec, hash_key
from hyperlocal.errors import AuthError, NotFoundError
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database
from tests.conftest import KeyFactory, SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES

UNAUTHORIZED = {"error": "Unauthorized. Please log in or provide a valid API key."}


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The cache module's clock, and only that module's (``time`` itself is left alone)."""
    fake = Clock()
    monkeypatch.setattr(keycache, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def info(key_id: str = "key_a", *, revoked: bool = False, credits: int = 10) -> KeyInfo:
    return KeyInfo(
        id=key_id,
        name="n",
        prefix="ck_abcd",
        is_admin=False,
        credits=credits,
        rate_limit=1000,
        max_running_jobs=15,
        created_at=0.0,
        revoked=revoked,
    )


# --- KeyCache on its own ------------------------------------------------------------------


def test_an_entry_lives_for_ttl_then_expires(clock: Clock) -> None:
    cache = KeyCache(ttl=5.0)
    cache.put("h1", info(), cache.epoch())
    clock.now += 4.999
    assert cache.get("h1") == info()
    clock.now += 0.001  # exactly ttl after the put
    assert cache.get("h1") is None
    assert len(cache) == 0  # the expired entry is dropped, not kept


def test_reading_an_entry_does_not_extend_its_life(clock: Clock) -> None:
    cache = KeyCache(ttl=1.0)
    cache.put("h1", info(), cache.epoch())
    for _ in range(9):
        clock.now += 0.1
        assert cache.get("h1") is not None
    clock.now += 0.1
    assert cache.get("h1") is None


def test_putting_again_starts_a_fresh_ttl(clock: Clock) -> None:
    cache = KeyCache(ttl=1.0)
    cache.put("h1", info(credits=1), cache.epoch())
    clock.now += 0.8
    cache.put("h1", info(credits=2), cache.epoch())
    clock.now += 0.8
    assert cache.get("h1") == info(credits=2)


def test_expiry_with_real_time() -> None:
    cache = KeyCache(ttl=0.05)
    cache.put("h1", info(), cache.epoch())
    assert cache.get("h1") == info()
    time.sleep(0.08)
    assert cache.get("h1") is None


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_ttl_zero_caches_nothing(ttl: float) -> None:
    cache = KeyCache(ttl=ttl)
    cache.put("h1", info(), cache.epoch())
    assert cache.get("h1") is None
    assert len(cache) == 0


def test_a_revoked_key_is_never_cached() -> None:
    cache = KeyCache(ttl=60.0)
    cache.put("h1", info(revoked=True), cache.epoch())
    assert cache.get("h1") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_is_dropped_at_max_entries() -> None:
    cache = KeyCache(ttl=60.0, max_entries=3)
    for name in ("a", "b", "c"):
        cache.put(f"h_{name}", info(f"key_{name}"), cache.epoch())
    assert cache.get("h_a") is not None  # a is now the most recent; b the least
    cache.put("h_d", info("key_d"), cache.epoch())
    assert len(cache) == 3
    assert cache.get("h_b") is None
    assert [cache.get(h) is not None for h in ("h_a", "h_c", "h_d")] == [True, True, True]


def test_putting_again_makes_an_entry_recent() -> None:
    cache = KeyCache(ttl=60.0, max_entries=2)
    cache.put("h_a", info("key_a"), cache.epoch())
    cache.put("h_b", info("key_b"), cache.epoch())
    cache.put("h_a", info("key_a"), cache.epoch())  # a refreshed: b is the least recent now
    cache.put("h_c", info("key_c"), cache.epoch())
    assert cache.get("h_b") is None
    assert cache.get("h_a") is not None and cache.get("h_c") is not None


def test_max_entries_holds_under_many_puts() -> None:
    cache = KeyCache(ttl=60.0, max_entries=10)
    for i in range(100):
        cache.put(f"h{i}", info(f"key_{i}"), cache.epoch())
    assert len(cache) == 10
    assert [cache.get(f"h{i}") is not None for i in range(90, 100)] == [True] * 10
    assert cache.get("h89") is None


def test_forget_drops_every_entry_of_that_key_and_no_other() -> None:
    cache = KeyCache(ttl=60.0)
    cache.put("h1", info("key_a"), cache.epoch())
    cache.put("h2", info("key_a"), cache.epoch())
    cache.put("h3", info("key_b"), cache.epoch())
    cache.forget("key_a")
    assert cache.get("h1") is None and cache.get("h2") is None
    assert cache.get("h3") == info("key_b")
    assert len(cache) == 1
    cache.forget("key_unknown")  # nothing to drop: no error
    assert len(cache) == 1


# --- authenticate / revoke against a real database ----------------------------------------


async def _issue(db: Database) -> keys.IssuedKey:
    return await keys.create_key(db, KeySpec("cached", 10, 1000, 15))


async def test_authenticate_fills_the_cache_and_then_answers_from_it(db: Database) -> None:
    issued, cache = await _issue(db), KeyCache(ttl=60.0)
    first = await keys.authenticate(db, issued.key, cache)
    assert cache.get(hash_key(issued.key)) == first
    # Revoked in the database behind the cache's back: the cache still answers.
    await keys.revoke(db, issued.info.id)
    assert await keys.authenticate(db, issued.key, cache) == first
    # Without the cache the database answers, and says no.
    with pytest.raises(AuthError):
        await keys.authenticate(db, issued.key)


async def test_revoke_through_the_cache_takes_effect_at_once(db: Database) -> None:
    issued, cache = await _issue(db), KeyCache(ttl=60.0)
    await keys.authenticate(db, issued.key, cache)
    await keys.revoke(db, issued.info.id, cache)
    assert len(cache) == 0
    with pytest.raises(AuthError):
        await keys.authenticate(db, issued.key, cache)
    assert len(cache) == 0  # the revoked key is not cached on the way out either


class _ReadThenWait:
    """The real database, whose next read returns its row only when the test says: a read that
    has fetched a valid key and is slow to come back (a busy loop, a slow network)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.fetched, self.go_on = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[object]:
        async with self._db.read() as session:
            yield session
        self.fetched.set()
        await self.go_on.wait()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_a_key_read_just_before_its_revocation_is_not_cached_after_it(
    backend: str, make_settings: SettingsFactory, request: pytest.FixtureRequest
) -> None:
    overrides = (
        {"database_url": request.getfixturevalue("postgres_url")} if backend == "postgres" else {}
    )
    db = await open_database(make_settings(**overrides))
    try:
        issued, cache = await _issue(db), KeyCache(ttl=60.0)
        slow = _ReadThenWait(db)
        reading = asyncio.ensure_future(keys.authenticate(slow, issued.key, cache))  # type: ignore[arg-type]
        await slow.fetched.wait()  # it has read the key, valid
        await keys.revoke(db, issued.info.id, cache)  # revoked through this process meanwhile
        slow.go_on.set()
        await reading  # the request that began before the revocation goes through
        with pytest.raises(AuthError):  # but the next one is refused at once
            await keys.authenticate(db, issued.key, cache)
        assert len(cache) == 0
    finally:
        await db.aclose()


async def test_revoke_elsewhere_takes_effect_when_the_entry_expires(
    db: Database, clock: Clock
) -> None:
    issued, cache = await _issue(db), KeyCache(ttl=5.0)
    await keys.authenticate(db, issued.key, cache)
    await keys.revoke(db, issued.info.id)  # no cache: as the CLI does
    clock.now += 4.9
    assert (await keys.authenticate(db, issued.key, cache)).id == issued.info.id
    clock.now += 0.1
    with pytest.raises(AuthError):
        await keys.authenticate(db, issued.key, cache)


async def test_unknown_and_missing_keys_are_not_cached(db: Database) -> None:
    cache = KeyCache(ttl=60.0)
    for raw in ("ck_not_a_real_key", "", None):
        with pytest.raises(AuthError):
            await keys.authenticate(db, raw, cache)
    assert len(cache) == 0


async def test_revoking_an_unknown_key_is_not_found_and_leaves_the_cache(db: Database) -> None:
    issued, cache = await _issue(db), KeyCache(ttl=60.0)
    await keys.authenticate(db, issued.key, cache)
    with pytest.raises(NotFoundError):
        await keys.revoke(db, "key_nope", cache)
    assert len(cache) == 1


# --- through the API ----------------------------------------------------------------------


async def test_admin_revocation_takes_effect_on_the_very_next_request(
    app: FastAPI, client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    admin, user = await issue_key(admin=True), await issue_key()
    svc = services_of(app)
    assert svc.key_cache.ttl >= 1.0  # the cache is on (default 5 s)
    assert (await client.get("/v1/account", headers=auth(user))).status_code == 200
    assert svc.key_cache.get(hash_key(user.key)) is not None  # now served from the cache
    revoked = await client.post(f"/admin/keys/{user.info.id}/revoke", headers=auth(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    response = await client.get("/v1/account", headers=auth(user))
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    # The admin's own cached entry is untouched.
    assert (await client.get("/v1/account", headers=auth(admin))).status_code == 200


async def test_a_revocation_made_elsewhere_takes_effect_within_the_ttl(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ttl = 5.0
    clock = [1000.0]  # the cache's clock only, stepped by hand: no race with a slow machine
    monkeypatch.setattr(keycache, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    async with _served_and_another_handle(make_settings(auth_cache_seconds=ttl)) as (
        _app,
        client,
        other,
    ):
        user = await _issue(other)
        assert (await client.get("/v1/account", headers=auth(user))).status_code == 200
        await keys.revoke(other, user.info.id)
        clock[0] += ttl - 0.1
        still = await client.get("/v1/account", headers=auth(user))
        assert still.status_code == 200  # served from the cache, as the TTL allows
        clock[0] += 0.2
        response = await client.get("/v1/account", headers=auth(user))
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_with_the_cache_off_a_revocation_elsewhere_is_at_once(
    make_settings: SettingsFactory,
) -> None:
    async with _served_and_another_handle(make_settings(auth_cache_seconds=0)) as (
        app,
        client,
        other,
    ):
        user = await _issue(other)
        assert (await client.get("/v1/account", headers=auth(user))).status_code == 200
        assert len(services_of(app).key_cache) == 0
        await keys.revoke(other, user.info.id)
        response = await client.get("/v1/account", headers=auth(user))
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


@asynccontextmanager
async def _served_and_another_handle(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Database]]:
    """The app and a client for it, plus a second handle on its database, as another process
    (the CLI) would have."""
    app = create_app(settings, engines=TEST_ENGINES)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        other = await open_database(settings)
        try:
            yield app, client, other
        finally:
            await other.aclose()
