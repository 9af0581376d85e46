"""``PrometheusMetrics``: the metric families, in a registry of their own, recording what
``core.metrics.Metrics`` reports (into plain numbers in one process, into the client's own
objects across several: ``_families``); and ``serve_bind``, an API process's bind of its own."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hyperlocal.core.metrics import Metrics, QueueSnapshot, snapshot
from hyperlocal.engines.base import DeviceMemory
from hyperlocal.prometheus._exposition import DeviceCollector, MetricsServer, Union, queue_gauges
from hyperlocal.prometheus._families import (
    ClientCounter,
    ClientHistogram,
    Counts,
    Observes,
    counter_family,
    histogram_family,
)
from hyperlocal.prometheus._multiproc import EveryProcess
from hyperlocal.settings import Settings
from hyperlocal.store.db import Database

__all__ = ["PrometheusMetrics", "multiprocess_dir", "open_metrics", "serve_bind"]

log = logging.getLogger(__name__)

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_JOB = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_TOKEN = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LOAD = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def open_metrics(settings: Settings) -> Metrics:
    """The process's metrics: recorded when ``settings.metrics`` is on, else the silent base."""
    return PrometheusMetrics() if settings.metrics else Metrics()


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

    def _counter(self, name: str, doc: str, *labels: str) -> Counts:
        if self.multiprocess:
            return ClientCounter(Counter(name, doc, labels, registry=self.registry))
        family = counter_family(name, doc, labels)
        self.registry.register(family)
        return family

    def _histogram(self, name: str, doc: str, buckets: Iterable[float], *labels: str) -> Observes:
        if self.multiprocess:
            metric = Histogram(name, doc, labels, registry=self.registry, buckets=tuple(buckets))
            return ClientHistogram(metric)
        family = histogram_family(name, doc, labels, buckets)
        self.registry.register(family)
        return family

    def _http(self) -> None:
        self.http_total = self._counter(
            "hyperlocal_http_requests", "HTTP requests answered.", "route", "method", "status"
        )
        self.http_seconds = self._histogram(
            "hyperlocal_http_request_duration_seconds",
            "Time from a request's arrival to its response's last byte.",
            Histogram.DEFAULT_BUCKETS,
            "route",
        )
        self.overhead = self._histogram(
            "hyperlocal_gateway_overhead_seconds",
            "Time hyperlocal adds to a relayed request's first byte, on top of the backend.",
            _FAST,
            "route",
        )
        self._rate_limited = self._counter(
            "hyperlocal_rate_limited", "Requests refused by their key's rolling-hour limit."
        )

    def _jobs(self) -> None:
        self._submitted = self._counter(
            "hyperlocal_jobs_submitted", "Jobs created (and charged).", "model", "category"
        )
        self._finished = self._counter("hyperlocal_jobs_finished", "Jobs ended.", "model", "status")
        self._queued_s = self._histogram(
            "hyperlocal_job_queue_seconds",
            "Time from a job's creation to its first start.",
            _JOB,
            "model",
        )
        self._run_s = self._histogram(
            "hyperlocal_job_run_seconds", "Time from a job's start to its end.", _JOB, "model"
        )
        self._charged = self._counter(
            "hyperlocal_credits_charged", "Credits charged for jobs.", "model"
        )
        self._refunded = self._counter("hyperlocal_credits_refunded", "Credits refunded.", "model")
        self._insufficient = self._counter(
            "hyperlocal_insufficient_credits", "Submits refused for want of credits (402)."
        )

    def _chat_and_webhooks(self) -> None:
        self._tokens = self._counter("hyperlocal_chat_tokens", "Chat tokens used.", "model", "kind")
        self._ttft = self._histogram(
            "hyperlocal_chat_time_to_first_token_seconds",
            "Time from a chat's opening to its first token.",
            _TOKEN,
            "model",
        )
        self._webhooks = self._counter(
            "hyperlocal_webhook_deliveries",
            "Webhook requests made, by the delivery's state after each.",
            "outcome",
        )
        self._webhook_s = self._histogram(
            "hyperlocal_webhook_delivery_seconds",
            "Time a webhook receiver took to answer.",
            Histogram.DEFAULT_BUCKETS,
        )
        self._loads = self._counter(
            "hyperlocal_model_loads", "Engines and weights loaded.", "engine"
        )
        self._load_s = self._histogram(
            "hyperlocal_model_load_seconds", "Time to load an engine.", _LOAD, "engine"
        )
        # A gauge changes at a load or a release, never per request: the client's own, in
        # either mode (registered last, so a scrape's order is as it was).
        loaded = Gauge(
            "hyperlocal_models_loaded",
            "Models held loaded, by device.",
            ["device"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._resident = ClientCounter(loaded)

    # -- what core reports ----------------------------------------------------------------

    def submitted(self, model: str, category: str, credits: int) -> None:
        self._submitted.inc((model, category))
        self._charged.inc((model,), credits)

    def insufficient_credits(self) -> None:
        self._insufficient.inc(())

    def rate_limited(self) -> None:
        self._rate_limited.inc(())

    def started(self, model: str, queued_s: float) -> None:
        self._queued_s.observe((model,), queued_s if queued_s > 0 else 0.0)

    def finished(self, model: str, status: str, run_s: float | None) -> None:
        self._finished.inc((model, status))
        if run_s is not None:
            self._run_s.observe((model,), run_s if run_s > 0 else 0.0)

    def refunded(self, model: str, credits: int) -> None:
        self._refunded.inc((model,), credits)

    def chat_tokens(self, model: str, prompt: int | None, completion: int) -> None:
        if prompt:
            self._tokens.inc((model, "prompt"), prompt)
        self._tokens.inc((model, "completion"), completion)

    def first_token(self, model: str, seconds: float) -> None:
        self._ttft.observe((model,), seconds)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self._webhooks.inc((outcome,))
        self._webhook_s.observe((), seconds)

    def model_loaded(self, engine: str, seconds: float) -> None:
        self._loads.inc((engine,))
        self._load_s.observe((engine,), seconds)

    def resident(self, device: str, change: int) -> None:
        self._resident.inc((device,), change)

    def watch_devices(self, source: Callable[[], Sequence[DeviceMemory]]) -> None:
        self.devices.source = source

    # -- what the HTTP layer reports ------------------------------------------------------

    def http_request(
        self, route: str, method: str, status: int, seconds: float, overhead: float | None = None
    ) -> None:
        """A request answered in ``seconds``; ``overhead``: the gateway's part of a relayed
        request's wait for its first byte (``api.metrics.BACKEND_S``)."""
        method = method if method in _METHODS else "other"
        self.http_total.inc((route, method, _STATUS.get(status) or str(status)))
        self.http_seconds.observe((route,), seconds)
        if overhead is not None:
            # Never below 0, as ``max(0.0, x)`` would say, less a builtin's call.
            self.overhead.observe((route,), overhead if overhead > 0 else 0.0)

    # -- exposition -----------------------------------------------------------------------

    def collectors(self) -> list[Collector]:
        """What a scrape of this process shows, but for the database's numbers."""
        directory = multiprocess_dir()
        if self.multiprocess and directory is not None:
            return [EveryProcess(directory), self.devices]
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
