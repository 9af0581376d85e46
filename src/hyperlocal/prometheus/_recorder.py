"""``PrometheusMetrics``: the metric objects, in a registry of their own, recording what
``core.metrics.Metrics`` reports; and ``serve_bind``, an API process's bind of its own."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hyperlocal.core.metrics import Metrics, QueueSnapshot, snapshot
from hyperlocal.engines.base import DeviceMemory
from hyperlocal.prometheus._exposition import DeviceCollector, MetricsServer, Union, queue_gauges
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database

__all__ = ["PrometheusMetrics", "multiprocess_dir", "open_metrics", "serve_bind"]

log = logging.getLogger(__name__)

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_JOB = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_TOKEN = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LOAD = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

M = TypeVar("M", Counter, Histogram, Gauge)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def open_metrics(settings: Settings) -> Metrics:
    """The process's metrics: recorded when ``settings.metrics`` is on, else the silent base."""
    return PrometheusMetrics() if settings.metrics else Metrics()


class _Children(Generic[M]):
    """A labelled metric's children, looked up once per label values: ``labels()`` itself
    validates and formats its arguments under a lock on every call."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self._metric.labels(*values)
        return child


class PrometheusMetrics(Metrics):
    """Every hyperlocal metric, in a registry of this instance's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._http()
        self._jobs()
        self._chat_and_webhooks()
        self.devices = DeviceCollector()

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, buckets: Iterable[float], *labels: str) -> Histogram:
        return Histogram(name, doc, labels, registry=self.registry, buckets=tuple(buckets))

    def _http(self) -> None:
        self.http_total = _Children(
            self._counter(
                "hyperlocal_http_requests", "HTTP requests answered.", "route", "method", "status"
            )
        )
        self.http_seconds = _Children(
            self._histogram(
                "hyperlocal_http_request_duration_seconds",
                "Time from a request's arrival to its response's last byte.",
                Histogram.DEFAULT_BUCKETS,
                "route",
            )
        )
        self.overhead = _Children(
            self._histogram(
                "hyperlocal_gateway_overhead_seconds",
                "Time hyperlocal adds to a relayed request's first byte, on top of the backend.",
                _FAST,
                "route",
            )
        )
        self._rate_limited = self._counter(
            "hyperlocal_rate_limited", "Requests refused by their key's rolling-hour limit."
        )

    def _jobs(self) -> None:
        self._submitted = _Children(
            self._counter(
                "hyperlocal_jobs_submitted", "Jobs created (and charged).", "model", "category"
            )
        )
        self._finished = _Children(
            self._counter("hyperlocal_jobs_finished", "Jobs ended.", "model", "status")
        )
        self._queued_s = _Children(
            self._histogram(
                "hyperlocal_job_queue_seconds",
                "Time from a job's creation to its first start.",
                _JOB,
                "model",
            )
        )
        self._run_s = _Children(
            self._histogram(
                "hyperlocal_job_run_seconds", "Time from a job's start to its end.", _JOB, "model"
            )
        )
        self._charged = _Children(
            self._counter("hyperlocal_credits_charged", "Credits charged for jobs.", "model")
        )
        self._refunded = _Children(
            self._counter("hyperlocal_credits_refunded", "Credits refunded.", "model")
        )
        self._insufficient = self._counter(
            "hyperlocal_insufficient_credits", "Submits refused for want of credits (402)."
        )

    def _chat_and_webhooks(self) -> None:
        self._tokens = _Children(
            self._counter("hyperlocal_chat_tokens", "Chat tokens used.", "model", "kind")
        )
        self._ttft = _Children(
            self._histogram(
                "hyperlocal_chat_time_to_first_token_seconds",
                "Time from a chat's opening to its first token.",
                _TOKEN,
                "model",
            )
        )
        self._webhooks = _Children(
            self._counter(
                "hyperlocal_webhook_deliveries",
                "Webhook requests made, by the delivery's state after each.",
                "outcome",
            )
        )
        self._webhook_s = self._histogram(
            "hyperlocal_webhook_delivery_seconds",
            "Time a webhook receiver took to answer.",
            Histogram.DEFAULT_BUCKETS,
        )
        self._loads = _Children(
            self._counter("hyperlocal_model_loads", "Engines and weights loaded.", "engine")
        )
        self._load_s = _Children(
            self._histogram(
                "hyperlocal_model_load_seconds", "Time to load an engine.", _LOAD, "engine"
            )
        )
        loaded = Gauge(
            "hyperlocal_models_loaded",
            "Models held loaded, by device.",
            ["device"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._resident = _Children(loaded)

    # -- what core reports ----------------------------------------------------------------

    def submitted(self, model: str, category: str, credits: int) -> None:
        self._submitted(model, category).inc()
        self._charged(model).inc(credits)

    def insufficient_credits(self) -> None:
        self._insufficient.inc()

    def rate_limited(self) -> None:
        self._rate_limited.inc()

    def started(self, model: str, queued_s: float) -> None:
        self._queued_s(model).observe(max(0.0, queued_s))

    def finished(self, model: str, status: str, run_s: float | None) -> None:
        self._finished(model, status).inc()
        if run_s is not None:
            self._run_s(model).observe(max(0.0, run_s))

    def refunded(self, model: str, credits: int) -> None:
        self._refunded(model).inc(credits)

    def chat_tokens(self, model: str, prompt: int | None, completion: int) -> None:
        if prompt:
            self._tokens(model, "prompt").inc(prompt)
        self._tokens(model, "completion").inc(completion)

    def first_token(self, model: str, seconds: float) -> None:
        self._ttft(model).observe(seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self._webhooks(outcome).inc()
        self._webhook_s.observe(seconds)

    def model_loaded(self, engine: str, seconds: float) -> None:
        self._loads(engine).inc()
        self._load_s(engine).observe(seconds)

    def resident(self, device: str, change: int) -> None:
        self._resident(device).inc(change)

    def watch_devices(self, source: Callable[[], Sequence[DeviceMemory]]) -> None:
        self.devices.source = source

    # -- what the HTTP layer reports ------------------------------------------------------

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "other"
        self.http_total(route, method, _STATUS.get(status) or str(status)).inc()
        self.http_seconds(route).observe(seconds)

    def gateway_overhead(self, route: str, seconds: float) -> None:
        self.overhead(route).observe(max(0.0, seconds))

    # -- exposition -----------------------------------------------------------------------

    def collectors(self) -> list[Collector]:
        """What a scrape of this process shows, but for the database's numbers."""
        if self.multiprocess:
            every = CollectorRegistry()
            MultiProcessCollector(every)  # type: ignore[no-untyped-call]
            return [every, self.devices]
        return [self.registry, self.devices]

    def render(self, queue: QueueSnapshot | None) -> bytes:
        """The text exposition: this process (or, multiprocess, every process), then ``queue``."""
        scrape = Union(self.collectors(), queue_gauges(queue) if queue else [])
        return generate_latest(scrape)


_STATUS = {code: str(code) for code in range(100, 600)}


def serve_bind(
    metrics: Metrics, bind: str | None, db: Database, models: Sequence[str] = ()
) -> MetricsServer | None:
    """An API process's ``HYPERLOCAL_METRICS_BIND`` server, with the queue read from ``db`` on
    the running loop. Several uvicorn workers (multiprocess mode) each try the one address:
    the first serves every process's numbers, and the others leave it to that one."""
    if bind is None or not isinstance(metrics, PrometheusMetrics):
        return None
    try:
        loop = asyncio.get_running_loop()
        fetch = partial(snapshot, db, models)  # read on the loop, at each scrape
        return MetricsServer.start(metrics.collectors(), bind, fetch, loop)
    except OSError:
        if not metrics.multiprocess:
            raise
        log.info("metrics bind taken: another worker serves it", extra={"bind": bind})
        return None
