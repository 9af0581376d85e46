"""The one place where domain errors become HTTP responses.

Handlers are found by walking the exception's MRO, as starlette does, so a new subclass of an
existing error gets the right status without touching this table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hyperlocal import errors as e
from hyperlocal.api.deps import rate_headers
from hyperlocal.api.middleware import BodyTooLargeHTTPError

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

Body = dict[str, Any]


def _extra_insufficient(exc: e.HyperlocalError) -> Body:
    assert isinstance(exc, e.InsufficientCreditsError)
    return {"required": exc.required, "available": exc.available}


def _extra_rate(exc: e.HyperlocalError) -> Body:
    assert isinstance(exc, e.RateLimitedError)
    return {"limit": exc.limit, "window": "1h"}


def _extra_streams(exc: e.HyperlocalError) -> Body:
    assert isinstance(exc, e.TooManyStreamsError)
    return {"limit": exc.limit}


def _extra_too_large(exc: e.HyperlocalError) -> Body:
    assert isinstance(exc, e.BodyTooLargeError)
    return {"limit": exc.limit}


def _extra_code(exc: e.HyperlocalError) -> Body:
    return {"code": str(getattr(exc, "code", e.ErrorCode.UNEXPECTED))}


def _no_extra(_exc: e.HyperlocalError) -> Body:
    return {}


_TABLE: dict[type[e.HyperlocalError], tuple[int, Callable[[e.HyperlocalError], Body]]] = {
    e.AuthError: (401, _no_extra),
    e.ForbiddenError: (403, _no_extra),
    e.RequestError: (400, _no_extra),
    e.InputError: (400, _extra_code),
    e.BodyTooLargeError: (413, _extra_too_large),
    e.IdempotencyConflictError: (409, _no_extra),
    e.NotFoundError: (404, _no_extra),
    e.OutputExpiredError: (410, _no_extra),
    e.JobConflictError: (409, _no_extra),
    e.InsufficientCreditsError: (402, _extra_insufficient),
    e.RateLimitedError: (429, _extra_rate),
    e.TooManyStreamsError: (429, _extra_streams),
    e.ClientGoneError: (499, _no_extra),
    e.EngineUnavailableError: (503, _no_extra),
    e.ProviderUnavailableError: (503, _no_extra),
    e.ProviderInputError: (400, _extra_code),
    e.GenerationError: (500, _extra_code),
    e.HyperlocalError: (500, _no_extra),
}


def error_response(exc: e.HyperlocalError) -> JSONResponse:
    for cls in type(exc).__mro__:
        if cls in _TABLE:
            status, extra = _TABLE[cls]
            return JSONResponse({"error": exc.message, **extra(exc)}, status_code=status)
    raise AssertionError("HyperlocalError is in the table")  # pragma: no cover


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.HyperlocalError)
    response = error_response(exc)
    response.headers.update(rate_headers(request))
    if isinstance(exc, e.RateLimitedError):
        response.headers.update(_retry_headers(exc))
    elif isinstance(exc, e.TooManyStreamsError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _retry_headers(exc: e.RateLimitedError) -> dict[str, str]:
    return {
        "Retry-After": str(exc.retry_after),
        "X-RateLimit-Limit": str(exc.limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(exc.reset_at)),
    }


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyTooLargeHTTPError):
        return error_response(e.BodyTooLargeError(exc.limit))
    return JSONResponse(
        {"error": str(exc.detail)},
        status_code=exc.status_code,
        headers={**(exc.headers or {}), **rate_headers(request)},
    )


def _describe(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "body"
    if error.get("type") == "json_invalid":
        return "body: invalid JSON"
    return f"{where}: {error.get('msg', 'invalid value')}"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    body = {"error": _describe(first), "code": e.ErrorCode.INVALID_INPUT}
    return JSONResponse(body, status_code=400, headers=rate_headers(request))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path}, exc_info=exc)
    body = {"error": "Internal server error", "code": e.ErrorCode.UNEXPECTED}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(e.HyperlocalError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
