"""A third-party OpenAI-compatible server on loopback, scripted by the ``model`` it is asked for.

It stands in for upstream behaviour we cannot provoke from a real server on demand: streams
that never end, failures before or after the first token, refusals and stalls.

- ``echo``: five words, then ``finish_reason: stop`` (and usage when asked for), ``[DONE]``.
- ``endless``: a word every 10 ms until the client goes away, which it records.
- ``fail-500`` / ``refuse-400``: an OpenAI-style error body with that status.
- ``fail-mid``: two words, then an ``error`` event.
- ``stall``: waits 5 s before answering.
- ``hang``: answers nothing until the client goes away, which it records (30 s at most).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import serve_in_thread

WORDS = ["one", " two", " three", " four", " five"]


@dataclass
class FakeUpstream:
    base: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    abandoned: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        model = body["model"]
        if model in ("fail-500", "refuse-400"):
            status = int(model[-3:])
            return JSONResponse({"error": {"message": f"scripted {status}"}}, status_code=status)
        if model == "stall":
            await asyncio.sleep(5)
        if model == "hang":
            await self._until_abandoned(request)
        if not body.get("stream"):
            return JSONResponse(_completion(model, "".join(WORDS)))
        return StreamingResponse(self._events(model, body), media_type="text/event-stream")

    async def _until_abandoned(self, request: Request) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            if await request.is_disconnected():
                self.abandoned.set()
                return
            await asyncio.sleep(0.01)

    async def _events(self, model: str, body: dict[str, Any]) -> AsyncIterator[str]:
        if model == "endless":
            async for event in self._endless(model):
                yield event
            return
        words = WORDS[:2] if model == "fail-mid" else WORDS
        for word in words:
            yield _event(_chunk(model, {"content": word}, None))
        if model == "fail-mid":
            yield _event({"error": {"message": "scripted failure mid-stream"}})
            return
        yield _event(_chunk(model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _event({**_chunk(model, {}, None), "choices": [], "usage": _USAGE})
        yield "data: [DONE]\n\n"

    async def _endless(self, model: str) -> AsyncIterator[str]:
        try:
            while True:
                yield _event(_chunk(model, {"content": " tick"}, None))
                await asyncio.sleep(0.01)
        finally:
            self.abandoned.set()


_USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def _chunk(model: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "up-1", "object": "chat.completion.chunk", "model": model, "choices": [choice]}


def _completion(model: str, text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {
        "id": "up-1",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": _USAGE,
    }


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


@contextmanager
def running_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    with serve_in_thread(app) as base:  # type: ignore[arg-type]
        fake.base = base
        yield fake
