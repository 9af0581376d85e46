"""A real OTLP/HTTP trace receiver on loopback: servers under test export their spans to it
(``OTEL_EXPORTER_OTLP_ENDPOINT``), and it decodes them with ``opentelemetry-proto``."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as WireSpan

from tests.receiver import Received
from tests.support import serve_in_thread

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = (
    WireSpan.SPAN_KIND_SERVER,
    WireSpan.SPAN_KIND_CLIENT,
    WireSpan.SPAN_KIND_PRODUCER,
    WireSpan.SPAN_KIND_CONSUMER,
    WireSpan.SPAN_KIND_INTERNAL,
)


@dataclass(frozen=True)
class Span:
    """One exported span; ids in hex, as ``traceparent`` spells them. ``parent`` is "" for a
    trace's root; ``links`` holds (trace id, span id) pairs."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, object]
    links: tuple[tuple[str, str], ...]


def otel_env(base: str) -> dict[str, str]:
    """A server's environment to export to the receiver at ``base``, in batches sent every
    50 ms."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def only(spans: list[Span], what: str) -> Span:
    assert len(spans) == 1, f"{len(spans)} spans for {what}: {spans}"
    return spans[0]


def named_by(traceparent: str) -> tuple[str, str]:
    """The (trace id, span id) a W3C ``traceparent`` header names."""
    _version, trace_id, span_id, _flags = traceparent.split("-")
    return trace_id, span_id


def is_http_call(span: Span) -> bool:
    return span.kind == CLIENT and bool(
        span.attributes.get("http.method") or span.attributes.get("http.request.method")
    )


def is_statement(span: Span) -> bool:
    return span.kind == CLIENT and bool(
        span.attributes.get("db.system") or span.attributes.get("db.system.name")
    )


@dataclass
class Collector:
    base: str = ""
    _spans: list[Span] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def children(self, parent: Span) -> list[Span]:
        return [s for s in self.spans if s.parent == parent.span_id]

    def delivery_post(self) -> Span | None:
        """A webhook's POST: the httpx client span under ``webhook.deliver``."""
        for deliver in self.named("webhook.deliver"):
            for child in self.children(deliver):
                if is_http_call(child):
                    return child
        return None

    async def export(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        spans = _decode(ExportTraceServiceRequest.FromString(body))
        with self._lock:
            self._spans.extend(spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")


@contextmanager
def running_collector() -> Iterator[Collector]:
    collector = Collector()
    app = FastAPI()
    app.add_api_route("/v1/traces", collector.export, methods=["POST"])
    with serve_in_thread(app) as base:
        collector.base = base
        yield collector


def _decode(message: ExportTraceServiceRequest) -> list[Span]:
    spans: list[Span] = []
    for resource_spans in message.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            spans += [_span(service, span) for span in scope_spans.spans]
    return spans


def _span(service: str, span: WireSpan) -> Span:
    return Span(
        service=service,
        name=span.name,
        kind=span.kind,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent=span.parent_span_id.hex(),
        attributes=_attributes(span.attributes),
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
    )


def _attributes(pairs: list[KeyValue]) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def assert_linked_delivery(collector: Collector, hook: Received, run: Span) -> None:
    """A webhook's delivery is a trace of its own whose span links to the job's run; its POST
    (``hook``, as the receiver got it) carries ``traceparent``, naming the POST's own span."""
    deliver = only(collector.named("webhook.deliver"), "the delivery")
    assert deliver.parent == ""
    assert deliver.trace_id != run.trace_id
    assert deliver.links == ((run.trace_id, run.span_id),)
    assert deliver.attributes["hyperlocal.job.id"] == run.attributes["hyperlocal.job.id"]
    post = collector.delivery_post()
    assert post is not None
    assert post.trace_id == deliver.trace_id
    assert named_by(hook.headers["traceparent"]) == (post.trace_id, post.span_id)
