"""Typed errors, as the live server answers them (spec §2)."""

from __future__ import annotations

import time

import pytest

from hyperlocal.client import (
    AuthenticationError,
    Client,
    GenerationFailed,
    HyperlocalError,
    InsufficientCredits,
    InvalidRequest,
    NetworkError,
    NotFound,
    RateLimited,
)
from tests.client.conftest import IssuedClientKey, Live
from tests.support import free_port


def test_401_bad_key(live: Live) -> None:
    with Client(live.url, "ck_not_a_key") as client, pytest.raises(AuthenticationError) as err:
        client.account.get()
    assert err.value.status == 401
    assert err.value.message.startswith("Unauthorized")
    assert err.value.body == {"error": err.value.message}
    assert isinstance(err.value, HyperlocalError)


def test_402_carries_required_and_available(live: Live) -> None:
    poor = live.issue(credits=3)
    with Client(live.url, poor.key) as client, pytest.raises(InsufficientCredits) as err:
        client.images.generate("x")
    assert (err.value.status, err.value.required, err.value.available) == (402, 4, 3)
    assert err.value.message == "Insufficient credits"


def test_400_unsupported_model_and_bad_input(live: Live, user: IssuedClientKey) -> None:
    with Client(live.url, user.key) as client:
        with pytest.raises(InvalidRequest, match="Unsupported model: nope") as err:
            client.images.generate("x", model="nope")
        assert err.value.status == 400 and err.value.code is None
        with pytest.raises(InvalidRequest) as err:
            client.images.generate("x", aspect_ratio="7:1")
        assert err.value.code == "E1004" and "aspect_ratio" in err.value.message
        with pytest.raises(InvalidRequest, match="Model is required"):
            client.videos.generate("", prompt="x")
        assert client.account.get().credits == 1000  # nothing was charged


def test_404_job_not_found(live: Live, user: IssuedClientKey) -> None:
    with Client(live.url, user.key) as client:
        for call in (client.jobs.get, client.jobs.cancel, client.jobs.wait):
            with pytest.raises(NotFound, match="Job not found") as err:
                call("job_nope")
            assert err.value.status == 404


def test_429_retry_after_and_limit(live: Live) -> None:
    limited = live.issue(rate_limit=2)
    with Client(live.url, limited.key) as client:
        client.account.get()
        client.account.get()
        started = time.monotonic()
        with pytest.raises(RateLimited) as err:
            client.account.get()
    # Retry-After is most of the rolling hour: far past max_retry_after, so no waiting.
    assert time.monotonic() - started < 1.0
    assert err.value.status == 429 and err.value.limit == 2
    assert err.value.retry_after is not None and 60 < err.value.retry_after <= 3600
    assert err.value.body["window"] == "1h"


def test_generation_failures_carry_their_code(live: Live, user: IssuedClientKey) -> None:
    with Client(live.url, user.key) as client:
        with pytest.raises(GenerationFailed) as err:
            client.images.generate("x", model="test-fail-t2i")
        assert (err.value.status, err.value.code) == (500, "E1001")
        assert "out of memory" in err.value.message
        with pytest.raises(GenerationFailed) as err:
            client.images.generate("x", model="test-crash-t2i")
        assert err.value.code == "E9999"
        # Failed generations are refunded, and were not retried into a second charge.
        assert client.account.get().credits == 1000


def test_a_refused_connection_is_a_network_error() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "ck_x", max_retries=1)
    with client, pytest.raises(NetworkError) as err:
        client.account.get()
    assert err.value.status is None and err.value.request_sent is False
    assert err.value.__cause__ is not None
