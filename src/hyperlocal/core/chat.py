"""Chat (spec §9): price the conversation, then charge and record a ``chat`` job row in one
transaction, stream the engine's reply, and record on the same row how the reply ended.

::

    open_chat ── validate, price ── charge + job row (running) ── first delta ──▶ ChatStream
                                                      └─ backend fails before it ──▶ failed,
                                                         refunded, and the error is raised
    ChatStream ── last delta ──────────────────▶ completed (finish_reason, usage)
               ── aclose() before the end ─────▶ completed, "disconnect", usage so far
               ── backend fails after a token ─▶ completed, "error" (tokens were delivered,
                                                 so the charge stands)

The chat's id (``chatcmpl-...``) is its job id, so ``GET /v1/jobs/{id}`` shows what it cost
and how it ended. Message text is never stored: the row keeps counts only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hyperlocal.core import ledger
from hyperlocal.core.catalog import Catalog, ModelEntry
from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.jobs import JobStatus
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.pricing import price
from hyperlocal.core.services import Services
from hyperlocal.engines.base import Category
from hyperlocal.engines.chat.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatUsage,
    message_text,
)
from hyperlocal.errors import (
    EngineUnavailableError,
    GenerationTimeoutError,
    HyperlocalError,
    InputError,
    UnexpectedError,
)
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "ChatReply",
    "ChatStream",
    "ChatSubmit",
    "ChatTicket",
    "FinishReason",
    "complete_chat",
    "conversation_chars",
    "open_chat",
]

log = logging.getLogger(__name__)

DEFAULT_CHAT_MODEL = "smollm2-135m"
ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4  # as OpenAI


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    DISCONNECT = "disconnect"  # the client went away mid-stream; usage is what was streamed
    ERROR = "error"  # the backend failed after the first token


@dataclass(frozen=True, slots=True)
class ChatSubmit:
    key: KeyInfo
    model: str | None  # None: the default chat model
    messages: Sequence[ChatMessage]
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()
    stream: bool = True


@dataclass(frozen=True, slots=True)
class ChatReply:
    id: str
    model: str
    created: int
    content: str
    finish_reason: str
    usage: ChatUsage
    credits: int


def conversation_chars(messages: Sequence[ChatMessage]) -> int:
    """What the ``per_message`` price rule counts: the text of every message."""
    return sum(len(message_text(m)) for m in messages)


def default_chat_model(catalog: Catalog, preferred: str = DEFAULT_CHAT_MODEL) -> str:
    """The configured default, or else the operator's first chat model."""
    chat_models = [e.id for e in catalog.by_category(Category.CHAT)]
    if preferred in chat_models or not chat_models:
        return preferred
    return chat_models[0]


async def open_chat(svc: Services, submit: ChatSubmit) -> ChatStream:
    """Charge for the chat and wait for its first delta; or raise, with any charge refunded.

    When the key's balance (as of its authentication) covers the price, the backend is asked
    while the charge commits, so the charge adds nothing to the time to first token. Nothing
    reaches the client before the charge has committed, and a charge that fails (402) stops
    the backend at once. A key already short of credits is charged first, so that it cannot
    make the backend work for replies it will never get. Only what the request needs is done
    before the backend is asked; the job's row is built inside the charge.
    """
    entry = _entry(svc, submit.model)
    _validate(submit)
    engine = await svc.chat.get(entry.engine)
    ticket = _ticket(submit, entry)
    stream = ChatStream(
        svc.db, svc.chat_recorder, ticket, engine.stream(_engine_request(entry, submit))
    )
    if submit.key.credits < ticket.credits:
        await _charge(svc.db, submit, ticket)
        await stream.prime()
    else:
        await stream.prime(_charge(svc.db, submit, ticket))
    return stream


async def complete_chat(svc: Services, submit: ChatSubmit) -> ChatReply:
    """The whole reply at once (``stream: false``)."""
    stream = await open_chat(svc, submit)
    try:
        content = "".join([delta.content async for delta in stream])
    finally:
        await stream.aclose()
    return ChatReply(
        stream.id,
        stream.model,
        stream.created,
        content,
        stream.finish_reason or FinishReason.STOP,
        stream.usage,
        stream.credits,
    )


