"""Request dependencies, as ``Annotated`` aliases: ``Svc``, ``CurrentKey``, ``AdminKey``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request, Response

from hyperlocal.core import keys
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.services import Services

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_MAX_LENGTH",
    "AdminKey",
    "CurrentKey",
    "IdempotencyKey",
    "Svc",
    "authenticate",
    "rate_headers",
]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(get_services)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(request: Request, svc: Services) -> KeyInfo:
    """Authenticate, then count the request against the key's rolling-hour limit; the
    rate-limit headers are kept for the response (``rate_headers``).

    The limit is checked before any route logic runs, so a rejected request is never charged.
    """
    key = await keys.authenticate(svc.db, _bearer(request), svc.key_cache)
    state = await svc.limiter.hit(key.id, key.rate_limit)
    request.state.rate_headers = {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(int(state.reset_at)),
    }
    return key


async def current_key(request: Request, response: Response, svc: Svc) -> KeyInfo:
    key = await authenticate(request, svc)
    response.headers.update(rate_headers(request))
    return key


CurrentKey = Annotated[KeyInfo, Depends(current_key)]


def rate_headers(request: Request) -> dict[str, str]:
    """The rate-limit headers of this request's key, once ``current_key`` has counted it.
    FastAPI adds them by itself only to responses it builds from a route's return value."""
    headers: dict[str, str] = getattr(request.state, "rate_headers", {})
    return headers


async def admin_key(key: CurrentKey) -> KeyInfo:
    return keys.require_admin(key)


AdminKey = Annotated[KeyInfo, Depends(admin_key)]


IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_MAX_LENGTH = 255

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        max_length=IDEMPOTENCY_MAX_LENGTH,
        description="Replays within 24 h are free.",
    ),
]
