"""Per key, at most ``sse_streams_per_key`` SSE streams (chat replies and job events) are open
at once, against a real uvicorn: one more answers 429 with the usual headers and charges
nothing, and a stream that ends gives its place back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from hyperlocal.app import create_app
from tests.chat.conftest import LiveServer, bearer, sse_events
from tests.conftest import SettingsFactory
from tests.support import serve_in_thread

ASK = [{"role": "user", "content": "Count for me."}]
ENDLESS = {"model": "test-endless", "messages": ASK, "stream": True}


@pytest.fixture
def capped(make_settings: SettingsFactory, chat_catalog: Path) -> Iterator[LiveServer]:
    settings = make_settings(catalog=chat_catalog, sse_streams_per_key=2)
    with serve_in_thread(create_app(settings)) as url:
        yield LiveServer(url, settings)


async def _open_chat(
    stack: AsyncExitStack, client: httpx.AsyncClient, headers: dict[str, str]
) -> str:
    """Open an endless streamed chat, held open until ``stack`` closes; its id."""
    reply = await stack.enter_async_context(
        client.stream("POST", "/v1/chat/completions", json=ENDLESS, headers=headers)
    )
    assert reply.status_code == 200
    events = sse_events(reply)
    # The reader must outlive this call: a reader collected as garbage closes the response.
    stack.push_async_callback(events.aclose)
    first = json.loads(await anext(events))
    return str(first["id"])


async def _refused(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object = None,
) -> httpx.Response:
    """The answer to one stream too many: a 429 (read whole), never a stream that opens."""
    async with client.stream(method, path, json=body, headers=headers) as response:
        assert response.status_code == 429, f"{method} {path}: {response.status_code}"
        await response.aread()
    return response


async def test_one_stream_past_the_cap_is_429_and_free(capped: LiveServer) -> None:
    key = await capped.key(credits=100)
    headers = bearer(key)
    async with httpx.AsyncClient(base_url=capped.url, timeout=30) as client:
        first_stack, second_stack = AsyncExitStack(), AsyncExitStack()
        async with first_stack, second_stack:
            await _open_chat(first_stack, client, headers)
            second = await _open_chat(second_stack, client, headers)
            balance = await capped.balance(key.info.id)

            refused = await _refused(client, "POST", "/v1/chat/completions", headers, ENDLESS)
            assert "stream" in refused.json()["error"].lower()
            assert int(refused.headers["Retry-After"]) >= 1
            assert "X-RateLimit-Limit" in refused.headers
            await _refused(client, "GET", f"/v1/jobs/{second}/events", headers)
            assert await capped.balance(key.info.id) == balance  # the refused chat cost nothing
            other = await capped.key(credits=100)  # the cap is per key
            await _open_chat(second_stack, client, bearer(other))

            await first_stack.aclose()  # one stream ends: its place is free again
            async with client.stream(
                "GET", f"/v1/jobs/{second}/events", headers=headers
            ) as watching:
                assert watching.status_code == 200
                await client.post(f"/v1/jobs/{second}/cancel", headers=headers)
                statuses = [json.loads(data) async for data in sse_events(watching)]
            assert statuses[-1]["status"] in ("failed", "canceled")
