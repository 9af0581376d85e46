"""The chat backends on their own, and the local ones' limits through the app."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable

import httpx
import pytest

from hyperlocal.engines.chat.base import ChatMessage, ChatRequest, OptionValue, TextPart
from hyperlocal.engines.chat.llamacpp import MAX_DEFAULT_THREADS, _load, _threads
from hyperlocal.engines.chat.preview import PreviewChatEngine
from hyperlocal.engines.chat.transformers import REQUIRED, _stop_at
from tests.chat.conftest import SMOLLM2, gguf
from tests.conftest import KeyFactory, auth

MISSING = [m for m in REQUIRED if importlib.util.find_spec(m) is None]


def _request(text: str, max_tokens: int = 64, stop: tuple[str, ...] = ()) -> ChatRequest:
    message = ChatMessage("user", (TextPart(text),))
    return ChatRequest("m", [message], temperature=0.0, max_tokens=max_tokens, stop=stop)


async def test_preview_streams_words_and_ends_honestly() -> None:
    deltas = [d async for d in PreviewChatEngine("no LLM here").stream(_request("ping"))]
    text = "".join(d.content for d in deltas)
    assert text.startswith("[preview] This is not a model's answer: no LLM here.")
    assert text.endswith('Your last message was: "ping"')
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == len(text.split(" "))
    short = [d async for d in PreviewChatEngine().stream(_request("ping", max_tokens=3))]
    assert short[-1].finish_reason == "length" and len(short) == 4


def test_stop_sequences_are_cut_and_their_start_held_back() -> None:
    assert _stop_at("Hello END there", ["END"]) == (6, True)
    assert _stop_at("Hello EN", ["END"]) == (6, False)  # "EN" may become "END"
    assert _stop_at("Hello", ["END"]) == (5, False)
    assert _stop_at("Hello", []) == (5, False)


async def test_llamacpp_honours_stop_sequences(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    gguf()
    key = await issue_key()
    count = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    body = {"model": SMOLLM2, "messages": count, "temperature": 0, "stop": ["5"], "max_tokens": 60}
    response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
    reply = response.json()["choices"][0]
    assert "5" not in reply["message"]["content"] and "4" in reply["message"]["content"]
    assert reply["finish_reason"] == "stop"


@pytest.mark.parametrize("options", [{}, {"n_threads": 1}])
def test_llamacpp_uses_every_cpu_it_may_unless_told(options: dict[str, OptionValue]) -> None:
    """llama.cpp alone would take half the CPUs: on 2 cores one thread, half the speed."""
    model = _load(gguf(), options)
    expected = options.get("n_threads") or min(MAX_DEFAULT_THREADS, len(os.sched_getaffinity(0)))
    assert model.llm.n_threads == expected


def test_llamacpp_default_threads_without_cpu_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no ``sched_getaffinity``: the machine's CPU count is used instead."""
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert _threads({}) == 3


async def test_llamacpp_refuses_a_conversation_longer_than_its_context(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    gguf()
    key = await issue_key(credits=100)
    long = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 2000}]
    response = await client.post(
        "/v1/chat/completions", json={"model": SMOLLM2, "messages": long}, headers=auth(key)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "E1004"
    assert response.json()["error"].endswith("tokens; this model's context holds 8192")
    account = await client.get("/v1/account", headers=auth(key))
    assert account.json()["credits"] == 100  # charged 28, refunded 28


@pytest.mark.skipif(not MISSING, reason="torch, transformers, gguf and accelerate are installed")
async def test_transformers_without_torch_is_unavailable(
    client: httpx.AsyncClient, issue_key: KeyFactory
) -> None:
    key = await issue_key()
    body = {"model": "test-transformers", "messages": [{"role": "user", "content": "Hi"}]}
    response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
    assert response.status_code == 503
    assert "not installed" in response.json()["error"]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING), reason=f"the transformers engine needs {', '.join(MISSING)} (not installed)"
)
async def test_transformers_serves_the_same_gguf(
    client: httpx.AsyncClient,
    issue_key: KeyFactory,
    record_property: Callable[[str, object], None],
) -> None:
    gguf()
    key = await issue_key()
    ask = [{"role": "user", "content": "Name one colour."}]
    body = {"model": "test-transformers", "messages": ask, "temperature": 0, "max_tokens": 12}
    started = time.monotonic()
    response = await client.post("/v1/chat/completions", json=body, headers=auth(key))
    loaded = time.monotonic() - started
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["prompt_tokens"] > 10 and reply["usage"]["completion_tokens"] > 0
    started = time.monotonic()
    body |= {"stop": ["colour"]}
    again = await client.post("/v1/chat/completions", json=body, headers=auth(key))
    assert "colour" not in again.json()["choices"][0]["message"]["content"]
    record_property("first_reply_with_load_s", round(loaded, 1))
    record_property("second_reply_s", round(time.monotonic() - started, 1))
