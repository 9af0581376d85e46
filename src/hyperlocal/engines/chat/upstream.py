"""``openai-upstream``: relays a chat to any OpenAI-compatible server.

An operator adds a model with their catalogue file (``HYPERLOCAL_CATALOG``)::

    [[model]]
    id = "my-llama"
    category = "chat"
    name = "Llama on the GPU box"
    engine = "openai-upstream"
    price = { kind = "per_message", credits = 2, chars_per_credit = 2000 }
    engine_options = { base_url = "http://10.0.0.5:8080/v1", upstream_model = "llama-3.1-8b",
                       api_key_env = "GPU_BOX_KEY", timeout_s = 120 }

``base_url`` is required (the part before ``/chat/completions``); ``upstream_model`` defaults to
the catalogue id; ``api_key_env`` names the environment variable holding the upstream's key
(the key itself never sits in the catalogue); ``timeout_s`` bounds connecting and each wait
for the next chunk (default 60).

A streamed request is relayed chunk by chunk as each arrives, never buffered; a request with
``stream: false`` makes one non-streaming upstream call. The client is ``http1``'s, made for
this hot path: it costs about 40% of aiohttp's CPU per request, a fraction of httpx's.
Messages, content parts included, go on unchanged. Upstream failures become our errors: a
timeout ``GenerationTimeoutError``, a 400 or 422 ``InputError``, anything else (unreachable,
5xx, bad credentials) ``GenerationError``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from functools import partial
from typing import Any

from yarl import URL

from hyperlocal.engines.base import EngineContext
from hyperlocal.engines.chat.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatUsage,
    ImagePart,
    OptionValue,
)
from hyperlocal.engines.chat.http1 import Client, HTTPClientError, Response, StaleConnectionError
from hyperlocal.errors import GenerationError, GenerationTimeoutError, InputError

__all__ = ["UpstreamChatEngine", "create"]

DEFAULT_TIMEOUT_S = 60.0
_CLIENT_ERRORS = (400, 422)
# A pooled keep-alive connection can be closed by the upstream (its idle timeout) just as it is
# reused: the request then fails before any answer, without having reached a model. It is sent
# again, up to this many times (each stale connection fails at once; a fresh one follows).
_STALE_RETRIES = 2


class _Upstream:
    """One catalogue entry's upstream, read from its ``engine_options``."""

    def __init__(self, model: str, options: Mapping[str, OptionValue]) -> None:
        base_url = options.get("base_url")
        if not base_url:
            raise GenerationError(f"Model '{model}' has no engine_options.base_url")
        self.options = options
        self.url = URL(str(base_url).rstrip("/") + "/chat/completions")
        self.model = str(options.get("upstream_model") or model)
        self.timeout = float(options.get("timeout_s", DEFAULT_TIMEOUT_S))
        key_env = options.get("api_key_env")
        key = os.environ.get(str(key_env), "") if key_env else ""
        if any(c in key for c in "\r\n"):
            raise GenerationError(f"Model '{model}': the upstream key holds a line break")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    return [_part(p) for p in message.content]


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        image: dict[str, str] = {"url": part.url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    return {"type": "text", "text": part.text}


def _body(upstream: _Upstream, request: ChatRequest) -> dict[str, Any]:
    messages = []
    for m in request.messages:
        message: dict[str, Any] = {"role": m.role, "content": _content(m)}
        if m.name:
            message["name"] = m.name
        messages.append(message)
    body: dict[str, Any] = {
        "model": upstream.model,
        "messages": messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": request.stream,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _usage(data: Any) -> ChatUsage | None:
    if not isinstance(data, dict):
        return None
    return ChatUsage(data.get("prompt_tokens"), int(data.get("completion_tokens") or 0))


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class UpstreamChatEngine:
    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._client: Client | None = None
        self._upstreams: dict[str, _Upstream] = {}

    def _upstream(self, request: ChatRequest) -> _Upstream:
        """The model's upstream, read from its options once (a catalogue's entries live as
        long as the process; a reloaded one brings new options, read again)."""
        upstream = self._upstreams.get(request.model)
        if upstream is None or upstream.options is not request.options:
            upstream = self._upstreams[request.model] = _Upstream(request.model, request.options)
        return upstream

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        upstream = self._upstream(request)
        try:
            if request.stream:
                async with contextlib.aclosing(self._relay(upstream, request)) as deltas:
                    async for delta in deltas:
                        yield delta
            else:
                yield await self._whole(upstream, request)
        except TimeoutError as exc:
            raise GenerationTimeoutError(
                f"The upstream did not answer within {upstream.timeout:g} s"
            ) from exc
        except HTTPClientError as exc:
            raise GenerationError(f"The upstream failed: {exc}") from exc

    async def _send(self, upstream: _Upstream, request: ChatRequest) -> Response:
        """The upstream's response (its status and headers; the body unread). The engine
        calls ``request.started`` as the request is written."""
        if self._client is None:
            self._client = Client(self._limit)
        body = json.dumps(_body(upstream, request), separators=(",", ":")).encode()
        post = partial(
            self._client.post,
            upstream.url,
            body,
            upstream.headers,
            timeout=upstream.timeout,
            sent=request.started,
        )
        for _ in range(_STALE_RETRIES):
            try:
                return await post()
            except StaleConnectionError:
                continue
        return await post(reuse=False)  # the last try, on a fresh connection

    async def _whole(self, upstream: _Upstream, request: ChatRequest) -> ChatDelta:
        async with await self._send(upstream, request) as response:
            body = await response.read()
        _check(response.status, body)
        data = json.loads(body)
        choice = (data.get("choices") or [{}])[0]
        content = (choice.get("message") or {}).get("content") or ""
        finish = choice.get("finish_reason") or "stop"
        return ChatDelta(content, finish, _usage(data.get("usage")))

    async def _relay(
        self, upstream: _Upstream, request: ChatRequest
    ) -> AsyncGenerator[ChatDelta, None]:
        tally = _Tally()
        async with await self._send(upstream, request) as response:
            if response.status >= 300:
                _check(response.status, await response.read())
            async for read in _sse_reads(response):
                for delta in tally.deltas(read):
                    yield delta
            # Read past [DONE] to the body's end: a response left unfinished closes its
            # connection instead of returning it to the pool, and the next request would pay
            # for a new one.
            await response.read()
        yield ChatDelta(finish_reason=tally.finish or "stop", usage=tally.usage)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class _Read:
    """The complete lines of one read from the body. Iterating parses their ``data:``
    payloads one by one, up to ``[DONE]`` (then ``done``) or an ``error`` payload (raised)."""

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines
        self.done = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for raw in self._lines:
            line = raw.rstrip(b"\r").decode("utf-8")
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                self.done = True
                return
            data: dict[str, Any] = json.loads(payload)
            if data.get("error"):
                raise GenerationError(f"The upstream failed: {_error_text(payload.encode())}")
            yield data


async def _sse_reads(response: Response) -> AsyncIterator[_Read]:
    """The body's complete lines, one ``_Read`` per read that completed them (of any length),
    until the one that holds ``[DONE]``; an unterminated last line comes last, alone."""
    pending = b""
    async for chunk in response.chunks():
        *lines, pending = (pending + chunk).split(b"\n")
        read = _Read(lines)
        yield read
        if read.done:
            return
    if pending:
        yield _Read([pending])


class _Tally:
    """A streamed reply's finish reason and latest usage, as its reads go by."""

    def __init__(self) -> None:
        self.finish: str | None = None
        self.usage: ChatUsage | None = None

    def deltas(self, read: _Read) -> Iterator[ChatDelta]:
        """The read's content deltas, each marked ``more`` when the next one of the same read
        is already parsed: one delta of look-ahead, so the first leaves before the rest of a
        long read is parsed. An error payload raises after the deltas before it."""
        held: ChatDelta | None = None
        try:
            for data in read:
                delta = _delta(data)
                self.usage = delta.usage or self.usage
                self.finish = delta.finish_reason or self.finish
                if delta.content:
                    if held is not None:
                        yield ChatDelta(held.content, usage=held.usage, more=True)
                    held = ChatDelta(delta.content, usage=self.usage)
        except GenerationError:
            if held is not None:
                yield held
            raise
        if held is not None:
            yield held


def _delta(data: Mapping[str, Any]) -> ChatDelta:
    choices = data.get("choices") or [{}]
    choice = choices[0]
    content = (choice.get("delta") or {}).get("content") or ""
    return ChatDelta(content, choice.get("finish_reason"), _usage(data.get("usage")))


def _check(status: int, body: bytes) -> None:
    if status < 300:
        return
    message = _error_text(body)
    if status in _CLIENT_ERRORS:
        raise InputError("messages", f"the upstream model refused the request: {message}")
    raise GenerationError(f"The upstream answered {status}: {message}")


def create(_context: EngineContext) -> UpstreamChatEngine:
    return UpstreamChatEngine()
