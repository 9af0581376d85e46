"""Webhooks as Standard Webhooks, against a real receiver on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from tests.conftest import KeyFactory, SettingsFactory, auth
from tests.receiver import Receiver, running_receiver, wait_until
from tests.support import TEST_ENGINES

FAST_SCHEDULE = [0, 0.2, 0.2, 0.2]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
async def app(make_settings: SettingsFactory) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        webhook_schedule=FAST_SCHEDULE,
        webhook_jitter=0,
        webhook_poll_interval=0.05,
        webhook_timeout=1.0,
    )
    application = create_app(settings, engines=TEST_ENGINES)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


async def _submit(client: httpx.AsyncClient, key, hook: str, model: str = "test-slow-t2i") -> str:  # type: ignore[no-untyped-def]
    body = {"model": model, "prompt": "x", "seconds": 0.05, "webhook_url": hook}
    response = await client.post("/v1/images/generate", json=body, headers=auth(key))
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


async def test_completed_job_posts_signed_payload(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    key = await issue_key()
    job_id = await _submit(client, key, receiver.url("done"))
    await wait_until(lambda: receiver.on("done"))
    hit = receiver.on("done")[0]
    verified = Webhook(key.webhook_secret).verify(hit.body, hit.headers)
    job = (await client.get(f"/v1/jobs/{job_id}", headers=auth(key))).json()
    assert verified == {
        "status": "completed",
        "jobId": job_id,
        "outputUrl": job["outputUrl"],
        "type": "image",
        "model": "test-slow-t2i",
        "creditsUsed": 3,
    }
    assert hit.headers["webhook-id"] == "msg_" + job_id.removeprefix("job_")
    assert hit.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):  # a tampered body does not verify
        Webhook(key.webhook_secret).verify(hit.body.replace(b"completed", b"failed"), hit.headers)


async def test_failed_job_posts_failure_and_is_refunded(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    key = await issue_key(credits=50)
    job_id = await _submit(client, key, receiver.url("fail"), model="test-fail-t2i")
    await wait_until(lambda: receiver.on("fail"))
    payload = json.loads(receiver.on("fail")[0].body)
    assert payload == {
        "status": "failed",
        "jobId": job_id,
        "error": "the model ran out of memory",
        "type": "image",
        "model": "test-fail-t2i",
        "creditsUsed": 5,
    }
    assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 50


async def test_retries_on_5xx_and_3xx_with_same_id(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    receiver.script["flaky"] = [500, 302, 200]
    key = await issue_key()
    job_id = await _submit(client, key, receiver.url("flaky"))
    await wait_until(lambda: len(receiver.on("flaky")) == 3)
    ids = {r.headers["webhook-id"] for r in receiver.on("flaky")}
    assert len(ids) == 1
    for hit in receiver.on("flaky"):
        Webhook(key.webhook_secret).verify(hit.body, hit.headers)

    async def attempts() -> list[dict[str, object]]:
        response = await client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth(key))
        return list(response.json()["data"])

    await wait_until(lambda: True)
    for _ in range(100):
        if len(await attempts()) == 3:
            break
        import asyncio

        await asyncio.sleep(0.02)
    recorded = await attempts()
    assert [a["statusCode"] for a in recorded] == [500, 302, 200]
    assert [a["error"] for a in recorded] == ["HTTP 500", "HTTP 302", None]
    assert all(float(a["latencyMs"]) >= 0 for a in recorded)  # type: ignore[arg-type]


async def test_gone_stops_retries(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    import asyncio

    receiver.script["gone"] = [410]
    key = await issue_key()
    await _submit(client, key, receiver.url("gone"))
    await wait_until(lambda: receiver.on("gone"))
    await asyncio.sleep(1.0)  # well past the shrunken schedule
    assert len(receiver.on("gone")) == 1


async def test_schedule_runs_out_then_replay_delivers(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    import asyncio

    receiver.script["down"] = [503]
    key = await issue_key()
    job_id = await _submit(client, key, receiver.url("down"))
    await wait_until(lambda: len(receiver.on("down")) == len(FAST_SCHEDULE))
    await asyncio.sleep(0.6)
    assert len(receiver.on("down")) == len(FAST_SCHEDULE)  # gave up after the schedule
    receiver.script["down"] = [200]
    replay = await client.post(f"/v1/jobs/{job_id}/deliveries/replay", headers=auth(key))
    assert replay.status_code == 202 and replay.json()["scheduled"] == 1
    await wait_until(lambda: len(receiver.on("down")) == len(FAST_SCHEDULE) + 1)
    assert len({r.headers["webhook-id"] for r in receiver.on("down")}) == 1


async def test_refused_connection_is_retried_and_recorded(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    import asyncio

    from tests.support import free_port

    key = await issue_key()
    job_id = await _submit(client, key, f"http://127.0.0.1:{free_port()}/nobody")
    for _ in range(200):
        response = await client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth(key))
        if len(response.json()["data"]) == len(FAST_SCHEDULE):
            break
        await asyncio.sleep(0.05)
    attempts = response.json()["data"]
    assert len(attempts) == len(FAST_SCHEDULE)
    assert all(a["statusCode"] is None and "connection failed" in a["error"] for a in attempts)


async def test_slow_receiver_does_not_block_others(
    client: httpx.AsyncClient, issue_key: KeyFactory, receiver: Receiver
) -> None:
    receiver.delay["slow"] = 3.0
    key = await issue_key()
    await _submit(client, key, receiver.url("slow"))
    await wait_until(lambda: receiver.on("slow"))
    await _submit(client, key, receiver.url("fast"))
    await wait_until(lambda: receiver.on("fast"), timeout=1.5)


async def test_private_webhook_url_refused_at_submit(
    make_settings: SettingsFactory, receiver: Receiver
) -> None:
    app = create_app(make_settings(allow_private_urls=False), engines=TEST_ENGINES)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        key = await keys.create_key(app.state.services.db, KeySpec("k", 50, 100, 5))
        body = {"prompt": "x", "webhook_url": receiver.url("private")}
        response = await client.post("/v1/images/generate", json=body, headers=auth(key))
        assert response.status_code == 400
        assert response.json()["error"].startswith("webhook_url: ")
        assert (await client.get("/v1/account", headers=auth(key))).json()["credits"] == 50
    assert receiver.on("private") == []


@asynccontextmanager
async def _two_slots_per_receiver(
    make_settings: SettingsFactory, timeout: float
) -> AsyncIterator[tuple[httpx.AsyncClient, IssuedKey, Receiver]]:
    """The app with 4 delivery slots, 2 per receiver: a client, a key, and a second receiver."""
    settings = make_settings(
        webhook_schedule=FAST_SCHEDULE,
        webhook_jitter=0,
        webhook_poll_interval=0.05,
        webhook_timeout=timeout,
        webhook_concurrency=4,
        webhook_per_receiver=2,
    )
    app = create_app(settings, engines=TEST_ENGINES)
    with running_receiver() as other:
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            key = await keys.create_key(app.state.services.db, KeySpec("k", 1000, 10_000, 20))
            yield client, key, other


async def test_many_slow_deliveries_leave_room_for_other_receivers(
    make_settings: SettingsFactory, receiver: Receiver
) -> None:
    """More slow deliveries than there are slots: a second receiver still gets its event
    at once, because one receiver may hold only ``webhook_per_receiver`` slots."""
    receiver.delay["slow"] = 3.0
    async with _two_slots_per_receiver(make_settings, timeout=5.0) as (client, key, other):
        for _ in range(6):
            await _submit(client, key, receiver.url("slow"))
        await wait_until(lambda: len(receiver.on("slow")) >= 2)
        await _submit(client, key, other.url("fast"))
        await wait_until(lambda: other.on("fast"), timeout=1.5)
        assert len(receiver.on("slow")) == 2  # the slow receiver never got more slots


async def test_one_host_with_many_paths_holds_only_its_share_of_slots(
    make_settings: SettingsFactory, receiver: Receiver
) -> None:
    """The per-receiver cap is per host and port, not per URL path: one host answering slowly
    on six paths holds two slots, and another receiver still gets its event meanwhile."""
    slow_paths = [f"slow-{i}" for i in range(6)]
    receiver.held.update(slow_paths)
    async with _two_slots_per_receiver(make_settings, timeout=60.0) as (client, key, other):
        for path in slow_paths:
            await _submit(client, key, receiver.url(path))
        held = lambda: sum(len(receiver.on(p)) for p in slow_paths)  # noqa: E731
        await wait_until(lambda: held() >= 2)
        await _submit(client, key, other.url("fast"))
        await wait_until(lambda: other.on("fast"))
        assert held() == 2  # the slow host never got a third slot
        receiver.release.set()
        await wait_until(lambda: held() == len(slow_paths))
