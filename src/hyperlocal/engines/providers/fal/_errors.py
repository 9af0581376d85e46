"""What fal's refusals and failures mean to the router: one :class:`ProviderError` for each
non-2xx answer, from its status, its ``detail`` and fal's ``error_type``."""

from __future__ import annotations

import httpx

from hyperlocal.engines.providers._common import (
    json_or_none,
    retry_after_seconds,
    validation_text,
)
from hyperlocal.engines.providers.base import FailureKind, ProviderError

__all__ = ["KEY_ENV", "failure", "infrastructure", "transient"]

KEY_ENV = "FAL_KEY"
_INVALID = frozenset({400, 422})
_KEY_REFUSED = frozenset({401, 403})
_TRANSIENT = frozenset({408, 429})
_INFRASTRUCTURE = frozenset({"request_timeout", "startup_timeout"})  # and every runner_*


def transient(response: httpx.Response) -> bool:
    """An answer worth asking again for: a timeout, a 429 or a 5xx."""
    return response.status_code in _TRANSIENT or response.is_server_error


def infrastructure(error_type: str | None) -> bool:
    """fal's own machinery failed (not the app): another route may serve the job."""
    return error_type is not None and (
        error_type in _INFRASTRUCTURE or error_type.startswith("runner_")
    )


def failure(
    response: httpx.Response, request_id: str | None = None, *, error_type: str | None = None
) -> ProviderError:
    """What a non-2xx answer means. ``request_id`` is set once fal accepted the request, and
    ``error_type`` is the one its status gave."""
    body = json_or_none(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    types = (
        body.get("error_type") if isinstance(body, dict) else None,
        response.headers.get("x-fal-error-type"),
        error_type,
    )
    code = response.status_code
    said = validation_text(detail) or response.text[:500] or response.reason_phrase
    message = f"fal: {said}"
    if code in _KEY_REFUSED:
        message += f" (fal refused the key: check {KEY_ENV})"
    if code in _KEY_REFUSED or code == 429 or any(infrastructure(t) for t in types):
        kind = FailureKind.UNAVAILABLE
    elif code in _INVALID:
        kind = FailureKind.INVALID
    else:  # a 5xx or an odd 4xx: another route may serve it, or the app failed at fal
        kind = FailureKind.FAILED if request_id else FailureKind.UNAVAILABLE
    retry_after = retry_after_seconds(response.headers.get("retry-after")) if code == 429 else None
    return ProviderError(kind, message, status=code, request_id=request_id, retry_after=retry_after)
