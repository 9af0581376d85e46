"""Black Forest Labs (FLUX): submit a job, then poll it until its image is ready.

The wire protocol (docs/providers.md §5 "BFL"; BFL's API reference at docs.bfl.ml):

- ``POST {base}/v1/{model}`` with header ``x-key`` and the model's JSON input answers
  ``{id, polling_url, cost?, input_mp?, output_mp?}``. Input images go as base64 in
  ``input_image``, ``input_image_2``, ... (BFL takes a URL or base64; a URL would make the
  input public, so we never send one).
- ``GET polling_url`` (or ``{base}/v1/get_result?id=``) answers ``{id, status, result,
  progress?}``; ``status`` is ``Pending`` (newer models also say ``Reasoning`` or
  ``Generating``), ``Ready``, ``Error``, ``Request Moderated``, ``Content Moderated`` or
  ``Task not found``. ``result.sample`` is a signed URL that expires in ten minutes, which the
  router downloads straight away.
- Errors: 429 ``{"error": "rate_limit_exceeded", "message", "retry_after"}``, 402 when the
  account has no credits, 422 with FastAPI's ``{"detail": [...]}`` for invalid input.
- Kontext's endpoints are ``flux-kontext-pro`` and ``flux-kontext-max`` in BFL's API reference;
  providers.md §5 says ``flux-kontext`` (from a skills copy). The live docs win, so the
  catalogue routes to the former.

Two things this adapter deliberately does not do. BFL signs webhooks, but the format of its
signature is unconfirmed (providers.md §8), so it never asks for one and
:meth:`BflProvider.verify_webhook` refuses every notice: completion is polled. And BFL has no
cancel endpoint, so a cancelled job simply stops being polled; BFL finishes (and bills) it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from hyperlocal.engines.base import MediaInput
from hyperlocal.engines.providers._common import (
    base64_text,
    json_or_none,
    number_or_none,
    retry_after_seconds,
    validation_text,
)
from hyperlocal.engines.providers.base import (
    FailureKind,
    Payload,
    PayloadValue,
    ProviderCall,
    ProviderContext,
    ProviderError,
    ProviderOutput,
    ProviderResult,
    Watch,
    WebhookNotice,
    next_poll,
)

__all__ = ["BflProvider", "create"]

log = logging.getLogger(__name__)

KEY_ENV = "BFL_API_KEY"
SUBMIT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
POLL_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
READY = "Ready"
# A terminal status other than Ready, and what it means for the job. A moderated request is
# BFL refusing the input (as a 4xx would); a lost task is BFL's own failure, worth another route.
_FAILURES = {
    "Error": FailureKind.FAILED,
    "Content Moderated": FailureKind.FAILED,
    "Request Moderated": FailureKind.INVALID,
    "Task not found": FailureKind.UNAVAILABLE,
}
_INVALID_INPUT = frozenset({400, 413, 422})
_KEY_REFUSED = frozenset({401, 403})
_NO_CREDITS = 402
_RATE_LIMITED = 429

Origin = tuple[str, str, int | None]


USD_PER_CREDIT = 0.01  # BFL's pricing (docs.bfl.ai): 1 credit = $0.01


@dataclass(frozen=True, slots=True)
class _Accepted:
    request_id: str
    poll_url: httpx.URL
    cost_usd: float | None = None


class BflProvider:
    """One BFL account: ``x-key`` from ``BFL_API_KEY``, its API at ``context.base_url``."""

    name: ClassVar[str] = "bfl"

    def __init__(self, context: ProviderContext) -> None:
        self._context = context
        self._base = context.base_url.rstrip("/")
        self._headers = {"x-key": context.key}

    async def run(self, call: ProviderCall, watch: Watch) -> ProviderResult:
        # call.webhook_url is ignored on purpose: see the module docstring.
        accepted = await self._submit(call)
        await watch.submitted(accepted.request_id)
        # No cancel endpoint exists at BFL: a CancelledError raised into the poll below just
        # propagates, and polling stops.
        sample = await self._follow(accepted, watch)
        return ProviderResult(
            outputs=[ProviderOutput(url=sample)],
            request_id=accepted.request_id,
            cost_usd=accepted.cost_usd,
        )

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNotice:
        del headers, body  # nothing is verified: every notice is refused
        raise ProviderError(
            FailureKind.INVALID,
            "BFL webhooks are not accepted: the format of BFL's webhook signature is "
            "unconfirmed (docs/providers.md), so hyperlocal never asks BFL for one and polls",
        )

    async def aclose(self) -> None:
        return None  # context.http belongs to the router, which closes it

    # --- submitting -------------------------------------------------------------------------

    async def _submit(self, call: ProviderCall) -> _Accepted:
        url = f"{self._base}/v1/{call.endpoint}"
        try:
            response = await self._context.http.post(
                url, json=request_body(call.payload), headers=self._headers, timeout=SUBMIT_TIMEOUT
            )
        except httpx.TransportError as exc:
            raise ProviderError(
                FailureKind.UNAVAILABLE, f"BFL could not be reached ({type(exc).__name__})"
            ) from exc
        if not response.is_success:
            raise submit_error(response)
        return self._accepted(response)

    def _accepted(self, response: httpx.Response) -> _Accepted:
        body = _json(response)
        request_id = body.get("id")
        if not isinstance(request_id, str) or not request_id:
            raise ProviderError(FailureKind.UNAVAILABLE, "BFL accepted the job without an id")
        poll_url = self._poll_url(request_id, body.get("polling_url"))
        return _Accepted(request_id, poll_url, _dollars(body.get("cost")))

    def _poll_url(self, request_id: str, polling_url: object) -> httpx.URL:
        """BFL's ``polling_url`` when it is on the operator's base origin, else ``get_result``
        there: the key goes only where the operator sent it. (On the global endpoint BFL
        answers with a regional host; set the base URL to that region to follow it.)"""
        fallback = httpx.URL(f"{self._base}/v1/get_result", params={"id": request_id})
        if not isinstance(polling_url, str):
            return fallback
        try:
            candidate = httpx.URL(polling_url)
        except httpx.InvalidURL:
            return fallback
        return candidate if _origin(candidate) == _origin(fallback) else fallback

    # --- following the job ------------------------------------------------------------------

    async def _follow(self, accepted: _Accepted, watch: Watch) -> str:
        delay = self._context.poll_interval
        while True:
            reply = await self._look(accepted)
            if reply is not None:
                sample = await _settled(reply, accepted.request_id, watch)
                if sample is not None:
                    return sample
            await watch.wait(accepted.request_id, delay)
            delay = next_poll(delay)

    async def _look(self, accepted: _Accepted) -> dict[str, Any] | None:
        """The job as BFL shows it now, or None after a hiccup worth polling through."""
        try:
            response = await self._context.http.get(
                accepted.poll_url, headers=self._headers, timeout=POLL_TIMEOUT
            )
        except httpx.TransportError as exc:
            log.warning("BFL poll failed", extra={"error": type(exc).__name__})
            return None
        if response.is_server_error or response.status_code == _RATE_LIMITED:
            log.warning("BFL poll answered %s", response.status_code)
            return None
        if not response.is_success:
            raise ProviderError(
                FailureKind.UNAVAILABLE,
                f"BFL refused the poll ({response.status_code}): {error_text(response)}",
                status=response.status_code,
                request_id=accepted.request_id,
            )
        try:
            return _json(response)
        except ProviderError as exc:
            log.warning("BFL poll: %s", exc.message)
            return None


async def _settled(reply: Mapping[str, Any], request_id: str, watch: Watch) -> str | None:
    """``result.sample`` once the job is Ready, None while it runs; raise once it failed."""
    status = str(reply.get("status") or "")
    if status == READY:
        return _sample(reply, request_id)
    kind = _FAILURES.get(status)
    if kind is not None:
        raise ProviderError(kind, _failure_text(status, reply), request_id=request_id)
    fraction = _fraction(reply.get("progress"))
    if fraction is not None:
        await watch.progress(fraction=fraction)
    return None


def _sample(reply: Mapping[str, Any], request_id: str) -> str:
    result = reply.get("result")
    sample = result.get("sample") if isinstance(result, Mapping) else None
    if not isinstance(sample, str) or not sample:
        raise ProviderError(
            FailureKind.UNAVAILABLE, "BFL said Ready without a sample", request_id=request_id
        )
    return sample


def _failure_text(status: str, reply: Mapping[str, Any]) -> str:
    detail = validation_text(reply.get("error")) or validation_text(reply.get("details"))
    return f"BFL: {status}: {detail}" if detail else f"BFL: {status}"


def _fraction(progress: object) -> float | None:
    """BFL's ``progress``, as a fraction. Its scale is not documented: 0-1 is taken as it is,
    and anything larger as a percentage."""
    value = number_or_none(progress)
    if value is None:
        return None
    return min(max(value / 100.0 if value > 1 else value, 0.0), 1.0)


# --- the request body ----------------------------------------------------------------------


def request_body(payload: Payload) -> dict[str, Any]:
    """The JSON that BFL takes: scalars as they are; an image as base64 (no ``data:`` prefix);
    a list of images under ``input_image`` spread over ``input_image``, ``input_image_2``, ..."""
    body: dict[str, Any] = {}
    for name, value in payload.items():
        body.update(_fields(name, value))
    return body


def _fields(name: str, value: PayloadValue) -> dict[str, Any]:
    if isinstance(value, MediaInput):
        return {name: base64_text(value.data)}
    if isinstance(value, list) and value and all(isinstance(v, MediaInput) for v in value):
        return {_numbered(name, n): base64_text(m.data) for n, m in enumerate(value, start=1)}
    return {name: value}


def _numbered(name: str, n: int) -> str:
    return name if n == 1 else f"{name}_{n}"


# --- errors --------------------------------------------------------------------------------


def submit_error(response: httpx.Response) -> ProviderError:
    """BFL's refusal of a request, as the router's kind of failure."""
    status = response.status_code
    message = error_text(response)
    if status == _RATE_LIMITED:
        return ProviderError(
            FailureKind.UNAVAILABLE,
            f"BFL rate limit: {message}",
            status=status,
            retry_after=retry_after(response),
        )
    if status == _NO_CREDITS:
        return ProviderError(
            FailureKind.UNAVAILABLE, f"no credits at BFL: {message}", status=status
        )
    if status in _KEY_REFUSED:
        return ProviderError(
            FailureKind.UNAVAILABLE,
            f"BFL refused the key ({message}): check {KEY_ENV}",
            status=status,
        )
    if status in _INVALID_INPUT:
        return ProviderError(FailureKind.INVALID, message, status=status)
    return ProviderError(
        FailureKind.UNAVAILABLE, f"BFL answered {status}: {message}", status=status
    )


def error_text(response: httpx.Response) -> str:
    """BFL's own words: ``message``, FastAPI's ``detail`` (a string or a list of field errors),
    or ``error``; else the body, or the status line."""
    body = json_or_none(response)
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error"):
            words = validation_text(body.get(key))
            if words:
                return words
    return response.text.strip()[:500] or response.reason_phrase or str(response.status_code)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: the ``Retry-After`` header (seconds or an HTTP date), else the body's
    ``retry_after``."""
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    if seconds is not None:
        return seconds
    body = json_or_none(response)
    value = number_or_none(body.get("retry_after") if isinstance(body, Mapping) else None)
    return None if value is None else max(value, 0.0)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderError(
            FailureKind.UNAVAILABLE, f"BFL answered {response.status_code} with no JSON"
        ) from exc
    if not isinstance(body, dict):
        raise ProviderError(FailureKind.UNAVAILABLE, "BFL answered with an unexpected shape")
    return body


def _origin(url: httpx.URL) -> Origin:
    return url.scheme, url.host.lower(), url.port


def create(context: ProviderContext) -> BflProvider:
    return BflProvider(context)


def _dollars(credits: object) -> float | None:
    """BFL reports ``cost`` in its credits; its pricing makes one credit one US cent."""
    if isinstance(credits, bool) or not isinstance(credits, int | float) or credits < 0:
        return None
    return round(float(credits) * USD_PER_CREDIT, 6)
