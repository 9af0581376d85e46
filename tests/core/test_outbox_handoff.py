"""A completed job's webhook row, handed to this process's dispatcher: written held (a claim
made in the job's own transaction), sent at once without a claim, and, where its hold has run
out, left to the claim so that it is still sent exactly once. Real database, real receiver."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hyperlocal.core import keys, webhooks
from hyperlocal.core.services import Services
from hyperlocal.inputs import AddressPolicy
from hyperlocal.queue.deliveries import WebhookDispatcher
from hyperlocal.store import jobs as job_store
from hyperlocal.store import webhooks as store
from hyperlocal.store.tables import WebhookDelivery
from tests.core.conftest import queued_job
from tests.receiver import Receiver, running_receiver
from tests.support import eventually

TIMEOUT_S = 60.0  # a hold of 65 s: longer than any wait below, so only the hand sends in time


@pytest.fixture
async def dispatcher(services: Services) -> AsyncIterator[WebhookDispatcher]:
    sender = WebhookDispatcher(
        services.db, policy=AddressPolicy(allow_private=True), timeout=TIMEOUT_S, poll_interval=0.05
    )
    assert sender.holds_for() is None  # not running: rows are written due, for a claim
    await sender.start()
    try:
        yield sender
    finally:
        await sender.aclose()
    assert sender.holds_for() is None


async def _written(svc: Services, url: str, held_until: float | None) -> WebhookDelivery:
    """A finished job's outbox row, as its terminal transaction writes it."""
    job_id, _ = await queued_job(svc, webhook_url=url)
    async with svc.db.transaction() as session:
        job = await job_store.get(session, job_id)
        assert job is not None
        ended = {"status": "completed", "output_url": "http://127.0.0.1/out.mp4"}
        delivery = await webhooks.record_terminal(
            session, job, time.time(), ended=ended, held_until=held_until
        )
    assert delivery is not None
    return delivery


async def _delivered(svc: Services, receiver: Receiver, job_id: str, path: str = "hook") -> None:
    async def done() -> bool:
        async with svc.db.read() as session:
            [row] = await store.deliveries_for_job(session, job_id)
        return row.status == "delivered"

    await eventually(done, 20, "the delivery to be recorded")
    async with svc.db.read() as session:
        attempts = await store.attempts_for_job(session, job_id)
    assert [a.status_code for a in attempts] == [200]  # once: never claimed as well
    assert len(receiver.on(path)) == 1


async def test_a_handed_row_is_held_from_claims_and_sent_at_once(
    services: Services, dispatcher: WebhookDispatcher
) -> None:
    hold = dispatcher.holds_for()
    assert hold is not None and hold > TIMEOUT_S
    with running_receiver() as receiver:
        delivery = await _written(services, receiver.url("hook"), time.time() + hold)
        async with services.db.transaction() as session:  # another dispatcher's claim
            assert await store.claim_due(session, time.time(), 10, 1.0) == []
        dispatcher.hand(delivery)
        await _delivered(services, receiver, delivery.job_id)
    body = receiver.on("hook")[0].body
    assert b'"status":"completed"' in body and b'"outputUrl":"http://127.0.0.1/out.mp4"' in body


async def test_a_handed_row_whose_hold_ran_out_is_claimed_and_sent_once(
    services: Services, dispatcher: WebhookDispatcher
) -> None:
    with running_receiver() as receiver:
        delivery = await _written(services, receiver.url("hook"), time.time())  # due now
        dispatcher.hand(delivery)
        await _delivered(services, receiver, delivery.job_id)


async def test_each_keys_deliveries_are_signed_with_that_keys_own_secret(
    services: Services, dispatcher: WebhookDispatcher
) -> None:
    """The dispatcher keeps the secrets it has read: after one key's delivery, another key's
    must still verify with its own key's secret, and not with the first's."""
    hold = dispatcher.holds_for()
    assert hold is not None
    secrets: list[str] = []
    with running_receiver() as receiver:
        for n in range(2):
            delivery = await _written(services, receiver.url(f"hook-{n}"), time.time() + hold)
            dispatcher.hand(delivery)
            await _delivered(services, receiver, delivery.job_id, f"hook-{n}")
            secrets.append(await keys.webhook_secret(services.db, delivery.key_id))
    assert secrets[0] != secrets[1]
    for n, secret in enumerate(secrets):
        [got] = receiver.on(f"hook-{n}")
        Webhook(secret).verify(got.body, got.headers)  # raises on a wrong signature
    [second] = receiver.on("hook-1")
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets[0]).verify(second.body, second.headers)
