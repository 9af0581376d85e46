"""Prometheus metrics: ``PrometheusMetrics`` records what ``core.metrics.Metrics`` reports, and
renders it with the numbers read at scrape time (queue depth, webhook backlog, device memory).

Each process makes its own ``CollectorRegistry`` (``open_metrics``), so that many apps in one
process (the tests) never collide, and nothing is registered in the client's global registry.

Process shapes:

- one process (``hyperlocal serve``): its registry, with the client's process, platform and
  garbage-collector collectors, on ``/metrics``; counters and histograms are kept in plain
  Python and rendered as the client's own would be (``_families``: issue 19, what a record
  costs a request);
- several processes writing one ``PROMETHEUS_MULTIPROC_DIR`` (uvicorn ``--workers``, or API
  processes started apart): the client's multiprocess mode, chosen when ``prometheus_client``
  is first imported, so the variable must be set before the process starts. Any process's
  scrape then shows them all (``MultiProcessCollector``); process collectors are left out, as
  the client's own documentation says;
- ``hyperlocal worker --metrics-port``: the worker's registry on a port of its own.

The queue's gauges come from the database, which every process shares, so every API process
shows the same values: aggregate them with ``max``, not ``sum``.

Label values are few by construction: a model id from the catalogue, a route's template, a
status. Never a key, a job id, or a path as sent.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST

from hyperlocal.prometheus._exposition import DeviceCollector, MetricsServer
from hyperlocal.prometheus._recorder import (
    PrometheusMetrics,
    multiprocess_dir,
    open_metrics,
    serve_bind,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "DeviceCollector",
    "MetricsServer",
    "PrometheusMetrics",
    "multiprocess_dir",
    "open_metrics",
    "serve_bind",
]
