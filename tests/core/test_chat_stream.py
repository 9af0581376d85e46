"""``ChatStream.prime(charge)``: the charge runs once the backend has the request (the engine
calls ``started``), so that it overlaps the backend's work instead of delaying the request;
a backend that answers or fails without saying so lets it run then. Real SQLite underneath
(the recorder); the backend is a scripted engine stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from hyperlocal.core.chat_recorder import ChatRecorder
from hyperlocal.core.chat_stream import ChatStream, ChatTicket
from hyperlocal.core.lifecycle import JobLifecycle
from hyperlocal.engines.chat.base import ChatDelta
from hyperlocal.errors import GenerationError, HyperlocalError
from hyperlocal.store.db import Database


class Backend:
    """Says ``started`` when ``send`` is set, then answers when ``answer`` is set."""

    def __init__(self, *, says_started: bool = True, fails: bool = False) -> None:
        self.send, self.answer = asyncio.Event(), asyncio.Event()
        self.says_started, self.fails = says_started, fails
        self.log: list[str] = []

    async def stream(self, started: Callable[[], None]) -> AsyncIterator[ChatDelta]:
        await self.send.wait()
        if self.says_started:
            self.log.append("started")
            started()
        await self.answer.wait()
        if self.fails:
            raise GenerationError("backend down")
        self.log.append("answered")
        yield ChatDelta("hi", finish_reason="stop")


async def _charge(log: list[str]) -> None:
    log.append("charged")


def _stream(db: Database, backend: Backend) -> ChatStream:
    ticket = ChatTicket("chatcmpl-order", "key", "m", 2, 30.0, time.time())
    lifecycle = JobLifecycle(db)
    return ChatStream(lifecycle, ChatRecorder(db, lifecycle), ticket, backend.stream)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_charge_waits_until_the_backend_has_the_request(db: Database) -> None:
    backend = Backend()
    stream = _stream(db, backend)
    priming = asyncio.ensure_future(stream.prime(_charge(backend.log)))
    await _settle()
    assert backend.log == []  # the request is not out yet: nothing charged
    backend.send.set()
    await _settle()
    assert backend.log == ["started", "charged"]  # charged while the backend works
    backend.answer.set()
    await asyncio.wait_for(priming, 5)
    assert backend.log == ["started", "charged", "answered"]
    await stream.aclose()


async def test_a_backend_that_never_says_started_is_charged_once_it_answers(
    db: Database,
) -> None:
    backend = Backend(says_started=False)
    stream = _stream(db, backend)
    priming = asyncio.ensure_future(stream.prime(_charge(backend.log)))
    backend.send.set()
    await _settle()
    assert backend.log == []
    backend.answer.set()
    await asyncio.wait_for(priming, 5)
    assert backend.log == ["answered", "charged"]
    await stream.aclose()


async def test_a_backend_that_fails_before_saying_started_still_settles_the_charge(
    db: Database,
) -> None:
    """The charge runs (and is then refunded by the failure path), so ``prime`` never hangs."""
    backend = Backend(says_started=False, fails=True)
    stream = _stream(db, backend)
    backend.send.set()
    backend.answer.set()
    with pytest.raises(HyperlocalError, match="backend down"):
        await asyncio.wait_for(stream.prime(_charge(backend.log)), 5)
    assert backend.log == ["charged"]
