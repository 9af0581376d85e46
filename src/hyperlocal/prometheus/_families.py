"""The metric families ``PrometheusMetrics`` records into, by a tuple of label values: kept
in plain Python in one process, in the client's own objects across several.

One process (no ``PROMETHEUS_MULTIPROC_DIR``): ``CounterFamily`` and ``HistogramFamily`` add
to plain numbers, and are collectors that render them when scraped, sample for sample as the
client's ``Counter`` and ``Histogram`` would (names, labels, cumulative buckets, ``_created``).
A relayed chat records about ten facts, and the client's objects cost seven Python calls, two
locks and a scan of the buckets for each: 5.6% of the chat's instructions (issue 19). Here a
fact costs one call and, for a histogram, a bisect (and why no lock: ``_Family``).

Several processes: ``ClientCounter`` and ``ClientHistogram`` record into the client's own
objects, which write the files that ``MultiProcessCollector`` reads.
"""

from __future__ import annotations

import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Generic, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import metrics as client
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric, Sample
from prometheus_client.utils import INF, floatToGoString

__all__ = [
    "ClientCounter",
    "ClientHistogram",
    "CounterFamily",
    "Counts",
    "HistogramFamily",
    "Labels",
    "LockedCounterFamily",
    "LockedHistogramFamily",
    "Observes",
    "counter_family",
    "histogram_family",
]

Labels = tuple[str, ...]
M = TypeVar("M", Counter, Histogram, Gauge)
C = TypeVar("C", Counter, Gauge)


class Counts(Protocol):
    def inc(self, labels: Labels, amount: float = 1.0) -> None: ...


class Observes(Protocol):
    def observe(self, labels: Labels, value: float) -> None: ...


# Whether this interpreter has a GIL: always before 3.13, and there unless free-threaded.
_GIL = bool(getattr(sys, "_is_gil_enabled", lambda: True)())


def _created_series() -> bool:
    """Whether the client shows ``_created`` samples (``PROMETHEUS_DISABLE_CREATED_SERIES``,
    ``disable_created_metrics()``): its own flag, read at each scrape as its metrics do."""
    return bool(getattr(client, "_use_created", True))


class _Family:
    """A family's name, help and label names, and its children by label values, each made at
    its first record (so stamped ``_created`` then, as the client's are); an unlabelled family
    has its one child from the start, and shows 0 before anything is recorded.

    Records come from the event loop and from other threads (engines load on worker threads,
    ``MetricsServer`` scrapes on its own). An update is one ``+=`` on an item of a list of
    floats (a histogram's: two in a row), which runs no Python code, and CPython (3.10 on)
    switches threads only at calls, function entries and backward jumps: with the GIL, no
    other thread runs between an update's read and its write, and no count is lost (the tests
    hammer it from several threads, switching every microsecond). A lock would add a third to
    a half to a record's cost, and a request makes about ten (issue 19). Without a GIL (a
    free-threaded build), ``counter_family`` and ``histogram_family`` give the ``Locked``
    kinds, which hold the lock for each update. New children, and a scrape's copy of them,
    always hold it."""

    def __init__(
        self, kind: str, name: str, doc: str, labelnames: Sequence[str], width: int
    ) -> None:
        self.kind, self.name, self.doc, self.labelnames = kind, name, doc, tuple(labelnames)
        self._width = width  # a child: ``width`` numbers, then its creation time
        self._lock = threading.RLock()  # a locked update may make its child
        self._children: dict[Labels, list[float]] = {}
        if not self.labelnames:
            self._child(())

    def _child(self, labels: Labels) -> list[float]:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values, not {labels!r}")
        with self._lock:
            return self._children.setdefault(labels, [0.0] * self._width + [time.time()])

    def _snapshot(self) -> list[tuple[Labels, list[float]]]:
        with self._lock:  # each child copied whole: a histogram's count agrees with its sum
            return [(labels, child.copy()) for labels, child in self._children.items()]

    def describe(self) -> list[Metric]:
        """The registry's check for names taken twice, without a scrape."""
        return [Metric(self.name, self.doc, self.kind)]


class CounterFamily(_Family):
    """A counter: each child is ``[value, created]``."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str]) -> None:
        super().__init__("counter", name, doc, labelnames, 1)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        try:
            child = self._children[labels]
        except KeyError:
            child = self._child(labels)
        child[0] += amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        created = _created_series()
        for labels, (value, stamp) in self._snapshot():
            family.add_metric(labels, value, stamp if created else None)
        yield family


class HistogramFamily(_Family):
    """A histogram: each child is its buckets' own counts (not cumulative), then its sum and
    its creation time. ``bisect_left`` finds the first bucket whose bound is at least the
    value: the client's ``value <= bound``, without a loop in Python."""

    def __init__(
        self, name: str, doc: str, labelnames: Sequence[str], buckets: Iterable[float]
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        self.bounds = (*bounds, INF) if bounds[-1] != INF else tuple(bounds)
        self._le: list[str] = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        super().__init__("histogram", name, doc, labelnames, len(self.bounds) + 1)

    def observe(self, labels: Labels, value: float) -> None:
        try:
            child = self._children[labels]
        except KeyError:
            child = self._child(labels)
        bucket = bisect_left(self.bounds, value)
        child[bucket] += 1.0
        child[-2] += value  # the sum, before the creation time

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        created, n = _created_series(), len(self.bounds)
        for labels, child in self._snapshot():
            buckets = list(zip(self._le, accumulate(child[:n]), strict=True))
            family.add_metric(labels, buckets, child[n])
            if created:
                named = dict(zip(self.labelnames, labels, strict=True))
                family.samples.append(Sample(f"{self.name}_created", named, child[n + 1]))
        yield family


class LockedCounterFamily(CounterFamily):
    """A counter for an interpreter without a GIL: each update under the family's lock."""

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        with self._lock:
            super().inc(labels, amount)


class LockedHistogramFamily(HistogramFamily):
    """A histogram for an interpreter without a GIL: each update under the family's lock."""

    def observe(self, labels: Labels, value: float) -> None:
        with self._lock:
            super().observe(labels, value)


def counter_family(name: str, doc: str, labelnames: Sequence[str]) -> CounterFamily:
    kind = CounterFamily if _GIL else LockedCounterFamily
    return kind(name, doc, labelnames)


def histogram_family(
    name: str, doc: str, labelnames: Sequence[str], buckets: Iterable[float]
) -> HistogramFamily:
    kind = HistogramFamily if _GIL else LockedHistogramFamily
    return kind(name, doc, labelnames, buckets)


class _ClientChildren(Generic[M]):
    """A client metric's children, looked up once per label values: ``labels()`` itself
    validates and formats its arguments under a lock on every call."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._cache: dict[Labels, M] = {}

    def _child(self, labels: Labels) -> M:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels) if labels else self._metric
        return child


class ClientCounter(_ClientChildren[C]):
    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self._child(labels).inc(amount)


class ClientHistogram(_ClientChildren[Histogram]):
    def observe(self, labels: Labels, value: float) -> None:
        self._child(labels).observe(value)
