"""fal.ai through its queue API (``providers.md`` §1), with httpx.

The official ``fal_client`` hard-codes ``https://`` and reads its hosts at import, so it cannot
be pointed at ``context.base_url``; the queue is four small calls::

    POST {base}/{endpoint}[?fal_webhook=<url>]          -> {request_id, ...}
    GET  {base}/{owner}/{app}/requests/{id}/status?logs=1 -> 202 IN_QUEUE | IN_PROGRESS,
                                                           200 COMPLETED [+ error, error_type]
    GET  {base}/{owner}/{app}/requests/{id}/status/stream -> the same statuses, as SSE
    GET  {base}/{owner}/{app}/requests/{id}              -> the app's output JSON, or its error
    PUT  {base}/{owner}/{app}/requests/{id}/cancel

Without a webhook, a request is followed by its status stream, so that its end is known at
once (``_stream``); polls with backoff fill in where a stream stops short, and catch a lost
webhook. Status, result and cancel take the app's owner/name only, never the endpoint's
subpath, and they are built from ``base_url`` rather than taken from the URLs in fal's answer:
the key goes only where the operator sent it. Media inputs travel as ``data:`` URIs, which
fal's URL fields take. Webhooks are ED25519-signed by keys that fal publishes as a JWKS (§1.4).

This module is the queue; its private neighbours hold the answers' shapes (``_answers``), the
error mapping (``_errors``), the outputs (``_outputs``) and the webhook keys (``_webhooks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import httpx

from hyperlocal.engines.base import Category, MediaInput
from hyperlocal.engines.providers._common import data_uri
from hyperlocal.engines.providers.base import (
    CANCEL_TIMEOUT_S,
    FailureKind,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
    Watch,
    WebhookNotice,
    next_poll,
)
from hyperlocal.engines.providers.fal._answers import (
    RUNNING,
    Accepted,
    Status,
    json_object,
    parsed,
)
from hyperlocal.engines.providers.fal._errors import failure, infrastructure, transient
from hyperlocal.engines.providers.fal._outputs import OUTPUT_KEYS, result_of
from hyperlocal.engines.providers.fal._stream import Cut, streamed_status
from hyperlocal.engines.providers.fal._webhooks import (
    DEFAULT_JWKS_URL,
    WebhookKeys,
    notice_of,
    signed_message,
    verifies,
)

__all__ = ["DEFAULT_JWKS_URL", "OUTPUT_KEYS", "FalProvider", "create", "result_of"]

log = logging.getLogger(__name__)

SUBMIT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)  # data URIs make large bodies
POLL_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

_NAMESPACES = frozenset({"workflows", "comfy"})  # "workflows/<owner>/<app>/...": fal_client


@dataclass(frozen=True, slots=True)
class _Request:
    """One request in fal's queue, followed under ``base_url``."""

    request_id: str
    url: str  # {base}/{owner}/{app}/requests/{id}: the result; + /status, + /cancel