def _entry(svc: Services, model: str | None) -> ModelEntry:
    if model is None:  # the default is looked up only when asked for: it scans the catalogue
        model = default_chat_model(svc.catalog, svc.settings.default_chat_model)
    entry = svc.catalog.get(model, Category.CHAT)
    if not svc.chat.available(entry.engine):
        raise EngineUnavailableError(entry.engine)
    return entry


def _validate(submit: ChatSubmit) -> None:
    if not submit.messages:
        raise InputError("messages", "at least one message is required")
    for i, message in enumerate(submit.messages):
        if message.role not in ROLES:
            raise InputError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
    if not 0 <= submit.temperature <= 2:
        raise InputError("temperature", "must be between 0 and 2")
    if submit.max_tokens < 1:
        raise InputError("max_tokens", "must be at least 1")
    if len(submit.stop) > MAX_STOP_SEQUENCES:
        raise InputError("stop", f"at most {MAX_STOP_SEQUENCES} sequences")


def _engine_request(entry: ModelEntry, submit: ChatSubmit) -> ChatRequest:
    return ChatRequest(
        model=entry.id,
        messages=tuple(submit.messages),
        temperature=submit.temperature,
        max_tokens=submit.max_tokens,
        stop=tuple(s for s in submit.stop if s),
        stream=submit.stream,
        options=entry.engine_options,
    )


def new_chat_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class ChatTicket:
    """A chat about to be charged: what its stream needs before its job's row exists."""

    id: str
    key_id: str
    model: str
    credits: int
    timeout_s: float
    created_at: float


def _ticket(submit: ChatSubmit, entry: ModelEntry) -> ChatTicket:
    credits = price(entry, {}, conversation_chars=conversation_chars(submit.messages))
    return ChatTicket(new_chat_id(), submit.key.id, entry.id, credits, entry.timeout_s, time.time())


def _new_chat_job(submit: ChatSubmit, ticket: ChatTicket) -> Job:
    return Job(
        id=ticket.id,
        key_id=ticket.key_id,
        model=ticket.model,
        category=Category.CHAT.value,
        status=JobStatus.RUNNING.value,
        params=_params(submit),
        inputs={},
        credits=ticket.credits,
        timeout_s=ticket.timeout_s,
        progress=0.0,
        attempts=1,
        created_at=ticket.created_at,
        started_at=ticket.created_at,
        # If this process dies mid-stream, the lease sweep fails and refunds the chat.
        lease_owner="chat",
        lease_expires_at=ticket.created_at + ticket.timeout_s,
    )


async def _charge(db: Database, submit: ChatSubmit, ticket: ChatTicket) -> None:
    """The charge and the chat's row, in one transaction."""
    job = _new_chat_job(submit, ticket)
    async with db.transaction() as session:
        await store.insert(session, job)
        await ledger.charge(session, job.key_id, job.credits, job.id)  # last: it locks the key


def _params(submit: ChatSubmit) -> dict[str, Any]:
    # Counts, not text: a conversation can be private and long.
    return {
        "messages": len(submit.messages),
        "conversation_chars": conversation_chars(submit.messages),
        "temperature": submit.temperature,
        "max_tokens": submit.max_tokens,
        "stop": list(submit.stop),
        "stream": submit.stream,
    }


def _domain_error(exc: Exception) -> HyperlocalError:
    if isinstance(exc, HyperlocalError):
        return exc
    if isinstance(exc, TimeoutError):
        return GenerationTimeoutError()
    log.exception("unexpected chat engine error", exc_info=exc)
    return UnexpectedError()


