"""The official ``openai`` package, unchanged, against ``/v1/chat/completions`` on a real
server: sync and async, streamed and not; first with the built-in SmolLM2, then with a model
that an operator's catalogue file relays to llama.cpp's server in another process."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI, OpenAI

from hyperlocal.app import create_app
from hyperlocal.settings import Settings
from tests.chat.conftest import SMOLLM2, LiveServer, gguf
from tests.support import serve_in_thread

MESSAGES = [
    {"role": "system", "content": "You are brief."},
    {"role": "user", "content": "Name one colour."},
]
OPTIONS = {"max_tokens": 12, "temperature": 0.0}


def _sync_calls(base: str, key: str, model: str) -> None:
    client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model=model, messages=MESSAGES, **OPTIONS)  # type: ignore[arg-type]
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert reply.model == model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            **OPTIONS,  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert {c.id for c in chunks} == {chunks[0].id}
    client.close()


async def _async_calls(base: str, key: str, model: str) -> None:
    async with AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as client:
        reply = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            **OPTIONS,  # type: ignore[arg-type]
        )
        assert reply.choices[0].message.content
        stream = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            **OPTIONS,  # type: ignore[arg-type]
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None for c in chunks)  # include_usage was not asked for


async def test_openai_package_with_builtin_smollm2(live: LiveServer) -> None:
    gguf()
    key = (await live.key()).key
    _sync_calls(live.url, key, SMOLLM2)
    await _async_calls(live.url, key, SMOLLM2)


@pytest.mark.slow
async def test_openai_package_through_an_upstream_llama_server(
    llama_upstream_settings: Settings,
) -> None:
    server = LiveServer("", llama_upstream_settings)
    key = (await server.key()).key
    with serve_in_thread(create_app(llama_upstream_settings)) as base:
        _sync_calls(base, key, "llama-upstream")
        await _async_calls(base, key, "llama-upstream")


async def test_openai_errors_surface_as_openai_exceptions(live: LiveServer) -> None:
    import openai

    poor = await live.key(credits=1)
    client = OpenAI(base_url=f"{live.url}/v1", api_key=poor.key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=SMOLLM2, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 402
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="nope", messages=MESSAGES)  # type: ignore[arg-type]
    assert refused.value.body == "Unsupported model: nope"  # the Hypereal error body, as is
    client.close()
