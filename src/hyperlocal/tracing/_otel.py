"""OpenTelemetry's side of ``hyperlocal.tracing``: imported only once tracing is on."""

from __future__ import annotations

import os
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import get_meter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from hyperlocal import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import TraceState

    from hyperlocal.store.tables import Job, WebhookDelivery

__all__ = ["Tracing", "WithinOperations"]

T = TypeVar("T")

# What a row stores is always W3C ``traceparent``, whatever OTEL_PROPAGATORS says for headers.
_W3C = TraceContextTextMapPropagator()


class Tracing:
    """This process's tracer provider, its OTLP/HTTP exporter, and the instrumentations that
    report to it."""

    def __init__(self, service_name: str) -> None:
        # The sampler that OTEL_TRACES_SAMPLER names (by default, the parent's decision, and
        # every root), as TracerProvider would take it, less the lone client spans.
        sampler = WithinOperations(_get_from_env_or_default())
        self.provider = TracerProvider(resource=_resource(service_name), sampler=sampler)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("hyperlocal", __version__)
        self._undo = [
            _instrument_httpx(self.provider),
            _instrument_celery(self.provider),
            _trace_engines(self.provider),
        ]

    def instrument_app(self, app: FastAPI) -> None:
        # The ASGI send and receive spans are left out: a streamed answer (SSE, a relayed
        # chat) would add one per chunk.
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=_excluded_urls(),
            exclude_spans=["receive", "send"],
        )

    def shutdown(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self.provider.shutdown()  # flushes what the batch holds

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get("traceparent")

    def job_span(self, job: Job, work: Awaitable[T]) -> Awaitable[T]:
        attributes: dict[str, str | int] = {
            "hyperlocal.job.id": job.id,
            "hyperlocal.job.model": job.model,
            "hyperlocal.job.category": job.category,
            "hyperlocal.job.attempt": job.attempts,
        }
        return self._in_span("job.run", work, _parent(job.traceparent), attributes)

    def engine_span(self, engine: str, work: Awaitable[T]) -> Awaitable[T]:
        return self._in_span("engine.generate", work, None, {"hyperlocal.engine": engine})

    def storage_span(self, step: str, work: Awaitable[T]) -> Awaitable[T]:
        return self._in_span("storage.write", work, None, {"hyperlocal.storage.step": step})

    def statement_span(self, sql: str, database: str) -> AbstractContextManager[object]:
        attributes = {"db.system": "sqlite", "db.name": database, "db.statement": sql}
        verb = sql.split(None, 1)[0].upper() if sql.strip() else "SQL"
        return self.tracer.start_as_current_span(
            f"{verb} {database}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def delivery_span(self, delivery: WebhookDelivery, work: Awaitable[T]) -> Awaitable[T]:
        attributes: dict[str, str | int] = {
            "hyperlocal.job.id": delivery.job_id,
            "hyperlocal.webhook.delivery_id": delivery.id,
            "hyperlocal.webhook.attempt": delivery.attempts + 1,
        }
        # An empty parent context: a new trace, whatever the dispatcher's task inherited.
        links = _links_to(delivery.traceparent)
        return self._in_span("webhook.deliver", work, Context(), attributes, links)

    async def _in_span(
        self,
        name: str,
        work: Awaitable[T],
        parent: Context | None,
        attributes: Attributes,
        links: Sequence[Link] = (),
    ) -> T:
        with self.tracer.start_as_current_span(
            name, context=parent, attributes=attributes, links=links
        ):
            return await work


class WithinOperations(Sampler):
    """Samples as ``inner`` does, except that a client span (a database statement, an HTTP
    call) without a parent is dropped. Such calls come from background loops (the webhook
    dispatcher's poll, the queue's sweeps, a claim before its job's span starts), several a
    second, each of which would be a trace of one span. Inside a request, a job or a delivery
    they are kept."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(  # noqa: PLR0917 - the Sampler interface's
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WithinOperations{{{self._inner.get_description()}}}"


def _resource(service_name: str) -> Resource:
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    return Resource.create({SERVICE_NAME: name, SERVICE_VERSION: __version__})


def _excluded_urls() -> str | None:
    """Health checks and metrics scrapes, every few seconds each, are not traced, unless the
    operator names the URLs to leave out (the instrumentation's variables)."""
    named = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
    return None if any(name in os.environ for name in named) else "/healthz$,/metrics$"


def _parent(traceparent: str | None) -> Context | None:
    """The context a stored ``traceparent`` names; None (the current one) without one."""
    return _W3C.extract({"traceparent": traceparent}) if traceparent else None


def _links_to(traceparent: str | None) -> list[Link]:
    if not traceparent:
        return []
    linked = trace.get_current_span(_W3C.extract({"traceparent": traceparent}))
    context = linked.get_span_context()
    return [Link(context)] if context.is_valid else []


def _instrument_httpx(provider: TracerProvider) -> Callable[[], None]:
    """Every httpx transport: upstream engines, provider SDKs on httpx, media fetches and
    webhook POSTs carry ``traceparent``."""
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def undo() -> None:
        instrumentor.uninstrument()

    return undo


def _instrument_celery(provider: TracerProvider) -> Callable[[], None]:
    """Celery's publish (API servers, a worker's re-dispatch) and delivery (workers) spans,
    with the context carried in the message's headers."""
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)

    def undo() -> None:
        instrumentor.uninstrument()

    return undo


def _trace_engines(provider: TracerProvider) -> Callable[[], None]:
    """Trace the statements of every SQLAlchemy engine of the process, from its first
    connection. The instrumentation's own hook wraps ``create_async_engine``, which
    ``store.db`` imported before tracing starts; a listener on every ``Engine`` sees them all."""
    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    usage = get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    traced: weakref.WeakSet[Engine] = weakref.WeakSet()

    def on_connect(conn: Connection) -> None:
        if conn.engine not in traced:
            traced.add(conn.engine)
            EngineTracer(tracer, conn.engine, usage)  # type: ignore[no-untyped-call]

    def undo() -> None:
        event.remove(Engine, "engine_connect", on_connect)
        EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]

    event.listen(Engine, "engine_connect", on_connect)
    return undo
