"""The embedded rate limiter's moving window (``core.ratelimit.MemoryWindow``), on a clock the
test steps by hand: exactly ``limit`` requests per rolling window, refusals not counted, the
reset time when the next request will fit, and idle keys forgotten."""

from __future__ import annotations

import pytest

from hyperlocal.core.ratelimit import MemoryWindow, RateLimiter
from hyperlocal.errors import RateLimitedError


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_exactly_the_limit_fits_in_any_window() -> None:
    clock = Clock()
    window = MemoryWindow(window_s=100, clock=clock)
    results = []
    for _ in range(5):
        allowed, state = window.hit("k", 3)
        results.append((allowed, state.remaining))
        clock.now += 10
    assert results == [(True, 2), (True, 1), (True, 0), (False, 0), (False, 0)]
    # The first request (at t0) leaves the window at t0 + 100: the next fits then, not before.
    _, state = window.hit("k", 3)
    assert state.reset_at == 1_000_000.0 + 100
    clock.now = 1_000_000.0 + 100  # t0 leaves exactly now
    assert window.hit("k", 3)[0] is True
    assert window.hit("k", 3)[0] is False  # t0+10 and t0+20 are still in, plus the new one


def test_refused_requests_are_not_counted() -> None:
    clock = Clock()
    window = MemoryWindow(window_s=60, clock=clock)
    assert window.hit("k", 1)[0]
    for _ in range(100):
        clock.now += 0.5
        assert not window.hit("k", 1)[0]
    clock.now = 1_000_000.0 + 60  # only the one counted request had to leave
    assert window.hit("k", 1)[0]


def test_keys_are_counted_apart() -> None:
    window = MemoryWindow(window_s=60, clock=Clock())
    assert window.hit("a", 1)[0] and window.hit("b", 1)[0]
    assert not window.hit("a", 1)[0]


def test_a_lowered_limit_resets_when_enough_requests_have_left() -> None:
    clock = Clock()
    window = MemoryWindow(window_s=100, clock=clock)
    for i in range(4):
        clock.now = 1_000_000.0 + i
        window.hit("k", 10)
    allowed, state = window.hit("k", 2)  # four counted, two allowed: two must leave, then one
    assert not allowed and state.remaining == 0
    assert state.reset_at == 1_000_000.0 + 2 + 100


def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    window = MemoryWindow(window_s=100, clock=clock)
    window.hit("idle", 5)
    clock.now += 50
    window.hit("busy", 5)
    clock.now += 60  # "idle" has nothing left in the window; "busy" has its request
    window.sweep()
    assert len(window) == 1
    clock.now += MemoryWindow.SWEEP_EVERY_S  # the next hit sweeps by itself
    window.hit("other", 5)
    assert len(window) == 1


async def test_the_limiter_raises_with_retry_after() -> None:
    limiter = RateLimiter()
    states = [await limiter.hit("k", 2) for _ in range(2)]
    assert [s.remaining for s in states] == [1, 0]
    with pytest.raises(RateLimitedError) as caught:
        await limiter.hit("k", 2)
    assert caught.value.limit == 2 and 3590 <= caught.value.retry_after <= 3600
