"""Chat (spec §9): the legacy ``POST /chat`` and the OpenAI-compatible ``POST /chat/completions``.

A streamed reply is sent only once its first token exists: everything that can go wrong before
it (402, a bad field, a backend that fails to start, which is refunded) is an ordinary JSON
error, and the response's first bytes carry the rate-limit headers. A client that leaves
before its response begins (a whole reply, or a first token, still being generated) stops the
work (``api.disconnect``); one that leaves mid-stream stops it too (``ChatEventStream``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from fastapi import APIRouter, Response
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hyperlocal.api.chat_schemas import (
    ChatCompletionBody,
    ChatCompletionResponse,
    ChunkWriter,
    LegacyChatBody,
    LegacyChatResponse,
    reply_json,
)
from hyperlocal.api.deps import Call, CurrentCall
from hyperlocal.api.disconnect import unless_gone
from hyperlocal.api.fast_route import FastRoute
from hyperlocal.api.metrics import BACKEND_S
from hyperlocal.core import chat
from hyperlocal.core.chat import ChatReply, ChatStream, ChatSubmit
from hyperlocal.core.streams import StreamSlot
from hyperlocal.errors import ClientGoneError, HyperlocalError, ModelRequiredError

# The relay's latency is the product here: these routes skip FastAPI's request handling.
router = APIRouter(tags=["chat"], route_class=FastRoute)

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE when streaming"}
}


@router.post("/chat", response_model=LegacyChatResponse, responses=_STREAM_DOC)
async def legacy_chat(body: LegacyChatBody, call: CurrentCall) -> Response:
    submit = body.submit(call.key)
    receive = call.request.receive
    if not submit.stream:
        return _reply(call, await unless_gone(receive, chat.complete_chat(call.svc, submit)))
    stream, slot = await _open_stream(call, submit)
    writer = _writer(stream, legacy=True, usage=False)
    return ChatEventStream(stream, writer, call.rate_headers, slot)


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses=_STREAM_DOC)
async def chat_completions(body: ChatCompletionBody, call: CurrentCall) -> Response:
    if not body.model:
        raise ModelRequiredError
    submit = body.submit(call.key)
    receive = call.request.receive
    if not submit.stream:
        return _reply(call, await unless_gone(receive, chat.complete_chat(call.svc, submit)))
    stream, slot = await _open_stream(call, submit)
    writer = _writer(stream, legacy=False, usage=body.include_usage)
    return ChatEventStream(stream, writer, call.rate_headers, slot)


async def _open_stream(call: Call, submit: ChatSubmit) -> tuple[ChatStream, StreamSlot]:
    """The chat's stream and the key's stream slot it holds: 429 past the key's open streams,
    before anything is charged."""
    slot = call.svc.streams.take(call.key.id)
    try:
        stream = await unless_gone(call.request.receive, chat.open_chat(call.svc, submit))
    except BaseException:
        slot.release()
        raise
    call.request.scope[BACKEND_S] = stream.backend_s  # up to the first token (api.metrics)
    return stream, slot


def _reply(call: Call, reply: ChatReply) -> Response:
    call.request.scope[BACKEND_S] = reply.backend_s  # up to the last token (api.metrics)
    # The legacy and the OpenAI response have the same fields (response_model, above).
    return Response(reply_json(reply), headers=call.rate_headers, media_type="application/json")


def _writer(stream: ChatStream, *, legacy: bool, usage: bool) -> ChunkWriter:
    return ChunkWriter(
        stream.id, stream.model, stream.created, stream.credits, legacy=legacy, usage=usage
    )


class ChatEventStream(StreamingResponse):
    """The SSE response for one chat. However it ends (the last event, or the client gone,
    when the server cancels the body mid-send), the chat is closed afterwards: that stops the
    backend and, if the reply was cut short, records the usage that was streamed."""

    def __init__(
        self,
        stream: ChatStream,
        writer: ChunkWriter,
        rate_headers: Mapping[str, str],
        slot: StreamSlot,
    ) -> None:
        headers = {
            **rate_headers,
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not hold tokens back
        }
        super().__init__(_events(stream, writer), media_type="text/event-stream", headers=headers)
        self._stream = stream
        self._slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        """Starlette's, stopped when the client goes away. Starlette does this with an anyio
        task group around a disconnect listener (uvicorn speaks ASGI 2.3, whose ``send`` does
        not fail once the client is gone), and that group's teardown cost about 0.5 ms per
        reply, on the loop, after the last byte; ``unless_gone``'s plain task costs a fraction
        of it. It watches from the start: a stream's client may leave at any token."""
        try:
            await unless_gone(receive, self.stream_response(send), after=0)
        except ClientGoneError:
            pass  # the client left: the reply ends here, without an error
        finally:
            await self._close()

    async def _close(self) -> None:
        """Close the chat: its end is recorded at once, then the engine stops. A task being
        cancelled (the server stopping) still waits for the engine, shielded; the usual end
        skips the shield's cost."""
        self._slot.release()
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
        else:
            await self._stream.aclose()

    async def stream_response(self, send: Send) -> None:
        """Starlette's, except that the chunk ending in ``[DONE]`` also ends the body, in the
        same write, instead of an empty message after it: each write wakes the client."""
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        ended = False
        async for chunk in self.body_iterator:  # ``_events``: nothing comes after [DONE]
            assert isinstance(chunk, bytes)
            ended = chunk.endswith(ChunkWriter.DONE)
            await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _events(stream: ChatStream, writer: ChunkWriter) -> AsyncIterator[bytes]:
    """The reply's SSE events, one per delta. Deltas the engine has at once (``more``: they
    came in one read from an upstream) leave in one write, except the first token, which
    leaves at once: it is what a streaming client waits for. None is held while waiting. The
    last chunk, the usage chunk and ``[DONE]`` leave together."""
    first = True
    held: list[bytes] = []
    try:
        async for delta in stream:
            opening = first
            if delta.content:
                held.append(writer.content(delta.content, first=first))
                first = False
            if delta.finish_reason:  # the last delta: it leaves with the end, below
                held.append(writer.finish(delta.finish_reason, stream.usage, first=first))
            elif held and (opening or not delta.more):
                yield b"".join(held)
                held.clear()
    except HyperlocalError as exc:
        # After the first token: the status line is long gone.
        yield b"".join([*held, writer.error(exc)])
        return
    usage = writer.usage(stream.usage)
    yield b"".join([*held, *([usage] if usage is not None else []), writer.DONE])
