"""The families one process records into (``prometheus._families``): a scrape shows exactly
what the client's own ``Counter`` and ``Histogram`` show for the same records, byte for byte,
``_created`` stamps included; and records from several threads are all counted, the GIL's
kinds (no lock) and the free-threaded build's (``Locked``) alike."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as client

from hyperlocal.prometheus._families import (
    CounterFamily,
    HistogramFamily,
    LockedCounterFamily,
    LockedHistogramFamily,
)

FAST = (0.001, 0.01, 0.1, 1.0)
KINDS = [(CounterFamily, HistogramFamily), (LockedCounterFamily, LockedHistogramFamily)]
Kinds = tuple[type[CounterFamily], type[HistogramFamily]]
# On a bound, between bounds, past the last finite one, zero, below zero, and infinity.
VALUES = (0.001, 0.0005, 0.05, 1.0, 7.5, 0.0, -0.25, float("inf"), 0.01)


@pytest.fixture(params=[True, False], ids=["created", "no-created"])
def created(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways the client may be set about ``_created`` samples: its own flag, which
    ``PROMETHEUS_DISABLE_CREATED_SERIES`` and ``disable_created_metrics()`` set."""
    monkeypatch.setattr(client, "_use_created", request.param)
    return bool(request.param)


def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves at every read: each child's ``_created`` is told apart."""
    ticks = itertools.count(1_700_000_000)
    monkeypatch.setattr(time, "time", lambda: float(next(ticks)))


def _record(
    inc: Callable[[tuple[str, ...], float], None],
    observe: Callable[[tuple[str, ...], float], None],
) -> None:
    for amount, labels in ((1, ("b", "GET")), (2.5, ("a", "POST")), (3, ("b", "GET"))):
        inc(labels, amount)
    for i, value in enumerate(VALUES):
        observe(("m2" if i % 3 else "m1",), value)


def _client_side() -> bytes:
    registry = CollectorRegistry(auto_describe=True)
    requests = Counter("t_requests", "Requests.", ["route", "method"], registry=registry)
    Counter("t_refused", "Refused.", registry=registry)
    seconds = Histogram("t_seconds", "Seconds.", ["model"], registry=registry, buckets=FAST)
    Histogram("t_idle_seconds", "Idle.", registry=registry)
    _record(
        lambda labels, amount: requests.labels(*labels).inc(amount),
        lambda labels, value: seconds.labels(*labels).observe(value),
    )
    return generate_latest(registry)


def _families_side(kinds: Kinds) -> bytes:
    counter, histogram = kinds
    registry = CollectorRegistry(auto_describe=True)
    requests = counter("t_requests", "Requests.", ["route", "method"])
    refused = counter("t_refused", "Refused.", [])
    seconds = histogram("t_seconds", "Seconds.", ["model"], FAST)
    idle = histogram("t_idle_seconds", "Idle.", [], Histogram.DEFAULT_BUCKETS)
    for family in (requests, refused, seconds, idle):
        registry.register(family)
    _record(requests.inc, seconds.observe)
    return generate_latest(registry)


@pytest.mark.parametrize("kinds", KINDS, ids=["gil", "locked"])
def test_a_scrape_shows_what_the_clients_metrics_show(
    monkeypatch: pytest.MonkeyPatch, created: bool, kinds: Kinds
) -> None:
    _clock(monkeypatch)
    expected = _client_side()
    _clock(monkeypatch)
    assert _families_side(kinds).decode() == expected.decode()
    assert (b"t_requests_created{" in expected) is created  # both settings were shown


@pytest.fixture
def switching() -> Iterator[None]:
    """Threads switched as often as the interpreter allows: an update that a switch could
    split would lose counts here."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("kinds", KINDS, ids=["gil", "locked"])
@pytest.mark.usefixtures("switching")
def test_records_from_many_threads_are_all_counted(kinds: Kinds) -> None:
    counter = kinds[0]("t_hits", "Hits.", ["route"])
    histogram = kinds[1]("t_hit_seconds", "Seconds.", ["route"], FAST)
    threads, each = 4, 20_000

    def hammer() -> None:
        for _ in range(each):
            counter.inc(("/x",))
            histogram.observe(("/x",), 0.05)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    [hits] = counter.collect()
    [seconds] = histogram.collect()
    assert hits.samples[0].value == threads * each
    count = next(s for s in seconds.samples if s.name == "t_hit_seconds_count")
    assert count.value == threads * each


def test_a_family_refuses_what_the_client_refuses() -> None:
    counter = CounterFamily("t_hits", "Hits.", ["route"])
    with pytest.raises(ValueError, match="non-negative"):
        counter.inc(("/x",), -1)
    with pytest.raises(ValueError, match="label values"):
        counter.inc(("/x", "GET"))
    with pytest.raises(ValueError, match="sorted"):
        HistogramFamily("t_seconds", "Seconds.", [], (1.0, 0.5))
