"""Chat (spec §9): price the conversation, then charge and record a ``chat`` job row in one
transaction, stream the engine's reply, and record on the same row how the reply ended.

::

    open_chat ── validate, price ── charge + job row (running) ── first delta ──▶ ChatStream
                                                      └─ backend fails before it ──▶ failed,
                                                         refunded, and the error is raised

How a ``ChatStream`` ends, and how that is recorded, is in ``core.chat_stream``.

The chat's id (``chatcmpl-...``) is its job id, so ``GET /v1/jobs/{id}`` shows what it cost
and how it ended. Message text is never stored: the row keeps counts only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hyperlocal.core import ledger
from hyperlocal.core.catalog import Catalog, ModelEntry
from hyperlocal.core.chat_recorder import LEASE_MARGIN_S
from hyperlocal.core.chat_stream import ChatStream, ChatTicket, FinishReason
from hyperlocal.core.jobs import JobStatus
from hyperlocal.core.keys import KeyInfo
from hyperlocal.core.pricing import price
from hyperlocal.core.services import Services
from hyperlocal.engines.base import Category
from hyperlocal.engines.chat.base import ChatMessage, ChatRequest, ChatUsage, message_text
from hyperlocal.errors import EngineUnavailableError, InputError, InsufficientCreditsError
from hyperlocal.store import jobs as store
from hyperlocal.store.tables import ChatJobRow

__all__ = [
    "ChatReply",
    "ChatStream",
    "ChatSubmit",
    "ChatTicket",
    "FinishReason",
    "complete_chat",
    "conversation_chars",
    "open_chat",
]

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4  # as OpenAI


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
    backend_s: float = 0.0  # how much of the wait was the backend's (``ChatStream.backend_s``)


def conversation_chars(messages: Sequence[ChatMessage]) -> int:
    """What the ``per_message`` price rule counts: the text of every message."""
    return sum(len(message_text(m)) for m in messages)


def default_chat_model(catalog: Catalog, preferred: str) -> str:
    """``preferred`` (``Settings.default_chat_model``), or else the operator's first chat model."""
    chat_models = [e.id for e in catalog.by_category(Category.CHAT)]
    if preferred in chat_models or not chat_models:
        return preferred
    return chat_models[0]


async def open_chat(svc: Services, submit: ChatSubmit) -> ChatStream:
    """Charge for the chat and wait for its first delta; or raise, with any charge refunded.

    When the key's balance (as of its authentication) covers the price, the backend is asked
    first and the charge commits while it works (from the moment the engine says the backend
    has the request), so the charge adds nothing to the time to first token. Nothing
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
        svc.lifecycle,
        svc.chat_recorder,
        ticket,
        lambda started: engine.stream(_engine_request(entry, submit, started)),
    )
    if submit.key.credits < ticket.credits:
        await _charge(svc, submit, ticket)
        await stream.prime()
    else:
        await stream.prime(_charge(svc, submit, ticket))
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
        stream.backend_s,
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


def _engine_request(
    entry: ModelEntry, submit: ChatSubmit, started: Callable[[], None]
) -> ChatRequest:
    return ChatRequest(
        model=entry.id,
        messages=tuple(submit.messages),
        temperature=submit.temperature,
        max_tokens=submit.max_tokens,
        stop=tuple(s for s in submit.stop if s),
        stream=submit.stream,
        options=entry.engine_options,
        started=started,
    )


def new_chat_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def _ticket(submit: ChatSubmit, entry: ModelEntry) -> ChatTicket:
    credits = price(entry, {}, conversation_chars=conversation_chars(submit.messages))
    return ChatTicket(new_chat_id(), submit.key.id, entry.id, credits, entry.timeout_s, time.time())


def _chat_job(submit: ChatSubmit, ticket: ChatTicket) -> ChatJobRow:
    """The chat's row, running from the start. Column values, not an ORM object: SQLAlchemy's
    instrumented constructor cost more than the INSERT."""
    return {
        "id": ticket.id,
        "key_id": ticket.key_id,
        "model": ticket.model,
        "category": Category.CHAT.value,
        "status": JobStatus.RUNNING.value,
        "params": _params(submit),
        "inputs": {},
        "credits": ticket.credits,
        "timeout_s": ticket.timeout_s,
        "progress": 0.0,
        "attempts": 1,
        "created_at": ticket.created_at,
        "started_at": ticket.created_at,
        # If this process dies mid-stream, the lease sweep fails and refunds the chat; not
        # before its end, which is written a little after its deadline, had time to land.
        "lease_owner": "chat",
        "lease_expires_at": ticket.created_at + ticket.timeout_s + LEASE_MARGIN_S,
    }


async def _charge(svc: Services, submit: ChatSubmit, ticket: ChatTicket) -> None:
    """The charge and the chat's row, in one transaction."""
    row = _chat_job(submit, ticket)
    try:
        async with svc.db.transaction() as session:
            await store.insert_chat(session, row)
            # Last: on PostgreSQL it locks the key until the commit.
            await ledger.charge(session, ticket.key_id, ticket.credits, ticket.id)
    except InsufficientCreditsError:
        svc.metrics.insufficient_credits()
        raise
    svc.metrics.submitted(ticket.model, Category.CHAT.value, ticket.credits)


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
