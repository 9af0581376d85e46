"""Request dependencies, as ``Annotated`` aliases: ``Svc``, ``CurrentKey``, ``AdminKey``; and
``Call``, what the hot routes' endpoints take (``CurrentCall``, ``IdempotentCall``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from hyperlocal.core import keys
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.services import Services
from hyperlocal.errors import RateLimitedError

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_MAX_LENGTH",
    "AdminKey",
    "Call",
    "CurrentCall",
    "CurrentKey",
    "IdempotencyKey",
    "IdempotentCall",
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


async def authenticate(request: Request, svc: Services) -> tuple[KeyInfo, dict[str, str]]:
    """Authenticate, then count the request against the key's rolling-hour limit: the key,
    and the rate-limit headers that every response to the request carries. The error handlers
    find them in the request's state (``rate_headers``).

    The limit is checked before any route logic runs, so a rejected request is never charged.
    """
    key = await keys.authenticate(svc.db, _bearer(request), svc.key_cache)
    try:
        state = await svc.limiter.hit(key.id, key.rate_limit)
    except RateLimitedError:
        svc.metrics.rate_limited()
        raise
    headers = request.state.rate_headers = {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(int(state.reset_at)),
    }
    return key, headers


async def current_key(request: Request, response: Response, svc: Svc) -> KeyInfo:
    key, headers = await authenticate(request, svc)
    response.headers.update(headers)
    return key


CurrentKey = Annotated[KeyInfo, Depends(current_key)]


def rate_headers(request: Request) -> dict[str, str]:
    """The rate-limit headers of this request's key, once ``authenticate`` has counted it, for
    the error handlers. FastAPI adds them by itself only to responses it builds from a route's
    return value."""
    headers: dict[str, str] = getattr(request.state, "rate_headers", {})
    return headers


@dataclass(frozen=True, slots=True)
class Call:
    """A request to one of the hot routes, authenticated and counted against its key's rate
    limit: all that their endpoints take besides the body (``endpoint(body, call)``, served by
    ``api.fast_route.FastRoute``). A response built from it carries ``rate_headers``
    (``routes._views.json_response``)."""

    request: Request
    svc: Services
    key: KeyInfo
    rate_headers: Mapping[str, str]
    idempotency_key: str | None = None  # the header, for the routes that take it


async def current_call(request: Request, response: Response, svc: Svc) -> Call:
    key, headers = await authenticate(request, svc)
    response.headers.update(headers)
    return Call(request, svc, key, headers)


# What FastAPI's own solver makes of these is what ``FastRoute`` builds by itself: the same
# ``Call``, the same OpenAPI entry, and the same errors in the same order (the key is checked
# before the header: ``idempotent_call`` depends on ``current_call``).
CurrentCall = Annotated[Call, Depends(current_call)]


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


async def idempotent_call(call: CurrentCall, idempotency_key: IdempotencyKey = None) -> Call:
    return replace(call, idempotency_key=idempotency_key)


IdempotentCall = Annotated[Call, Depends(idempotent_call)]