class FalProvider:
    """fal's queue API. ``clock`` (unix seconds) dates webhooks and the cached key set."""

    name: ClassVar[str] = "fal"

    def __init__(self, context: ProviderContext, *, clock: Callable[[], float] = time.time) -> None:
        self._context = context
        self._http = context.http
        self._base = context.base_url.rstrip("/")
        self._headers = {"Authorization": f"Key {context.key}"}
        self._clock = clock
        self._keys = WebhookKeys(context.http, context.jwks_url or DEFAULT_JWKS_URL, clock)

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        accepted = await self._submit(call)
        request = _Request(
            accepted.request_id,
            f"{self._base}/{_app_of(call.endpoint)}/requests/{accepted.request_id}",
        )
        log.info("fal request", extra={"job_id": call.job_id, "request_id": request.request_id})
        try:
            await watch.submitted(request.request_id)
            await _report(accepted.queue_position, watch)
            stream = self._context.stream_status and call.webhook_url is None
            ended = await self._follow(request, watch, stream=stream)
            if isinstance(ended, Status):
                return await self._result(request, ended, call.category, watch)
            return result_of(call.category, ended, request.request_id)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(request))
            raise

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:
        signed = signed_message(headers, body, self._clock())
        # None of the held keys verifying may mean that fal rotated them: look once more
        if not verifies(await self._keys.current(), signed) and not verifies(
            await self._keys.refetched(), signed
        ):
            raise ProviderError(FailureKind.INVALID, "fal webhook: bad signature")
        return notice_of(body, signed.request_id)

    async def aclose(self) -> None:
        return None  # context.http belongs to the router

    # --- the queue --------------------------------------------------------------------------

    async def _submit(self, call: ProviderCall) -> Accepted:
        body = {name: _wire_value(value) for name, value in call.payload.items()}
        params = {"fal_webhook": call.webhook_url} if call.webhook_url else None
        try:
            response = await self._http.post(
                f"{self._base}/{call.endpoint.strip('/')}",
                json=body,
                params=params,
                headers=self._headers,
                timeout=SUBMIT_TIMEOUT,
            )
        except httpx.TransportError as exc:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"fal: submit failed ({type(exc).__name__})"
            ) from exc
        if not response.is_success:
            raise failure(response)
        return parsed(Accepted, response, None)

    async def _follow(
        self, request: _Request, watch: Watch, *, stream: bool
    ) -> Status | Mapping[str, Any]:
        """Wait for the request to leave the queue and finish, reporting its place in line:
        its final status, or its output where a verified webhook brought it. With ``stream``,
        its status stream tells; polls (with backoff) fill in where the stream stops short."""
        delay = self._context.poll_interval
        while True:
            if stream:
                streamed = await streamed_status(
                    self._http,
                    f"{request.url}/status/stream",
                    self._headers,
                    partial(_report, watch=watch),
                )
                if isinstance(streamed, Status):
                    return streamed
                log.info(
                    "fal status stream cut",
                    extra={"request_id": request.request_id, "cut": streamed.value},
                )
                stream = streamed is Cut.DROPPED
            if (output := await watch.wait(request.request_id, delay)) is not None:
                return output
            delay = next_poll(delay)
            if (status := await self._polled(request, watch)) is not None:
                return status

    async def _polled(self, request: _Request, watch: Watch) -> Status | None:
        """The request's final status from one poll, or None while it runs (its place in line
        reported) or when the poll should simply be made again later."""
        response = await self._get(f"{request.url}/status", {"logs": "1"})
        if response is None or transient(response):
            return None
        if not response.is_success:
            raise failure(response, request.request_id)
        status = parsed(Status, response, request.request_id)
        if status.status not in RUNNING:
            return status
        await _report(status.queue_position, watch)
        return None

    async def _result(
        self, request: _Request, status: Status, category: Category, watch: Watch
    ) -> ProviderResult:
        if status.failed:
            raise await self._request_failure(request, status)
        if status.status != "COMPLETED":
            raise ProviderError(  # a status fal_client does not know either
                FailureKind.FAILED,
                f"fal: the request ended {status.status}",
                request_id=request.request_id,
            )
        response = await self._settled(request, watch)
        if not response.is_success:
            raise failure(response, request.request_id)
        return result_of(category, json_object(response, request.request_id), request.request_id)

    async def _settled(self, request: _Request, watch: Watch) -> httpx.Response:
        """The result, fetched again after a transport error, a 408/429 or a 5xx."""
        delay = self._context.poll_interval
        while (response := await self._get(request.url)) is None or transient(response):
            await watch.wait(request.request_id, delay)
            delay = next_poll(delay)
        return response

    async def _request_failure(self, request: _Request, status: Status) -> ProviderError:
        """A request that COMPLETED with an error: its result holds the app's error body, whose
        ``detail`` says more than the status's one line."""
        response = await self._get(request.url)
        if response is not None and not response.is_success:
            return failure(response, request.request_id, error_type=status.error_type)
        kind = FailureKind.UNAVAILABLE if infrastructure(status.error_type) else FailureKind.FAILED
        message = status.error or status.error_type or "the request failed"
        return ProviderError(kind, f"fal: {message}", request_id=request.request_id)

    async def _get(
        self, url: str, params: Mapping[str, str] | None = None
    ) -> httpx.Response | None:
        """fal's answer at ``url``, or None when the connection failed (polled through)."""
        try:
            return await self._http.get(
                url, params=params, headers=self._headers, timeout=POLL_TIMEOUT
            )
        except httpx.TransportError as exc:
            log.warning("fal poll failed", extra={"url": url, "error": type(exc).__name__})
            return None

    async def _cancel(self, request: _Request) -> None:
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await self._http.put(f"{request.url}/cancel", headers=self._headers)


def create(context: ProviderContext) -> FalProvider:
    return FalProvider(context)


async def _report(queue_position: int | None, watch: Watch) -> None:
    if queue_position is not None:
        await watch.progress(queue_position=queue_position)


def _app_of(endpoint: str) -> str:
    """The ``owner/app`` that status, result and cancel take: never the endpoint's subpath."""
    parts = endpoint.strip("/").split("/")
    return "/".join(parts[: 3 if parts[0] in _NAMESPACES else 2])


def _wire_value(value: Any) -> Any:
    """A payload value as fal takes it: media as ``data:`` URIs, never as public URLs."""
    if isinstance(value, MediaInput):
        return data_uri(value)
    if isinstance(value, list):
        return [_wire_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _wire_value(item) for key, item in value.items()}
    return value
