"""A paid chat in flight (``ChatStream``): its deltas, and the record of how it ended.

``core.chat.open_chat`` makes one once the chat is priced (a ``ChatTicket``), and primes it
with the first delta while the charge commits. How each ending is recorded on the job's row::

    last delta ──────────────────▶ completed (finish_reason, usage)
    aclose() before the end ─────▶ completed, "disconnect", usage so far
    cancelled in prime(), charged ▶ completed, "disconnect", nothing streamed
    backend fails after a token ─▶ completed, "error" (tokens were delivered, the charge stands)
    backend fails before one ────▶ failed, refunded, and the error is raised
    the key cancels the job ─────▶ canceled, "cancelled": the stream ends at once with a last
                                   delta saying so; the charge stands, as for a disconnect

Each is written through ``JobLifecycle`` (the ends through ``ChatRecorder``). A cancel reaches
the stream through ``EventBus.on_cancel`` from any process.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.jobs import JobStatus
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.engines.chat.base import ChatDelta, ChatUsage
from hyperlocal.errors import ErrorCode, GenerationTimeoutError, HyperlocalError, UnexpectedError

__all__ = ["ChatStream", "ChatTicket", "FinishReason"]

log = logging.getLogger(__name__)


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    DISCONNECT = "disconnect"  # the client went away before the end; usage is what was streamed
    ERROR = "error"  # the backend failed after the first token
    CANCELLED = "cancelled"  # the key cancelled the chat's job (spec §12); usage as streamed


@dataclass(frozen=True, slots=True)
class ChatTicket:
    """A chat about to be charged: what its stream needs before its job's row exists."""

    id: str
    key_id: str
    model: str
    credits: int
    timeout_s: float
    created_at: float


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
        lifecycle: JobLifecycle,
        recorder: ChatRecorder,
        ticket: ChatTicket,
        ask: Callable[[Callable[[], None]], AsyncIterator[ChatDelta]],
    ) -> None:
        """``ask(started)`` is the backend's stream for this chat; the engine calls
        ``started`` once the backend has the request (see ``ChatRequest.started``)."""
        self.id, self.model, self.credits = ticket.id, ticket.model, ticket.credits
        self.created = int(ticket.created_at)
        self.finish_reason: str | None = None
        self._lifecycle, self._recorder, self._key_id = lifecycle, recorder, ticket.key_id
        self._metrics = lifecycle.metrics
        self._opened = time.perf_counter()
        # When the backend had the request, and when its latest delta arrived (``backend_s``).
        self._asked_at: float | None = None
        self._answered_at: float | None = None
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + ticket.timeout_s
        self._started: asyncio.Future[None] = loop.create_future()
        self._deltas = ask(self._backend_started)
        self._first: ChatDelta | None = None
        self._here = False  # the engine said the next delta is already here: no wait, no timer
        self._reported: ChatUsage | None = None  # the engine's latest count
        self._chunks = self._chars = 0
        self._closed = False
        self._cancel = _Cancel()
        self._forget: Callable[[], None] = _nothing  # stops listening for the key's cancel

    @property
    def backend_s(self) -> float:
        """The backend's share of the wait so far: from its having the request to the latest
        delta received (the first, for a stream; the last, for a whole reply)."""
        if self._asked_at is None or self._answered_at is None:
            return 0.0
        return max(0.0, self._answered_at - self._asked_at)

    @property
    def usage(self) -> ChatUsage:
        """The engine's count up to the last delta handed out; or, if it gave none, the
        number of content deltas as completion tokens and an unknown prompt size."""
        return self._reported or ChatUsage(None, self._chunks)

    async def prime(self, charge: Awaitable[None] | None = None) -> None:
        """Fetch the first delta, while ``charge`` (if given) commits; on a failed charge,
        stop the backend and raise; on a failed backend, fail the job, refund it and raise."""
        events = self._lifecycle.events
        if events is not None:  # listening before the charge: the row exists from its commit
            self._forget = events.on_cancel(self.id, self._cancel.fire)
        self._asked_at = time.perf_counter()  # until the engine says when the backend had it
        first = asyncio.ensure_future(self._advance())
        self._cancel.interrupts(first)
        if charge is not None:
            # A backend that answers (or fails) without saying it started has started too.
            first.add_done_callback(self._backend_started)
            try:
                # The request goes out first: the charge need not wait on anything (SQLite
                # runs on this thread), and it should overlap the backend, not delay it.
                await self._started
                await charge
            except BaseException:
                if inspect.iscoroutine(charge):
                    charge.close()  # cancelled before it ran: it must not warn, nor run later
                self._closed = True
                self._forget()
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)
                await self._close_engine()
                raise
        try:
            self._first = await first
            self._answered_at = time.perf_counter()
            self._metrics.first_token(self.model, self._answered_at - self._opened)
        except asyncio.CancelledError:
            if self._cancel.fired and not _being_cancelled():
                self._first = ChatDelta(finish_reason=FinishReason.CANCELLED)
                return
            # The client left (or the server stops) before the first token: the chat is
            # charged and ends now, as a disconnect with nothing streamed.
            await self.aclose()
            raise
        except Exception as exc:
            error = _domain_error(exc)
            await self._fail(error)
            raise error from exc
        finally:
            self._cancel.interrupts(None)

    def _backend_started(self, *first: object) -> None:
        if not self._started.done():
            if not first:  # the engine's word (the first delta's done callback passes it)
                self._asked_at = time.perf_counter()
            self._started.set_result(None)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatDelta:
        if self.finish_reason is not None or self._closed:
            raise StopAsyncIteration
        delta, self._first = self._first, None
        if self._cancel.fired:
            delta = ChatDelta(finish_reason=FinishReason.CANCELLED)
        elif delta is None:
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
        self._forget()
        if self.finish_reason is None:  # recorded first: it needs no await, so no cancel stops it
            self._finish(FinishReason.DISCONNECT)
        await self._close_engine()

    async def _advance(self) -> ChatDelta:
        try:
            if self._here:  # a timer per token cost more than relaying it
                return await anext(self._deltas)
            async with asyncio.timeout_at(self._deadline):
                return await anext(self._deltas)
        except StopAsyncIteration:
            return ChatDelta(finish_reason=FinishReason.STOP)  # ended without saying why

    async def _next_after_first(self) -> ChatDelta:
        task = asyncio.current_task()
        self._cancel.interrupts(task)
        try:
            return await self._advance()
        except asyncio.CancelledError:
            if task is None or not self._cancel.fired or task.uncancel() > 0:
                raise  # not (only) the key's cancel: the client left, or the server stops
            return ChatDelta(finish_reason=FinishReason.CANCELLED)
        except Exception as exc:
            error = _domain_error(exc)
            self._finish(FinishReason.ERROR, error)
            raise error from exc
        finally:
            self._cancel.interrupts(None)

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
        self._answered_at = time.perf_counter()  # the backend's last word (``backend_s``)
        self.finish_reason = reason
        self._forget()
        cancelled = reason == FinishReason.CANCELLED
        values: dict[str, Any] = {
            "result": self._record(error),
            "progress": 1.0,
            "finished_at": time.time(),
        }
        if cancelled:
            values |= {"error": "canceled", "error_code": ErrorCode.CANCELED.value}
        status = JobStatus.CANCELED if cancelled else JobStatus.COMPLETED
        self._recorder.record(self.id, status, **values)
        usage = self.usage
        self._metrics.finished(self.model, status.value, time.perf_counter() - self._opened)
        self._metrics.chat_tokens(self.model, usage.prompt_tokens, usage.completion_tokens)

    async def _fail(self, error: HyperlocalError) -> None:
        self._closed = True
        self._forget()
        await self._lifecycle.fail_chat(self.id, self._key_id, error)
        self._metrics.finished(self.model, JobStatus.FAILED.value, None)
        self._metrics.refunded(self.model, self.credits)


class _Cancel:
    """The key's cancel of a chat: fired from the event bus, it interrupts whatever wait for
    the backend is in progress (the first delta's task, or the consumer's task), once."""

    def __init__(self) -> None:
        self.fired = False
        self._waiting: asyncio.Future[Any] | None = None

    def interrupts(self, waiting: asyncio.Future[Any] | None) -> None:
        self._waiting = waiting

    def fire(self) -> None:
        if not self.fired:
            self.fired = True
            if self._waiting is not None:
                self._waiting.cancel()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _nothing() -> None:
    return None


def _code(error: HyperlocalError) -> str:
    return str(getattr(error, "code", ErrorCode.UNEXPECTED))
