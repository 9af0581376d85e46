"""Serving a model id through its routes: the first usable one, and failover between them.

For each job the router walks the entry's routes in order (``routes.py``):

- a provider route is usable when its provider has a key; a local ``engine:`` route when the
  engine is installed. With none usable, the entry's own ``engine`` serves, as before any
  provider existed (the built-in stand-ins, offline).
- a provider whose circuit is open (``health.Breaker``) is skipped; a local route marked
  ``overflow_wait_s`` is skipped while its expected wait is longer, if a route follows.
- a provider's ``UNAVAILABLE`` failure (5xx, timeout, refused connection, a 429 whose
  ``Retry-After`` would pass the budget) moves the job to the next route; a 429 within the
  budget waits and tries the same route again. Failover never leaves the real routes for a
  stand-in.
- ``INVALID`` (the provider refused the input) fails the job as ``ProviderInputError``
  (E1004, a 400 on a synchronous call); ``FAILED`` as a ``GenerationError`` with the
  provider's words. Both are refunded by the runner, like any failure.

Every attempt is recorded (route, provider request id, outcome, latency, the provider's cost)
and travels with the result, or with the error, to the job's row. Outputs are downloaded
through the address guard and re-hosted by the runner: providers' URLs expire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from ipaddress import ip_address
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from hyperlocal import __version__
from hyperlocal.engines.base import (
    Artifact,
    Engine,
    GenerationRequest,
    GenerationResult,
    PositionCallback,
    ProgressCallback,
)
from hyperlocal.engines.media.downloads import artifact_of, download
from hyperlocal.engines.media.transcript import transcript_artifact
from hyperlocal.engines.providers.attempts import (
    Attempt,
    AttemptWatch,
    Run,
    all_failed,
    outcome_of,
    total_cost,
)
from hyperlocal.engines.providers.base import (
    FailureKind,
    Provider,
    ProviderCall,
    ProviderError,
    ProviderOutput,
    ProviderResult,
)
from hyperlocal.engines.providers.health import Breaker, InFlight, Lane
from hyperlocal.engines.providers.hub import WebhookHub
from hyperlocal.engines.providers.mapping import map_inputs
from hyperlocal.engines.providers.registry import ProviderRegistry
from hyperlocal.engines.providers.routes import RouteSpec
from hyperlocal.engines.registry import EngineRegistry
from hyperlocal.errors import GenerationError, ProviderInputError
from hyperlocal.inputs import AddressPolicy, GuardedTransport
from hyperlocal.inputs.addresses import is_forbidden
from hyperlocal.settings import Settings

__all__ = ["RoutedEntry", "Router", "webhooks_wanted"]

log = logging.getLogger(__name__)

_DOWNLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class RoutedEntry(Protocol):
    """What the router reads of a catalogue entry (``core.catalog.ModelEntry``)."""

    @property
    def id(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def routes(self) -> tuple[RouteSpec, ...]: ...


class Router:
    def __init__(
        self,
        settings: Settings,
        engines: EngineRegistry,
        providers: ProviderRegistry,
        hub: WebhookHub,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings, self._engines = settings, engines
        self.providers, self.hub = providers, hub
        self.breaker = Breaker(
            settings.provider_breaker_failures, settings.provider_breaker_cooldown, clock
        )
        self._in_flight = InFlight(settings.provider_concurrency)
        self._lanes: dict[str, Lane] = {}
        self._clock = clock
        self._client: httpx.AsyncClient | None = None

    @property
    def _downloads(self) -> httpx.AsyncClient:
        """Outputs come from URLs that a provider names: every one passes the address guard."""
        if self._client is None:
            policy = AddressPolicy(allow_private=self._settings.allow_private_urls)
            self._client = httpx.AsyncClient(
                transport=GuardedTransport(policy),
                trust_env=False,  # a proxy from the environment would bypass the guard
                timeout=_DOWNLOAD_TIMEOUT,
                headers={"User-Agent": f"hyperlocal/{__version__}"},
            )
        return self._client

    @property
    def engines(self) -> EngineRegistry:
        return self._engines

    # -- which route -------------------------------------------------------------------

    def usable(self, entry: RoutedEntry) -> list[RouteSpec]:
        """The entry's routes that can serve here: a key for a provider, an installed engine."""
        return [route for route in entry.routes if self._ready(route)]

    def active(self, entry: RoutedEntry) -> str:
        """The route a job would take now: ``fal:fal-ai/...``, or ``engine:<name>``."""
        for route in self.usable(entry):
            if route.is_engine or not self.breaker.is_open(route.provider):
                return route.to
        return f"engine:{entry.engine}"

    def lane(self, engine: str) -> Lane:
        return self._lanes.setdefault(engine, Lane(self._clock))

    def _ready(self, route: RouteSpec) -> bool:
        if route.is_engine:
            return self._engines.available(route.target)
        return self.providers.configured(route.provider)

    # -- a job ---------------------------------------------------------------------------

    async def generate(
        self,
        entry: RoutedEntry,
        request: GenerationRequest,
        progress: ProgressCallback,
        position: PositionCallback,
    ) -> GenerationResult:
        routes = self.usable(entry)
        if not routes:
            engine = await self._engines.get(entry.engine)
            return await engine.generate(request, progress)
        run = Run(request, progress, position)
        try:
            result = await self._walk(routes, run)
        except GenerationError as exc:
            exc.attempts = run.records()
            raise
        return dataclasses.replace(
            result, attempts=run.records(), provider_cost_usd=total_cost(run.attempts)
        )

    async def _walk(self, routes: Sequence[RouteSpec], run: Run) -> GenerationResult:
        for i, route in enumerate(routes):
            if route.is_engine:
                result = await self._local(route, run, more=i + 1 < len(routes))
            else:
                result = await self._remote(route, run)
            if result is not None:
                return result
        raise GenerationError(all_failed(run.attempts))

    async def _local(self, route: RouteSpec, run: Run, *, more: bool) -> GenerationResult | None:
        attempt = run.attempt(route)
        lane = self.lane(route.target)
        wait = lane.expected_wait()
        if more and route.overflow_wait_s is not None and wait > route.overflow_wait_s:
            attempt.end("skipped", f"overflow: expected wait {wait:.1f} s")
            return None
        engine: Engine = await self._engines.get(route.target)
        async with lane.entered():
            try:
                result = await engine.generate(run.request, run.progress)
            except BaseException as exc:
                attempt.end(outcome_of(exc), str(exc) or type(exc).__name__)
                raise
        attempt.end("ok")
        return result

    async def _remote(self, route: RouteSpec, run: Run) -> GenerationResult | None:
        if self.breaker.is_open(route.provider):
            run.attempt(route).end("skipped", "circuit open: the provider failed its last calls")
            return None
        provider = await self.providers.get(route.provider)
        request = run.request
        call = ProviderCall(
            job_id=request.job_id,
            model=request.model,
            category=request.category,
            endpoint=route.target,
            payload=map_inputs(request, route),
            webhook_url=self._webhook_url(route.provider),
        )
        async with self._in_flight.slot(route.provider):
            answer = await self._call(provider, call, route, run)
        if answer is None:
            return None
        try:
            return await self._result(answer, request)
        finally:
            await run.position(None)

    async def _call(
        self, provider: Provider, call: ProviderCall, route: RouteSpec, run: Run
    ) -> ProviderResult | None:
        """The provider's answer; None to move on. 429s within the budget are waited out."""
        waited = 0.0
        while True:
            attempt = run.attempt(route)
            watch = AttemptWatch(attempt, self.hub, run.progress, run.position)
            try:
                answer = await provider.run(call, watch)
            except ProviderError as exc:
                pause = self._handle(exc, route, attempt, waited)
                if pause is None:
                    return None
                await asyncio.sleep(pause)
                waited += pause
                continue
            except asyncio.CancelledError:
                attempt.end("canceled")
                raise
            finally:
                if attempt.request_id:
                    self.hub.forget(route.provider, attempt.request_id)
            self.breaker.succeeded(route.provider)
            attempt.request_id = answer.request_id or attempt.request_id
            attempt.cost_usd = answer.cost_usd
            attempt.end("ok")
            return answer

    def _handle(
        self, exc: ProviderError, route: RouteSpec, attempt: Attempt, waited: float
    ) -> float | None:
        """After a failed call: the pause before trying the route again, None to move on;
        raise when the job fails here."""
        attempt.request_id = attempt.request_id or exc.request_id
        said = f"{route.provider}: {exc.message}"
        if exc.kind is FailureKind.INVALID:
            attempt.end("invalid", exc.message, exc.status)
            raise ProviderInputError(said)
        if exc.kind is FailureKind.FAILED:
            attempt.end("failed", exc.message, exc.status)
            raise GenerationError(said)
        if exc.status == httpx.codes.TOO_MANY_REQUESTS:
            pause = exc.retry_after if exc.retry_after is not None else 1.0
            attempt.end("throttled", exc.message, exc.status)
            if waited + pause <= self._settings.provider_retry_after_budget:
                return pause
            return None
        self.breaker.failed(route.provider)
        attempt.end("unavailable", exc.message, exc.status)
        log.warning(
            "provider unavailable; trying the next route",
            extra={"provider": route.provider, "status": exc.status, "error": exc.message},
        )
        return None

    async def _result(self, answer: ProviderResult, request: GenerationRequest) -> GenerationResult:
        """The outputs brought home; a transcript with no file (speech recognition) is kept as
        the JSON file that our own ASR engines store."""
        artifacts = [await self._artifact(output, request) for output in answer.outputs]
        if not artifacts and answer.text is not None:
            artifacts = [transcript_artifact(answer.text, answer.duration, answer.segments)]
        return GenerationResult(
            artifacts=artifacts,
            duration=answer.duration,
            text=answer.text,
            segments=tuple(answer.segments),
        )

    async def _artifact(self, output: ProviderOutput, request: GenerationRequest) -> Artifact:
        if output.data is not None:
            return artifact_of(output.data, output.content_type, request.category)
        if not output.url:
            raise GenerationError("provider: an output came with neither a URL nor its bytes")
        base = httpx.URL(output.url)
        return await download(
            self._downloads,
            base,
            output.url,
            request.category,
            source="provider",
            headers=output.headers,
        )

    def _webhook_url(self, provider: str) -> str | None:
        if not webhooks_wanted(self._settings):
            return None
        return self._settings.external_url(f"/v1/providers/{provider}/webhook")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await self.providers.aclose()


def webhooks_wanted(settings: Settings) -> bool:
    if settings.provider_webhooks != "auto":
        return settings.provider_webhooks == "on"
    host = urlsplit(settings.public_url).hostname or ""
    if host in ("localhost", ""):
        return False
    try:
        return not is_forbidden(ip_address(host))
    except ValueError:
        return True  # a name: the operator set a public URL