class ChatStream:
    """A paid chat in flight. Iterate for its deltas (the first is already fetched); after the
    last one, ``finish_reason`` and ``usage`` hold the outcome, already recorded on the job.

    ``aclose()`` must be called however the consumer stops: it closes the engine's stream
    (stopping the backend) and, if the reply had not ended, records a disconnect with the
    usage streamed so far. It is idempotent.
    """

    def __init__(
        self,
        db: Database,
        recorder: ChatRecorder,
        ticket: ChatTicket,
        deltas: AsyncIterator[ChatDelta],
    ) -> None:
        self.id, self.model, self.credits = ticket.id, ticket.model, ticket.credits
        self.created = int(ticket.created_at)
        self.finish_reason: str | None = None
        self._db, self._recorder, self._key_id, self._deltas = db, recorder, ticket.key_id, deltas
        self._deadline = asyncio.get_running_loop().time() + ticket.timeout_s
        self._first: ChatDelta | None = None
        self._here = False  # the engine said the next delta is already here: no wait, no timer
        self._reported: ChatUsage | None = None  # the engine's latest count
        self._chunks = self._chars = 0
        self._closed = False

    @property
    def usage(self) -> ChatUsage:
        """The engine's count up to the last delta handed out; or, if it gave none, the
        number of content deltas as completion tokens and an unknown prompt size."""
        return self._reported or ChatUsage(None, self._chunks)

    async def prime(self, charge: Awaitable[None] | None = None) -> None:
        """Fetch the first delta, while ``charge`` (if given) commits; on a failed charge,
        stop the backend and raise; on a failed backend, fail the job, refund it and raise."""
        first = asyncio.ensure_future(self._advance())
        if charge is not None:
            try:
                # Let the backend request go out first: the charge may not wait on anything
                # (SQLite runs on this thread), and it should overlap the backend, not precede it.
                await asyncio.sleep(0)
                await charge
            except BaseException:
                if inspect.iscoroutine(charge):
                    charge.close()  # cancelled before it ran: it must not warn, nor run later
                self._closed = True
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)
                await self._close_engine()
                raise
        try:
            self._first = await first
        except Exception as exc:
            error = _domain_error(exc)
            await self._fail(error)
            raise error from exc

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatDelta:
        if self.finish_reason is not None or self._closed:
            raise StopAsyncIteration
        delta, self._first = self._first, None
        if delta is None:
            delta = await self._next_after_first()
        self._count(delta)
        self._here = delta.more
        if delta.finish_reason:
            self._finish(delta.finish_reason)
        return delta

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close_engine()
        if self.finish_reason is None:
            self._finish(FinishReason.DISCONNECT)

    async def _advance(self) -> ChatDelta:
        try:
            if self._here:  # a timer per token cost more than relaying it
                return await anext(self._deltas)
            async with asyncio.timeout_at(self._deadline):
                return await anext(self._deltas)
        except StopAsyncIteration:
            return ChatDelta(finish_reason=FinishReason.STOP)  # ended without saying why

    async def _next_after_first(self) -> ChatDelta:
        try:
            return await self._advance()
        except Exception as exc:
            error = _domain_error(exc)
            self._finish(FinishReason.ERROR, error)
            raise error from exc

    def _count(self, delta: ChatDelta) -> None:
        if delta.content:
            self._chunks += 1
            self._chars += len(delta.content)
        self._reported = delta.usage or self._reported

    async def _close_engine(self) -> None:
        aclose = getattr(self._deltas, "aclose", None)
        if aclose is None:
            return
        try:
            await aclose()
        except Exception:
            log.exception("chat engine failed to stop", extra={"job_id": self.id})

    def _record(self, error: HyperlocalError | None) -> dict[str, Any]:
        usage = self.usage
        record: dict[str, Any] = {
            "finish_reason": self.finish_reason,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "streamed_chunks": self._chunks,
            "streamed_chars": self._chars,
        }
        if error is not None:
            record["error"] = {"message": error.message, "code": _code(error)}
        return record

    def _finish(self, reason: str, error: HyperlocalError | None = None) -> None:
        """Record how the chat ended; written behind the reply (see ``ChatRecorder``)."""
        self.finish_reason = reason
        self._recorder.record(
            self.id,
            status=JobStatus.COMPLETED.value,
            result=self._record(error),
            progress=1.0,
            finished_at=time.time(),
        )

    async def _fail(self, error: HyperlocalError) -> None:
        self._closed = True
        log.warning("chat failed", extra={"job_id": self.id, "code": _code(error)})
        async with self._db.transaction() as session:
            moved = await store.transition(
                session,
                self.id,
                [JobStatus.RUNNING.value],
                status=JobStatus.FAILED.value,
                error=error.message,
                error_code=_code(error),
                finished_at=time.time(),
            )
            if moved:
                await ledger.refund(session, self._key_id, self.id, _code(error))


def _code(error: HyperlocalError) -> str:
    return str(getattr(error, "code", "E9999"))
