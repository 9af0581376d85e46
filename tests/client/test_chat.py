"""``chat.create`` against the server's OpenAI-compatible ``/v1/chat/completions``.

That route is built separately from the SDK: where the server under test lacks it, these
tests skip and say so, rather than test the SDK against a fake. The server is shared by the
module's tests, so the local model loads once (seconds, on a small CPU).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hyperlocal.client import AsyncClient, ChatChunk, Client, InvalidRequest
from hyperlocal.settings import Settings
from tests.client.conftest import IssuedClientKey, Live, running
from tests.client.test_cli import hyperlocal
from tests.support import TEST_CATALOG, free_port


@pytest.fixture(scope="module")
def chat_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = free_port()
    # make_settings' values; that fixture is per test, and this server is per module.
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("chat") / "data",
        public_url=f"http://127.0.0.1:{port}",
        allow_private_urls=True,
        bootstrap_keys=False,
        catalog=TEST_CATALOG,
        log_json=True,
    )
    with running(settings, port) as server:
        yield server


@pytest.fixture(scope="module")
def chat_model(chat_live: Live) -> str:
    key = chat_live.issue(name="chat-probe").key
    headers = {"Authorization": f"Bearer {key}"}
    probe = httpx.post(f"{chat_live.url}/v1/chat/completions", json={}, headers=headers, timeout=10)
    if probe.status_code in (404, 405):
        pytest.skip("this server has no POST /v1/chat/completions route (chat not deployed yet)")
    with Client(chat_live.url, key) as client:
        chat = [m for m in client.models.list() if m.category == "chat"]
    if not chat:
        pytest.skip("this server's catalogue has no chat model")
    return chat[0].id


@pytest.fixture
def live(chat_live: Live) -> Live:
    return chat_live


def test_completion(live: Live, user: IssuedClientKey, chat_model: str) -> None:
    with Client(live.url, user.key) as client:
        reply = client.chat.create(
            [{"role": "user", "content": "Say hi."}], model=chat_model, max_tokens=8
        )
    assert reply.id.startswith("chatcmpl-") and reply.model == chat_model
    assert reply.content == reply.choices[0].message.content and reply.content
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.credits_used >= 2


def test_stream_yields_chunks_then_ends(live: Live, user: IssuedClientKey, chat_model: str) -> None:
    with Client(live.url, user.key) as client:
        with client.chat.create(
            "Count to three.", model=chat_model, stream=True, max_tokens=8
        ) as stream:
            chunks = list(stream)
        assert all(isinstance(c, ChatChunk) for c in chunks)
        assert "".join(c.content for c in chunks).strip()
        assert chunks[-1].finish_reason in ("stop", "length")
        assert [c.finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
        with pytest.raises(InvalidRequest, match="Model is required"):
            client.chat.create("hi", stream=True)


async def test_async_stream(live: Live, user: IssuedClientKey, chat_model: str) -> None:
    async with AsyncClient(live.url, user.key) as client:
        stream = await client.chat.create("Hello", model=chat_model, stream=True, max_tokens=6)
        text = "".join([chunk.content async for chunk in stream])
        reply = await client.chat.create("Hello", model=chat_model, max_tokens=6)
    assert text.strip() and reply.content


def test_cli_answers_once_and_chats(
    chat_live: Live, user: IssuedClientKey, chat_model: str, tmp_path: Path
) -> None:
    once = hyperlocal(
        tmp_path, "chat", "Say hi.", "--max-tokens", "6", url=chat_live.url, key=user.key
    )
    assert once.returncode == 0, once.stderr
    assert once.stdout.strip()
    args = ("chat", "Say hi.", "--max-tokens", "6", "--json", "--model", chat_model)
    as_json = hyperlocal(tmp_path, *args, url=chat_live.url, key=user.key)
    assert json.loads(as_json.stdout)["choices"][0]["message"]["role"] == "assistant"
    session = hyperlocal(
        tmp_path,
        *("chat", "--max-tokens", "6"),
        url=chat_live.url,
        key=user.key,
        stdin="Hello\n\nAnd again\n/exit\n",
    )
    assert session.returncode == 0, session.stderr
    assert session.stdout.count("> ") == 4  # a prompt per line read: 2 questions, 1 blank, /exit
