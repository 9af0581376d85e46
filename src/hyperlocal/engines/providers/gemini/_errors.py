"""The SDK's and httpx's errors as :class:`ProviderError`, at the edge: a wrong key, an
invalid request, a 429 with the wait that Google's ``RetryInfo`` asks for, or Google away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import httpx
from google.genai import errors

from hyperlocal.engines.providers.base import FailureKind, ProviderError
from hyperlocal.engines.providers.gemini._payload import seconds_of

__all__ = ["KEY_ENV", "TRANSIENT_CODES", "translated"]

UNAVAILABLE, INVALID = FailureKind.UNAVAILABLE, FailureKind.INVALID
KEY_ENV = "GEMINI_API_KEY"
TRANSIENT_CODES = frozenset({429, *range(500, 600)})
_INVALID_CODES = (400, 422)
_KEY_CODES = (401, 403)


@contextmanager
def translated(request_id: str | None = None) -> Iterator[None]:
    """The SDK's and httpx's errors as :class:`ProviderError` (the SDK's own retries are off)."""
    try:
        yield
    except errors.APIError as exc:
        raise _api_failure(exc, request_id) from exc
    except httpx.TransportError as exc:
        message = f"gemini: {type(exc).__name__}: {exc}".rstrip(": ")
        raise ProviderError(UNAVAILABLE, message, request_id=request_id) from exc


def _api_failure(exc: errors.APIError, request_id: str | None) -> ProviderError:
    code, status, message = exc.code, exc.status or "", exc.message or str(exc)
    failure = partial(ProviderError, status=code, request_id=request_id)
    if code == 429:
        return failure(UNAVAILABLE, f"gemini: {message}", retry_after=_retry_after(exc))
    # A wrong key is a 400 INVALID_ARGUMENT whose ErrorInfo says API_KEY_INVALID.
    if code in _KEY_CODES or any(d.get("reason") == "API_KEY_INVALID" for d in _details(exc)):
        return failure(UNAVAILABLE, f"gemini: {message} (check {KEY_ENV})")
    if code in _INVALID_CODES and status != "FAILED_PRECONDITION":
        return failure(INVALID, message)
    # 5xx, an unknown model (404), or a precondition of the account (region, billing).
    return failure(UNAVAILABLE, f"gemini: {code} {status}: {message}")


def _details(exc: errors.APIError) -> list[dict[str, Any]]:
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    found = error.get("details") if isinstance(error, dict) else None
    return [item for item in found or [] if isinstance(item, dict)]


def _retry_after(exc: errors.APIError) -> float | None:
    """Seconds from the body's ``google.rpc.RetryInfo`` (``"7s"``), else a Retry-After header."""
    headers: Any = getattr(getattr(exc, "response", None), "headers", None) or {}
    hints = [item.get("retryDelay") for item in _details(exc)] + [headers.get("retry-after")]
    for hint in hints:
        seconds = seconds_of(hint) if isinstance(hint, str) else None
        if seconds is not None:
            return seconds
    return None
