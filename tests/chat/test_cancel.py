"""Cancelling a chat's job (spec §12), against a real uvicorn and a scripted upstream: the
stream ends at once with ``finish_reason: "cancelled"``, the backend stops, and the charge
stands (the tokens were delivered). A chat that has ended answers 409 and is not refunded."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tests.chat.conftest import LiveServer, bearer, sse_events
from tests.chat.fake_upstream import FakeUpstream

ASK = [{"role": "user", "content": "Count for me."}]
TICKS_BEFORE_CANCEL = 5
# Ticks already on their way when the cancel lands: the upstream sends one per 10 ms, so a
# cancel that stops the stream leaves few; one that does not lets hundreds through.
IN_FLIGHT = 60


async def test_cancel_ends_a_streamed_chat_at_once_and_keeps_the_charge(
    live: LiveServer, fake_upstream: FakeUpstream
) -> None:
    key = await live.key(credits=10)
    body = {"model": "test-endless", "messages": ASK, "stream": True}
    chunks: list[dict[str, object]] = []
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key)) as reply,
    ):
        assert reply.status_code == 200
        events = sse_events(reply)
        while len(chunks) < TICKS_BEFORE_CANCEL:
            chunks.append(json.loads(await anext(events)))
        chat_id = str(chunks[0]["id"])
        cancel = await client.post(f"/v1/jobs/{chat_id}/cancel", headers=bearer(key))
        rest = [data async for data in events]
    assert cancel.status_code == 200, cancel.text
    assert (cancel.json()["status"], cancel.json()["error"]) == ("failed", "canceled")
    assert rest[-1] == "[DONE]"
    last = json.loads(rest[-2])
    assert last["choices"][0]["finish_reason"] == "cancelled"
    assert len(rest) < IN_FLIGHT, f"{len(rest)} events came after the cancel"
    # The upstream's stream was closed.
    assert await asyncio.to_thread(fake_upstream.abandoned.wait, 30)

    job = await live.finished_job(chat_id)
    assert job.status == "canceled"
    assert job.result is not None and job.result["finish_reason"] == "cancelled"
    assert await live.ledger_kinds(key.info.id) == ["charge", "grant"]
    assert await live.balance(key.info.id) == 8


async def test_cancel_right_after_a_plain_reply_is_409_and_refunds_nothing(
    live: LiveServer,
) -> None:
    key = await live.key(credits=10)
    body = {"model": "test-echo", "messages": ASK, "stream": False}
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        reply = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert reply.status_code == 200
        chat_id = reply.json()["id"]
        cancel = await client.post(f"/v1/jobs/{chat_id}/cancel", headers=bearer(key))
    assert (cancel.status_code, cancel.json()) == (409, {"error": "Job already completed"})
    assert await live.ledger_kinds(key.info.id) == ["charge", "grant"]
    assert await live.balance(key.info.id) == 8


async def test_a_sweep_after_the_deadline_never_refunds_a_delivered_chat(app, issue_key) -> None:  # type: ignore[no-untyped-def]
    """The end of a chat is written behind the reply; a lease sweep that runs between the
    chat's deadline and that write must leave the chat alone (it was delivered)."""
    from hyperlocal.store import jobs as job_store
    from hyperlocal.store import ledger as ledger_store

    services = app.state.services
    services.chat_recorder.delay = 60.0  # a busy recorder: the end waits to be written
    key = await issue_key(credits=10)
    body = {"model": "test-quick", "messages": ASK, "stream": False}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        reply = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert reply.status_code == 200, reply.text
    deadline = reply.json()["created"] + 1 + 0.3  # test-quick's timeout_s; created is floored
    while time.time() <= deadline:  # the condition is the deadline itself
        await asyncio.sleep(deadline - time.time() + 0.01)

    assert await services.lifecycle.expire(3) == []
    async with services.db.read() as session:
        job = await job_store.get(session, reply.json()["id"])
        assert job is not None and job.status == "running"  # its end is still on its way
    await services.chat_recorder.flush()
    async with services.db.read() as session:
        job = await job_store.get(session, reply.json()["id"])
        kinds = [
            r.kind
            for r in await ledger_store.entries_for_key(
                session, key.info.id, limit=9, before_id=None
            )
        ]
    assert job is not None and job.status == "completed"
    assert sorted(kinds) == ["charge", "grant"]


async def test_no_cancel_hook_outlives_its_chat(app, issue_key) -> None:  # type: ignore[no-untyped-def]
    """Every chat listens for its cancel while it runs; none may keep listening after it ends,
    however it ends (a reply, a 402, a failed backend)."""
    services = app.state.services
    rich, poor = await issue_key(credits=100), await issue_key(credits=0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for key, model, status in [
            (rich, "test-echo", 200),
            (poor, "test-echo", 402),
            (rich, "test-fail-500", 500),
        ]:
            body = {"model": model, "messages": ASK, "stream": False}
            reply = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert reply.status_code == status, reply.text
    assert services.events._cancel_hooks == {}
