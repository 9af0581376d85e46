"""Exposition: the numbers read at scrape time (the queue from the database, device memory
from torch), and ``MetricsServer``, the client's HTTP server on a bind of its own."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hyperlocal.core.metrics import QueueSnapshot
from hyperlocal.engines.base import DeviceMemory

__all__ = ["DeviceCollector", "MetricsServer", "Union", "queue_gauges"]

log = logging.getLogger(__name__)


class Union:
    """Several collectors as one registry, for ``generate_latest``."""

    def __init__(self, collectors: Iterable[Collector], extra: Iterable[Metric] = ()) -> None:
        self._collectors, self._extra = list(collectors), list(extra)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()
        yield from self._extra


def queue_gauges(queue: QueueSnapshot) -> list[Metric]:
    queued = GaugeMetricFamily("hyperlocal_jobs_queued", "Jobs waiting to start.", labels=["model"])
    running = GaugeMetricFamily("hyperlocal_jobs_running", "Jobs running.", labels=["model"])
    for model, count in sorted(queue.queued.items()):
        queued.add_metric([model], count)
    for model, count in sorted(queue.running.items()):
        running.add_metric([model], count)
    due = GaugeMetricFamily(
        "hyperlocal_webhook_backlog",
        "Webhook deliveries due and not yet delivered.",
        value=queue.webhooks_due,
    )
    pending = GaugeMetricFamily(
        "hyperlocal_webhook_pending",
        "Webhook deliveries not yet delivered, retries scheduled later included.",
        value=queue.webhooks_pending,
    )
    return [queued, running, due, pending]


class DeviceCollector:
    """Device memory, read when scraped: the device manager's budgets where a local engine has
    placed a model (``source``); else GPU memory from torch where this process has started
    CUDA; absent (not zero) anywhere else. torch is never imported here, and CUDA never
    started, just to be measured."""

    def __init__(self) -> None:
        self.source: Callable[[], Sequence[DeviceMemory]] | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hyperlocal_device_memory_bytes",
            "Device memory: used by the models loaded here, and the budget they may fill "
            "(HYPERLOCAL_GPU_MEMORY_FRACTION of the device).",
            labels=["device", "kind"],
        )
        budgets = list(self.source()) if self.source is not None else []
        for device in budgets:
            family.add_metric([device.device, "used"], device.used)
            family.add_metric([device.device, "budget"], device.budget)
        if budgets or _from_torch(family):
            yield family


def _from_torch(family: GaugeMetricFamily) -> bool:
    torch: Any = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return False
    current = torch.cuda.current_device()
    for index in range(torch.cuda.device_count()):
        if index != current and not torch.cuda.memory_reserved(index):
            continue  # never touched here: asking would start a context on it
        free, total = torch.cuda.mem_get_info(index)
        family.add_metric([f"cuda:{index}", "used"], total - free)
        family.add_metric([f"cuda:{index}", "budget"], total)
    return True


class _Fetched:
    """The database's numbers, for a scrape served on another thread: fetched on the app's
    loop, which owns the database."""

    def __init__(
        self,
        fetch: Callable[[], Coroutine[Any, Any, QueueSnapshot]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._fetch, self._loop = fetch, loop

    def collect(self) -> Iterator[Metric]:
        try:
            queue = asyncio.run_coroutine_threadsafe(self._fetch(), self._loop).result(10)
        except Exception:
            log.exception("reading the queue for metrics failed")
            return
        yield from queue_gauges(queue)


class MetricsServer:
    """``/metrics`` on a bind of its own (``HYPERLOCAL_METRICS_BIND``, ``hyperlocal worker
    --metrics-port``): the client's HTTP server, on a thread, answering anyone who can reach
    it. With ``fetch``, the database's numbers too, fetched on ``loop``."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server, self._thread = server, thread

    @classmethod
    def start(
        cls,
        collectors: list[Collector],
        bind: str,
        fetch: Callable[[], Coroutine[Any, Any, QueueSnapshot]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> MetricsServer:
        """Serve ``collectors`` (``PrometheusMetrics.collectors()``) on ``bind`` (host:port)."""
        host, _, port = bind.rpartition(":")
        if fetch is not None and loop is not None:
            collectors.append(_Fetched(fetch, loop))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Union(collectors))
        server, thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry)
        log.info("metrics served", extra={"bind": bind})
        return cls(server, thread)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
