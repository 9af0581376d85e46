"""Replicate's refusals in the router's terms: the errors a request may end in, a 429 read
with its ``Retry-After`` (which the SDK's own error drops), and :func:`rejection`."""

from __future__ import annotations

import re

import httpx
from replicate.exceptions import ReplicateError

from hyperlocal.engines.providers._common import json_or_none, retry_after_seconds
from hyperlocal.engines.providers.base import FailureKind, ProviderError

__all__ = [
    "KEY_ENV",
    "REFUSED",
    "ThrottledError",
    "TransientError",
    "raise_throttled",
    "rejection",
]

KEY_ENV = "REPLICATE_API_TOKEN"
_INVALID_INPUT = frozenset({400, 422})
_KEY_REFUSED = frozenset({401, 403})
_RESETS_IN = re.compile(r"resets in ~?(\d+(?:\.\d+)?)\s*s")


class ThrottledError(Exception):
    def __init__(self, detail: str, retry_after: float | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class TransientError(Exception):
    """A poll that did not answer; the job is polled again, no sooner than ``retry_after``."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__()
        self.retry_after = retry_after


# What a request to Replicate may end in, short of an answer we can use.
REFUSED = (ReplicateError, ThrottledError, httpx.HTTPError, ValueError)


async def raise_throttled(response: httpx.Response) -> None:
    """A response hook: a 429 as :class:`ThrottledError`, with the wait it asks for."""
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        await response.aread()
        detail = _detail(response)
        raise ThrottledError(detail, _retry_after(response, detail))


def _detail(response: httpx.Response) -> str:
    body = json_or_none(response)
    if body is None:
        return response.text.strip() or f"HTTP {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail else f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response, detail: str) -> float | None:
    """``Retry-After`` in seconds or as an HTTP date; else the body's "resets in ~30s"."""
    seconds = retry_after_seconds(response.headers.get("retry-after"))
    if seconds is not None:
        return seconds
    match = _RESETS_IN.search(detail)
    return float(match.group(1)) if match else None


def rejection(exc: Exception, request_id: str | None = None) -> ProviderError:
    """A refused or failed request, in the router's terms."""
    unavailable = FailureKind.UNAVAILABLE
    if isinstance(exc, ThrottledError):
        return ProviderError(
            unavailable,
            f"replicate: {exc.detail}",
            status=429,
            request_id=request_id,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, ReplicateError):
        said = (exc.detail or exc.title or f"HTTP {exc.status}").strip()
        if exc.status in _INVALID_INPUT:
            return ProviderError(FailureKind.INVALID, said, status=exc.status)
        if exc.status in _KEY_REFUSED:
            said = f"the token was refused ({said}): check {KEY_ENV}"
        return ProviderError(
            unavailable, f"replicate: {said}", status=exc.status, request_id=request_id
        )
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(unavailable, "replicate: timed out", request_id=request_id)
    return ProviderError(
        unavailable, f"replicate: {type(exc).__name__}: {exc}", request_id=request_id
    )
