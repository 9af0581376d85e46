"""Replicate: predictions through the official ``replicate`` SDK (1.0.x), providers.md §2.

An endpoint ``owner/name`` runs an official model (``POST /v1/models/{owner}/{name}/predictions``);
``owner/name:version`` runs that version (``POST /v1/predictions`` with the version id). The
create asks ``Prefer: wait=5``, so a short job answers at once; a longer one is polled at
``GET /v1/predictions/{id}`` with backoff, woken early by a verified webhook, and a cancel in
hyperlocal reaches ``POST /v1/predictions/{id}/cancel``. Media inputs go as ``data:`` URIs up to
256 kB and through the files API above that, never as public URLs.

Two things the SDK does its own way, and why we step around them (``_transport``):

- Its client wraps every transport in a ``RetryTransport`` that retries 429/503/504 up to ten
  times, sleeping ``Retry-After``. Retries are the router's, so the SDK is handed an httpx
  client of ours instead (the SDK reads it from its ``_async_client`` property).
- Its ``ReplicateError`` keeps the problem+json body but drops the headers, so a 429's
  ``Retry-After`` is read by a response hook on that client (``_errors.raise_throttled``).

This module follows a prediction; ``_errors`` maps refusals and ``_outputs`` reads results.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import mimetypes
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction, Predictions
from standardwebhooks import Webhook, WebhookVerificationError

from hyperlocal.engines.base import MediaInput
from hyperlocal.engines.providers._common import data_uri
from hyperlocal.engines.providers.base import (
    CANCEL_TIMEOUT_S,
    FailureKind,
    PayloadValue,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderResult,
    Watch,
    WebhookNotice,
    next_poll,
)
from hyperlocal.engines.providers.replicate._errors import (
    REFUSED,
    ThrottledError,
    TransientError,
    rejection,
)
from hyperlocal.engines.providers.replicate._outputs import Snapshot, report, result
from hyperlocal.engines.providers.replicate._transport import CREATE_MARGIN_S as CREATE_MARGIN_S
from hyperlocal.engines.providers.replicate._transport import (
    Sdk,
    http_client,
    widen_wait_timeout,
)

__all__ = ["ReplicateProvider", "create"]

log = logging.getLogger(__name__)

PREFER_WAIT_S = 5  # a quick first answer; the id, and with it cancel and progress, come early
DATA_URI_MAX = 256_000  # Replicate takes data URIs for small files only (providers.md §2.2)
WEBHOOK_EVENTS = ["start", "completed"]
_TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
# The create's timeout hook, by the name that tests/providers/test_replicate.py imports.
_widen_wait_timeout = widen_wait_timeout


class ReplicateProvider:
    """One Replicate account: ``context.key`` is its API token, ``context.base_url`` the API
    root (the SDK adds ``/v1``), ``context.webhook_secret`` its ``whsec_...`` signing secret
    (read once from ``GET /v1/webhooks/default/secret`` when unset)."""

    name: ClassVar[str] = "replicate"

    def __init__(self, context: ProviderContext) -> None:
        self._context = context
        self._http = http_client(context)
        self._sdk = Sdk(self._http)
        self._webhook: Webhook | None = None
        self._secret_lock = asyncio.Lock()

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        first = await self._create(call)
        try:
            await watch.submitted(first.id)
            last = await self._follow(first, watch)
        except (asyncio.CancelledError, ProviderError):
            await self._cancel(first.id)
            raise
        return result(last)

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:
        verifier = await self._verifier()
        try:
            payload = verifier.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError) as exc:
            raise ProviderError(FailureKind.INVALID, f"replicate webhook: {exc}") from exc
        prediction_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ProviderError(FailureKind.INVALID, "replicate webhook: no prediction id")
        # The body is the prediction itself: a succeeded one ends the job without a poll.
        done = payload.get("status") == "succeeded" and payload.get("output") is not None
        return WebhookNotice(prediction_id, payload if done else None)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- submitting -------------------------------------------------------------------------

    async def _create(self, call: ProviderCall) -> Snapshot:
        try:
            payload = {key: await self._encoded(value) for key, value in call.payload.items()}
            return Snapshot.parse((await self._submit(call, payload)).dict())
        except REFUSED as exc:
            raise rejection(exc) from exc

    async def _submit(self, call: ProviderCall, payload: dict[str, Any]) -> Prediction:
        params: Predictions.CreatePredictionParams = {"wait": PREFER_WAIT_S}
        if call.webhook_url:
            params["webhook"] = call.webhook_url
            params["webhook_events_filter"] = list(WEBHOOK_EVENTS)
        model, _, version = call.endpoint.partition(":")
        if version:
            return await self._sdk.predictions.async_create(
                version=version, input=payload, **params
            )
        return await self._sdk.models.predictions.async_create(model=model, input=payload, **params)

    async def _encoded(self, value: PayloadValue) -> Any:
        if isinstance(value, MediaInput):
            return await self._media(value)
        if isinstance(value, list):
            return [await self._encoded(item) for item in value]
        if isinstance(value, dict):
            return {key: await self._encoded(item) for key, item in value.items()}
        return value

    async def _media(self, media: MediaInput) -> str:
        """A data URI for a small file; above that, a file of the files API (kept by Replicate
        with the prediction, and readable only with our token)."""
        if len(media.data) <= DATA_URI_MAX:
            return data_uri(media)
        extension = mimetypes.guess_extension(media.content_type) or ""
        uploaded = await self._sdk.files.async_create(
            io.BytesIO(media.data),
            filename=f"{media.field}{extension}",
            content_type=media.content_type,
        )
        return uploaded.urls["get"]

    # --- following a prediction -------------------------------------------------------------

    async def _follow(self, first: Snapshot, watch: Watch) -> Snapshot:
        snapshot, shown = first, None
        delay = pause = self._context.poll_interval
        while snapshot.status not in _TERMINAL:
            shown = await report(snapshot, watch, shown)
            if (answer := await watch.wait(snapshot.id, pause)) is not None:
                with contextlib.suppress(KeyError, TypeError):
                    snapshot = Snapshot.parse(answer)  # a verified webhook's prediction
                    continue
            delay = pause = next_poll(delay)
            try:
                snapshot = await self._look(snapshot.id)
            except TransientError as exc:
                pause = max(delay, exc.retry_after or 0.0)  # a 429's Retry-After, this once
        return snapshot

    async def _look(self, prediction_id: str) -> Snapshot:
        """The prediction now; :class:`TransientError` for a hiccup worth polling through."""
        try:
            return Snapshot.parse((await self._sdk.predictions.async_get(prediction_id)).dict())
        except ThrottledError as exc:
            raise TransientError(exc.retry_after) from exc
        except httpx.TransportError as exc:
            raise TransientError from exc
        except ReplicateError as exc:
            if exc.status is None or exc.status >= httpx.codes.INTERNAL_SERVER_ERROR:
                raise TransientError from exc
            raise rejection(exc, prediction_id) from exc
        except ValueError:
            # The SDK's model knows five statuses; ``aborted`` (and any newer one) fails it.
            return await self._look_raw(prediction_id)

    async def _look_raw(self, prediction_id: str) -> Snapshot:
        try:
            response = await self._http.get(f"/v1/predictions/{prediction_id}")
            response.raise_for_status()
            return Snapshot.parse(response.json())
        except ThrottledError as exc:
            raise TransientError(exc.retry_after) from exc
        except (*REFUSED, KeyError) as exc:
            raise TransientError from exc

    async def _cancel(self, prediction_id: str) -> None:
        """Best effort, bounded, and shielded from the cancellation that asked for it."""
        cancel = self._sdk.predictions.async_cancel(prediction_id)
        try:
            await asyncio.shield(asyncio.wait_for(cancel, CANCEL_TIMEOUT_S))
        except (*REFUSED, TimeoutError, asyncio.CancelledError) as exc:
            log.warning(
                "replicate: cancel failed",
                extra={"request_id": prediction_id, "error": type(exc).__name__},
            )

    # --- webhooks ---------------------------------------------------------------------------

    async def _verifier(self) -> Webhook:
        async with self._secret_lock:
            if self._webhook is None:
                secret = self._context.webhook_secret or await self._fetch_secret()
                try:
                    self._webhook = Webhook(secret)
                except ValueError as exc:
                    raise ProviderError(
                        FailureKind.UNAVAILABLE,
                        "replicate: the webhook secret is not 'whsec_<base64>'",
                    ) from exc
            return self._webhook

    async def _fetch_secret(self) -> str:
        try:
            secret = await self._sdk.webhooks.default.async_secret()
        except REFUSED as exc:
            raise ProviderError(
                FailureKind.UNAVAILABLE,
                f"replicate: could not read the webhook signing secret ({type(exc).__name__})",
            ) from exc
        return secret.key


def create(context: ProviderContext) -> ReplicateProvider:
    return ReplicateProvider(context)
