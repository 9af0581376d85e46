"""API keys: issued once, stored only as a SHA-256 hash.

A fast hash is right here (not bcrypt): keys carry 256 bits of randomness, so there is
nothing to brute-force, and every request must be able to look its key up by hash in an index.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.core import ledger
from hyperlocal.errors import (
    AuthError,
    ForbiddenError,
    InputError,
    JobNotFoundError,
    NotFoundError,
)
from hyperlocal.settings import Settings
from hyperlocal.store import keys as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import ApiKey

if TYPE_CHECKING:
    from hyperlocal.core.keycache import KeyCache

__all__ = [
    "IssuedKey",
    "KeyInfo",
    "KeySpec",
    "authenticate",
    "bootstrap",
    "create_key",
    "hash_key",
    "list_keys",
    "require_admin",
    "revoke",
]

KEY_PREFIX = "ck_"  # the hosted service's shape; clients sometimes check it


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    prefix: str
    is_admin: bool
    credits: int
    rate_limit: int
    max_running_jobs: int
    created_at: float
    revoked: bool = False
    priority: int = 0  # see ``KeySpec.priority``


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly created key. ``key`` and ``webhook_secret`` are shown to the caller only once."""

    info: KeyInfo
    key: str
    webhook_secret: str


MAX_CREDITS = 10**12  # far above any real balance, far below the BIGINT column's range
MAX_RATE_LIMIT = 2**31 - 1  # the INTEGER column
MAX_RUNNING_JOBS = 100_000
MAX_PRIORITY = 2


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    credits: int
    rate_limit: int
    max_running_jobs: int
    is_admin: bool = False
    # 0 normal, 1 high, 2 highest: within a model's queue, a job of a higher-priority key
    # starts before any waiting job of a lower one (oldest first within a priority).
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200 or not self.name.isprintable():
            raise InputError("name", "must be 1-200 printable characters")
        _check_range("credits", self.credits, 0, MAX_CREDITS)
        _check_range("rate_limit", self.rate_limit, 1, MAX_RATE_LIMIT)
        _check_range("max_running_jobs", self.max_running_jobs, 1, MAX_RUNNING_JOBS)
        _check_range("priority", self.priority, 0, MAX_PRIORITY)

    @classmethod
    def with_defaults(
        cls,
        settings: Settings,
        name: str,
        credits: int = 0,
        *,
        rate_limit: int | None = None,
        max_running_jobs: int | None = None,
        is_admin: bool = False,
        priority: int = 0,
    ) -> KeySpec:
        """A spec whose unset limits take the server's defaults."""
        return cls(
            name=name,
            credits=credits,
            rate_limit=rate_limit or settings.default_rate_limit,
            max_running_jobs=max_running_jobs or settings.default_max_running_jobs,
            is_admin=is_admin,
            priority=priority,
        )


def _check_range(field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InputError(field, f"must be between {low} and {high}")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.key_prefix,
        is_admin=row.is_admin,
        credits=row.credits,
        rate_limit=row.rate_limit,
        max_running_jobs=row.max_running_jobs,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
        priority=row.priority,
    )


async def create_key(db: Database, spec: KeySpec) -> IssuedKey:
    async with db.transaction() as session:
        return await _create(session, spec)


async def bootstrap(db: Database, admin: KeySpec, first: KeySpec) -> list[IssuedKey]:
    """On a server's first start (no keys at all), create the admin key and a first key."""
    async with db.transaction() as session:
        if await store.count(session):
            return []
        return [await _create(session, admin), await _create(session, first)]


async def _create(session: AsyncSession, spec: KeySpec) -> IssuedKey:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    # Standard Webhooks secrets are standard base64 after the prefix; verifiers decode them.
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    row = ApiKey(
        id="key_" + secrets.token_hex(8),
        name=spec.name,
        key_hash=hash_key(raw),
        key_prefix=raw[:7],
        is_admin=spec.is_admin,
        credits=0,
        rate_limit=spec.rate_limit,
        max_running_jobs=spec.max_running_jobs,
        webhook_secret=secret,
        created_at=time.time(),
        priority=spec.priority,
    )
    await store.insert(session, row)
    if spec.credits:
        row.credits = await ledger.grant(session, row.id, spec.credits, "initial credits")
    return IssuedKey(info=_info(row), key=raw, webhook_secret=secret)


async def authenticate(db: Database, raw: str | None, cache: KeyCache | None = None) -> KeyInfo:
    """The key's details, from ``cache`` when it holds them; ``AuthError`` if not valid."""
    if not raw:
        raise AuthError
    key_hash = hash_key(raw)
    cached = cache.get(key_hash) if cache is not None else None
    if cached is not None:
        return cached
    read_at = cache.epoch() if cache is not None else 0
    async with db.read() as session:
        row = await store.by_hash(session, key_hash)
    if row is None or row.revoked_at is not None:
        raise AuthError
    info = _info(row)
    if cache is not None:
        cache.put(key_hash, info, read_at)
    return info


def require_admin(key: KeyInfo) -> KeyInfo:
    if not key.is_admin:
        raise ForbiddenError
    return key


async def list_keys(db: Database) -> list[KeyInfo]:
    async with db.read() as session:
        return [_info(row) for row in await store.list_all(session)]


async def get_key(db: Database, key_id: str) -> KeyInfo:
    async with db.read() as session:
        row = await store.by_id(session, key_id)
    if row is None:
        raise NotFoundError("Key not found")
    return _info(row)


async def revoke(db: Database, key_id: str, cache: KeyCache | None = None) -> None:
    async with db.transaction() as session:
        if await store.by_id(session, key_id) is None:
            raise NotFoundError("Key not found")
        await store.set_revoked(session, key_id, time.time())
    if cache is not None:
        cache.forget(key_id)


async def webhook_secret(db: Database, key_id: str) -> str:
    async with db.read() as session:
        row = await store.by_id(session, key_id)
    if row is None:
        raise JobNotFoundError
    return row.webhook_secret
