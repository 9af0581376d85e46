"""The router's circuit breaker, in-flight caps and local lanes, on a stepped clock."""

from __future__ import annotations

import asyncio

import pytest

from hyperlocal.engines.providers.health import Breaker, InFlight, Lane
from hyperlocal.engines.providers.router import webhooks_wanted
from hyperlocal.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_lets_one_call_through_later() -> None:
    clock = Clock()
    breaker = Breaker(failures=3, cooldown=60.0, clock=clock)
    breaker.failed("fal")
    breaker.failed("fal")
    assert not breaker.is_open("fal")
    breaker.failed("fal")
    assert breaker.is_open("fal") and breaker.state("fal") == "open"
    assert not breaker.is_open("replicate")
    clock.now += 59.9
    assert breaker.is_open("fal")
    clock.now += 0.2
    assert not breaker.is_open("fal") and breaker.state("fal") == "half-open"
    breaker.failed("fal")  # the trial call failed: another full cool-down
    assert breaker.is_open("fal")
    clock.now += 61
    breaker.succeeded("fal")
    assert breaker.state("fal") == "closed"
    breaker.failed("fal")
    assert not breaker.is_open("fal")  # the count started over


def test_a_success_resets_the_count() -> None:
    breaker = Breaker(failures=2, cooldown=60.0, clock=Clock())
    breaker.failed("fal")
    breaker.succeeded("fal")
    breaker.failed("fal")
    assert not breaker.is_open("fal")


async def test_in_flight_cap_holds_jobs_beyond_it_until_a_place_frees() -> None:
    caps = InFlight({"fal": 2})
    inside = 0
    peak = 0
    release = asyncio.Event()
    entered = asyncio.Condition()

    async def job() -> None:
        nonlocal inside, peak
        async with caps.slot("fal"):
            inside += 1
            peak = max(peak, inside)
            async with entered:
                entered.notify_all()
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(job()) for _ in range(5)]
    async with entered:
        await entered.wait_for(lambda: inside == 2)
    await asyncio.sleep(0)  # the other three get every chance to enter, and must not
    assert inside == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_lane_expected_wait_counts_jobs_ahead_by_mean_or_elapsed_time() -> None:
    clock = Clock()
    lane = Lane(clock)
    assert lane.expected_wait() == 0.0
    async with lane.entered():
        clock.now += 4.0
    assert lane.mean_run_s == pytest.approx(4.0)
    assert lane.expected_wait() == 0.0
    async with lane.entered():
        assert lane.expected_wait() == pytest.approx(4.0)  # one ahead, the mean
        clock.now += 10.0
        assert lane.expected_wait() == pytest.approx(10.0)  # it has run longer than that
        async with lane.entered():
            assert lane.expected_wait() == pytest.approx(14.0)
    assert lane.expected_wait() == 0.0


@pytest.mark.parametrize(
    ("public_url", "setting", "on"),
    [
        ("http://127.0.0.1:8000", "auto", False),
        ("http://localhost:8000", "auto", False),
        ("http://10.1.2.3", "auto", False),
        ("http://[::1]:8000", "auto", False),
        ("https://203.0.113.9", "auto", False),  # documentation range: not public either
        ("https://8.8.8.8", "auto", True),
        ("https://media.example.com", "auto", True),
        ("http://127.0.0.1:8000", "on", True),
        ("https://media.example.com", "off", False),
    ],
)
def test_webhooks_are_asked_for_only_where_providers_can_reach_us(
    public_url: str, setting: str, on: bool
) -> None:
    settings = Settings(public_url=public_url, provider_webhooks=setting)
    assert webhooks_wanted(settings) is on
