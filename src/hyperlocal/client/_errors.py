"""The SDK's one exception tree, mirroring the wire's error table (spec §2)::

    HyperlocalError                 status, body, message
    ├── AuthenticationError         401
    ├── InsufficientCredits         402: required, available
    ├── NotFound                    404
    ├── InvalidRequest              400, 409, 413, any other 4xx, and E1004 anywhere: code
    ├── RateLimited                 429: retry_after, limit
    ├── GenerationFailed            500 with E1001/E1002/E9999, or a job that ended failed: code
    ├── ServerError                 any other 5xx
    ├── NetworkError                no answer: connection refused, reset, timed out
    ├── JobTimeoutError             jobs.wait ran out of time (also a TimeoutError)
    └── WebhookVerificationError    verify_webhook refused a delivery

The names the wire table gives (``InsufficientCredits``, ``RateLimited``...) read as what
happened; the ones the SDK adds end in ``Error``, as the house style asks.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "GenerationFailed",
    "HyperlocalError",
    "InsufficientCredits",
    "InvalidRequest",
    "JobTimeoutError",
    "NetworkError",
    "NotFound",
    "RateLimited",
    "ServerError",
    "WebhookVerificationError",
    "error_from_response",
    "network_error",
]

GENERATION_CODES = frozenset({"E1001", "E1002", "E9999"})


class HyperlocalError(Exception):
    """Base of every SDK error. ``status`` is the HTTP status (None when no answer came);
    ``body`` the JSON error body, whose ``error`` field is ``message``."""

    def __init__(
        self, message: str, *, status: int | None = None, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body: Mapping[str, Any] = body if body is not None else {"error": message}


class AuthenticationError(HyperlocalError):
    """401: no key, or a key the server did not issue (or revoked)."""


class InsufficientCredits(HyperlocalError):
    """402: the submit costs ``required`` credits and the key holds ``available``."""

    @property
    def required(self) -> int | None:
        return _int(self.body.get("required"))

    @property
    def available(self) -> int | None:
        return _int(self.body.get("available"))


class NotFound(HyperlocalError):
    """404: no such job for this key (or no such route on this server)."""


class InvalidRequest(HyperlocalError):
    """The server refused the request as given; ``code`` is ``E1004`` for a bad input."""

    @property
    def code(self) -> str | None:
        return _str(self.body.get("code"))


class _RetryAfter(HyperlocalError):
    """An error that may say, in ``Retry-After``, when to try again."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class RateLimited(_RetryAfter):
    """429: ``retry_after`` seconds until the key may call again; ``limit`` per window."""

    @property
    def limit(self) -> int | None:
        return _int(self.body.get("limit"))


class GenerationFailed(HyperlocalError):
    """The model failed: ``E1001`` an error, ``E1002`` a timeout, ``E9999`` unexpected.
    Credits for a failed generation are refunded by the server."""

    @property
    def code(self) -> str | None:
        return _str(self.body.get("code"))


class ServerError(_RetryAfter):
    """A 5xx that is not a generation failure: the server, or a proxy before it, broke
    (a 503 may say when to come back, as ``retry_after``)."""


class NetworkError(HyperlocalError):
    """No HTTP answer. ``request_sent`` is False when the request certainly never left
    (connection refused, connect timeout), so resending it cannot do anything twice."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class JobTimeoutError(HyperlocalError, TimeoutError):
    """``jobs.wait`` gave up; the job itself goes on, and ``job_id`` can be waited on again."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"job {job_id} did not finish within {timeout:g} s")
        self.job_id = job_id


class WebhookVerificationError(HyperlocalError):
    """A webhook delivery whose headers, timestamp or signature do not check out."""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        parsed = json.loads(response.content)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return parsed
    text = response.text.strip()[:500] or response.reason_phrase or "no body"
    return {"error": f"HTTP {response.status_code}: {text}"}


_BY_STATUS: dict[int, type[HyperlocalError]] = {
    401: AuthenticationError,
    402: InsufficientCredits,
    404: NotFound,
}


def _error_class(status: int, code: object) -> type[HyperlocalError]:
    if code == "E1004":  # the hosted service answers 500 E1004 for some bad inputs
        return InvalidRequest
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status == 429:
        return RateLimited
    if status >= 500:
        return GenerationFailed if code in GENERATION_CODES else ServerError
    return InvalidRequest


def error_from_response(response: httpx.Response) -> HyperlocalError:
    """The typed error for a non-2xx answer (whose body must already be read)."""
    body = _body(response)
    message, status = str(body["error"]), response.status_code
    cls = _error_class(status, body.get("code"))
    if issubclass(cls, _RetryAfter):
        wait = retry_after(response.headers)
        return cls(message, status=status, body=body, retry_after=wait)
    return cls(message, status=status, body=body)


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP date; None if absent."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# Errors that happen before the request's bytes reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def network_error(exc: httpx.TransportError) -> NetworkError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    where = exc.request.url if _has_request(exc) else "the server"
    error = NetworkError(
        f"request to {where} {kind}: {exc or type(exc).__name__}",
        request_sent=not isinstance(exc, _NOT_SENT),
    )
    error.__cause__ = exc
    return error


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when no request is attached
    except RuntimeError:
        return False
    return True
