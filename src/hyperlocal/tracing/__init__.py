"""Traces (OpenTelemetry), off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set.

One trace follows a request through every process it touches::

    POST /v1/videos/generate            the API's server span (the FastAPI instrumentation)
    ├── apply_async/hyperlocal.run_job  scale-out only: the Celery message, and in the worker
    │   └── run/hyperlocal.run_job      its delivery (the Celery instrumentation)
    └── job.run                         the runner, in whichever process runs the job
        ├── engine.generate             the engine's run; its upstream HTTP calls below it
        ├── storage.write               the outputs staged ...
        └── storage.write               ... and published

``job.run`` is a child of the span that submitted the job, whichever process runs it and
however late: the job's row carries that span's W3C ``traceparent`` (``Job.traceparent``),
which the in-process queue, a Celery worker and a restarted server all read back.

A webhook delivery is a trace of its own (``webhook.deliver``, its POST below it), with a span
link to the span that ended the job (``job.run``, or a cancel request): the outbox row, written
in the job's terminal transaction, keeps that span's ``traceparent``.

Off, each function here costs one attribute test and imports nothing: OpenTelemetry loads
(``hyperlocal.tracing._otel``) only when ``setup_tracing`` finds an endpoint. The exporter reads
the standard ``OTEL_*`` variables itself (headers, timeout, compression, batching, sampler).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hyperlocal.store.tables import Job, WebhookDelivery
    from hyperlocal.tracing._otel import Tracing

__all__ = [
    "API_SERVICE",
    "WORKER_SERVICE",
    "delivery_span",
    "engine_span",
    "job_span",
    "setup_tracing",
    "shutdown_tracing",
    "statement_span",
    "storage_span",
    "trace_app",
    "traceparent",
    "tracing_configured",
]

API_SERVICE = "hyperlocal"
WORKER_SERVICE = "hyperlocal-worker"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

T = TypeVar("T")


@dataclass
class _State:
    """The process's tracing, once started. Process-wide, like OpenTelemetry's own provider:
    every app and runner of the process reports to the one exporter."""

    tracing: Tracing | None = None


_state = _State()


def tracing_configured() -> bool:
    return any(os.environ.get(name) for name in _ENDPOINTS)


def setup_tracing(service_name: str) -> bool:
    """Start tracing this process (once) if an OTLP endpoint is configured: the exporter, and
    the httpx, SQLAlchemy and Celery instrumentations. Whether tracing is on. A process ends
    its tracing with ``shutdown_tracing``, or at exit, when the spans left are flushed."""
    return _start(service_name) is not None


def _start(service_name: str) -> Tracing | None:
    if _state.tracing is None and tracing_configured():
        from hyperlocal.tracing._otel import Tracing

        _state.tracing = Tracing(service_name)
    return _state.tracing


def trace_app(app: FastAPI) -> None:
    """Give ``app``'s requests server spans, starting this process's tracing first; nothing
    when tracing is off."""
    tracing = _start(API_SERVICE)
    if tracing is not None:
        tracing.instrument_app(app)


def shutdown_tracing() -> None:
    """Flush the spans not yet exported and stop tracing this process."""
    tracing, _state.tracing = _state.tracing, None
    if tracing is not None:
        tracing.shutdown()


def traceparent() -> str | None:
    """The current span's W3C ``traceparent``, to store beside what it caused; None when
    tracing is off or no span is current."""
    return None if _state.tracing is None else _state.tracing.traceparent()


def job_span(job: Job, work: Awaitable[T]) -> Awaitable[T]:
    """``work``, the run of ``job``, inside a ``job.run`` span: a child of the span that
    submitted the job (the current span, for a job submitted before tracing was on)."""
    return work if _state.tracing is None else _state.tracing.job_span(job, work)


def engine_span(engine: str, work: Awaitable[T]) -> Awaitable[T]:
    """``work``, an engine's run, inside an ``engine.generate`` span."""
    return work if _state.tracing is None else _state.tracing.engine_span(engine, work)


def storage_span(step: str, work: Awaitable[T]) -> Awaitable[T]:
    """``work``, a job's outputs written to storage, inside a ``storage.write`` span; ``step``
    says which write (``stage``, ``publish``)."""
    return work if _state.tracing is None else _state.tracing.storage_span(step, work)


def statement_span(sql: str, database: str) -> AbstractContextManager[object]:
    """A database statement that ``store.prepared`` runs straight on SQLite, bypassing
    SQLAlchemy (and so its instrumentation), inside a client span as that instrumentation
    would make it: ``<VERB> <database>``, with ``db.system`` and ``db.statement``."""
    return _OFF if _state.tracing is None else _state.tracing.statement_span(sql, database)


_OFF = nullcontext()


def delivery_span(delivery: WebhookDelivery, work: Awaitable[T]) -> Awaitable[T]:
    """``work``, one attempt at ``delivery``, inside a ``webhook.deliver`` span that starts a
    trace of its own, linked to the span that ended the job."""
    return work if _state.tracing is None else _state.tracing.delivery_span(delivery, work)
