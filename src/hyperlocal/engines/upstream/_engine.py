"""The engine: submit upstream (with retries), follow the upstream job, bring the outputs home."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import httpx

from hyperlocal import __version__
from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.media.downloads import download
from hyperlocal.engines.upstream._options import UpstreamOptions
from hyperlocal.engines.upstream._results import result_of
from hyperlocal.engines.upstream._transport import OriginRouter
from hyperlocal.engines.upstream._wire import (
    UpstreamReply,
    build_body,
    error_text,
    parse_reply,
    route_for,
    wire_type,
)
from hyperlocal.errors import GenerationError, GenerationTimeoutError
from hyperlocal.inputs import AddressPolicy

__all__ = ["UpstreamEngine", "create"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
POLL_TIMEOUT = 30.0
CANCEL_TIMEOUT = 2.0
MAX_RETRY_AFTER = 30.0
_DONE = frozenset({"completed", "succeeded", "success"})
_FAILED = frozenset({"failed", "error", "canceled", "cancelled"})
_KEY_REFUSED = (401, 403)

Post = Callable[[], Awaitable[httpx.Response]]


class UpstreamEngine:
    """Forwards any model to a Hypereal-compatible server; see the package docstring.

    ``backoff`` is the first pause, in seconds, before a submit is retried; it doubles each time.
    """

    def __init__(
        self, client: httpx.AsyncClient, router: OriginRouter, *, backoff: float = 0.5
    ) -> None:
        self._client = client
        self._router = router
        self._backoff = backoff

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        options = UpstreamOptions.parse(request.model, request.options)
        self._router.trust(options.base_url)
        try:
            async with asyncio.timeout(options.timeout):
                return await self._run(request, options, progress)
        except TimeoutError as exc:
            raise GenerationTimeoutError(
                f"upstream: no result within {options.timeout:g} s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise GenerationTimeoutError("upstream: timed out waiting for an answer") from exc
        except httpx.HTTPError as exc:
            raise GenerationError(f"upstream: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _run(
        self, request: GenerationRequest, options: UpstreamOptions, progress: ProgressCallback
    ) -> GenerationResult:
        response = await self._submit(request, options)
        reply = parse_reply(response)
        if response.status_code == httpx.codes.ACCEPTED:
            reply = await self._follow(reply, request, options, progress)
        artifacts = [
            await download(self._client, options.base_url, url, request.category)
            for url in reply.output_urls()
        ]
        return result_of(reply, artifacts)

    # --- submitting -------------------------------------------------------------------------

    async def _submit(self, request: GenerationRequest, options: UpstreamOptions) -> httpx.Response:
        """POST once, and again on 429, on a 5xx that is not a generation failure, or when the
        connection failed. The Idempotency-Key, derived from our job id, makes a repeat the same
        upstream job: a retried submit (or a job that our worker re-runs) is charged once."""
        post = self._poster(request, options)
        attempt = 0
        while True:
            last = attempt >= options.retries
            response = await _attempt(post, options, last=last)
            if response is not None and (last or not _retryable(response)):
                return _checked(response, options)
            log.warning(
                "upstream submit will be retried",
                extra={
                    "job_id": request.job_id,
                    "attempt": attempt + 1,
                    "status": _status(response),
                },
            )
            await asyncio.sleep(self._delay(attempt, response))
            attempt += 1

    def _poster(self, request: GenerationRequest, options: UpstreamOptions) -> Post:
        url = options.url(route_for(request.category).path)
        body = build_body(request, options.model)
        headers = options.headers(idempotency_key=f"hyperlocal-{request.job_id}")
        timeout = httpx.Timeout(options.timeout, connect=CONNECT_TIMEOUT)

        def post() -> Awaitable[httpx.Response]:
            return self._client.post(url, json=body, headers=headers, timeout=timeout)

        return post

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = _retry_after(response)
        if hinted is not None:
            return hinted
        return self._backoff * 2.0**attempt * random.uniform(0.5, 1.0)

    # --- following a job --------------------------------------------------------------------

    async def _follow(
        self,
        accepted: UpstreamReply,
        request: GenerationRequest,
        options: UpstreamOptions,
        progress: ProgressCallback,
    ) -> UpstreamReply:
        if not accepted.jobId:
            raise GenerationError("upstream: accepted the request without a jobId")
        log.info("upstream job", extra={"job_id": request.job_id, "upstream_job": accepted.jobId})
        try:
            return await self._poll(accepted.jobId, request.category, options, progress)
        except asyncio.CancelledError:
            # Our job timed out or was given up: the upstream's job need not run on, and a
            # hyperlocal upstream refunds a canceled job. The hosted service has no such route.
            await self._cancel(accepted.jobId, options)
            raise

    async def _poll(
        self, job_id: str, category: Category, options: UpstreamOptions, progress: ProgressCallback
    ) -> UpstreamReply:
        # Polled at base_url, not at the answer's pollUrl: the key goes only where the operator
        # sent it, and an upstream behind a proxy often builds its pollUrl from the wrong host.
        url = options.url(f"/v1/jobs/{job_id}")
        query = {"model": options.model, "type": wire_type(category)}
        while True:
            reply = await self._look(url, query, options)
            if reply is not None and _finished(reply):
                return reply
            if reply is not None and reply.progress is not None:
                await progress(reply.progress, "upstream")
            await asyncio.sleep(options.poll_interval)

    async def _look(
        self, url: httpx.URL, query: dict[str, str], options: UpstreamOptions
    ) -> UpstreamReply | None:
        """The job as the upstream shows it now, or None after a hiccup worth polling through."""
        timeout = httpx.Timeout(min(options.timeout, POLL_TIMEOUT), connect=CONNECT_TIMEOUT)
        try:
            response = await self._client.get(
                url, params=query, headers=options.headers(), timeout=timeout
            )
        except httpx.TransportError as exc:
            log.warning(
                "upstream poll failed", extra={"url": str(url), "error": type(exc).__name__}
            )
            return None
        if _retryable(response):
            return None
        return parse_reply(_checked(response, options))

    async def _cancel(self, job_id: str, options: UpstreamOptions) -> None:
        url = options.url(f"/v1/jobs/{job_id}/cancel")
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await self._client.post(url, headers=options.headers())


async def _attempt(post: Post, options: UpstreamOptions, *, last: bool) -> httpx.Response | None:
    """One POST; None when it never reached the upstream and may be tried again."""
    try:
        return await post()
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        if last:
            raise GenerationError(
                f"upstream: could not connect to {options.base_url} ({type(exc).__name__})"
            ) from exc
        return None


def _finished(reply: UpstreamReply) -> bool:
    """True once the upstream job completed; its failure, once it failed, is raised as ours."""
    status = (reply.status or "").lower()
    if status in _FAILED:
        raise reply.failure()
    return status in _DONE


def _retryable(response: httpx.Response) -> bool:
    """429, or a 5xx that is not the upstream reporting a failed generation (those carry a
    ``code`` such as E1001 and would only fail again)."""
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        return True
    return response.is_server_error and error_text(response)[1] is None


def _checked(response: httpx.Response, options: UpstreamOptions) -> httpx.Response:
    if response.is_success:
        return response
    text, code = error_text(response)
    if response.status_code in _KEY_REFUSED and options.key_env:
        text = f"{text} (check the upstream key in {options.key_env})"
    if code == GenerationTimeoutError.code:
        raise GenerationTimeoutError(f"upstream: {text}")
    raise GenerationError(f"upstream: {text}")


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _status(response: httpx.Response | None) -> int | None:
    return response.status_code if response is not None else None


def create(context: EngineContext) -> UpstreamEngine:
    """One client for every upstream this server forwards to; outputs pass the address guard."""
    router = OriginRouter(AddressPolicy(allow_private=context.settings.allow_private_urls))
    client = httpx.AsyncClient(
        transport=router,
        trust_env=False,  # a proxy from the environment would bypass the address guard
        follow_redirects=False,
        max_redirects=5,
        timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT),
        headers={"User-Agent": f"hyperlocal/{__version__}"},
    )
    return UpstreamEngine(client, router)
