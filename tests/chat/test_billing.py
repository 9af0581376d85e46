"""What a chat costs, and when it is given back: charged at submit by the catalogue's
``per_message`` rule, refunded in full when the backend fails before the first token."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.chat.conftest import LiveServer, bearer, sse_events

ASK = [{"role": "user", "content": "Say hello."}]


@pytest.mark.parametrize("stream", [False, True])
async def test_402_when_the_key_cannot_pay(live: LiveServer, stream: bool) -> None:
    poor = await live.key(credits=1)
    body = {"model": "test-echo", "messages": ASK, "stream": stream}
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=bearer(poor))
    assert response.status_code == 402
    assert response.json() == {"error": "Insufficient credits", "required": 2, "available": 1}
    assert await live.balance(poor.info.id) == 1
    assert await live.ledger_kinds(poor.info.id) == ["grant"]


@pytest.mark.parametrize(
    ("chars", "credits"), [(10, 2), (2000, 2), (2001, 3), (4500, 4), (10_000, 6)]
)
async def test_price_rises_with_the_conversation(
    live: LiveServer, chars: int, credits: int
) -> None:
    key = await live.key(credits=100)
    half = chars // 2
    messages = [
        {"role": "system", "content": "s" * half},
        {"role": "user", "content": [{"type": "text", "text": "u" * (chars - half)}]},
    ]
    body = {"model": "test-echo", "messages": messages}
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status_code == 200
    assert response.json()["creditsUsed"] == credits
    assert await live.balance(key.info.id) == 100 - credits


FAILURES = [
    ("test-fail-500", 500, "E1001", "The upstream answered 500: scripted 500"),
    ("test-down", 500, "E1001", None),
    ("test-stall", 500, "E1002", "The upstream did not answer within 0.5 s"),
    ("test-refuse-400", 400, "E1004", None),
    ("test-broken-gguf", 500, "E1001", None),
    ("test-missing-gguf", 500, "E1001", None),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", FAILURES, ids=[f[0] for f in FAILURES])
async def test_refund_when_the_backend_fails_before_the_first_token(
    live: LiveServer, failure: tuple[str, int, str, str | None], stream: bool
) -> None:
    model, status, code, message = failure
    key = await live.key(credits=10)
    body = {"model": model, "messages": ASK, "stream": stream}
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code
    if message:
        assert response.json()["error"] == message
    assert await live.balance(key.info.id) == 10
    assert await live.ledger_kinds(key.info.id) == ["charge", "grant", "refund"]


async def test_a_failure_after_the_first_token_ends_the_stream_and_keeps_the_charge(
    live: LiveServer,
) -> None:
    key = await live.key(credits=10)
    body = {"model": "test-fail-mid", "messages": ASK, "stream": True}
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
        client.stream("POST", "/v1/chat", json=body, headers=bearer(key)) as response,
    ):
        assert response.status_code == 200
        events = [data async for data in sse_events(response)]
    chunks = [json.loads(e) for e in events]
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:2]] == ["one", " two"]
    assert chunks[2]["code"] == "E1001" and "mid-stream" in chunks[2]["error"]
    assert len(chunks) == 3  # no [DONE]: the reply did not end normally
    job = await live.finished_job(chunks[0]["id"])
    assert job.status == "completed"
    assert job.result is not None and job.result["finish_reason"] == "error"
    assert job.result["usage"]["completion_tokens"] == 2
    assert await live.balance(key.info.id) == 8


async def test_chat_cut_off_by_a_crash_is_failed_and_refunded(app, issue_key) -> None:  # type: ignore[no-untyped-def]
    """A chat row left running by a dead process is recovered by the lease sweep."""
    import time

    from hyperlocal.core import keys as key_core
    from hyperlocal.store import jobs as job_store
    from hyperlocal.store.tables import Job

    key = await issue_key(credits=10)
    services = app.state.services
    async with services.db.transaction() as session:
        from hyperlocal.core import ledger

        await ledger.charge(session, key.info.id, 2, "chatcmpl-crashed")
        session.add(
            Job(
                id="chatcmpl-crashed",
                key_id=key.info.id,
                model="smollm2-135m",
                category="chat",
                status="running",
                params={},
                inputs={},
                credits=2,
                timeout_s=300,
                progress=0.0,
                attempts=1,
                created_at=time.time() - 400,
                started_at=time.time() - 400,
                lease_owner="chat",
                lease_expires_at=time.time() - 100,
            )
        )
    runner = services.queue._runner  # the embedded queue's runner does the sweep
    assert await runner.expire_leases() == []
    async with services.db.read() as session:
        job = await job_store.get(session, "chatcmpl-crashed")
    assert job is not None and job.status == "failed"
    assert (await key_core.get_key(services.db, key.info.id)).credits == 10
