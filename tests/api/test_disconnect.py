"""``unless_gone``: work stopped when its client disconnects before the response begins. The
ASGI ``receive`` here is a stand-in for the server's (what uvicorn delivers once the body has
been read: nothing until the connection is lost); the end-to-end behaviour, over real sockets,
is in ``tests/chat/test_disconnect.py``."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from hyperlocal.api.disconnect import unless_gone
from hyperlocal.api.errors import error_response
from hyperlocal.errors import ClientGoneError


class Connection:
    """An ASGI ``receive`` after the body: it answers ``http.disconnect`` once ``lose()``."""

    def __init__(self) -> None:
        self._lost = asyncio.Event()
        self.receives = 0

    def lose(self) -> None:
        self._lost.set()

    async def receive(self) -> Message:
        self.receives += 1
        await self._lost.wait()
        return {"type": "http.disconnect"}


class Work:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.cancelled = seconds, False

    async def __call__(self) -> str:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


async def test_quick_work_never_watches() -> None:
    connection = Connection()
    connection.lose()  # a watcher would see it at once
    assert await unless_gone(connection.receive, Work(0.01)(), after=0.05) == "done"
    await asyncio.sleep(0.1)  # past the watch's start: it was called off with the work
    assert connection.receives == 0


async def test_work_that_outlives_its_client_is_cancelled() -> None:
    connection, work = Connection(), Work(30)
    asyncio.get_running_loop().call_later(0.2, connection.lose)
    with pytest.raises(ClientGoneError):
        await asyncio.wait_for(unless_gone(connection.receive, work(), after=0.05), 5)
    assert work.cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancel was ours, and is undone


async def test_long_work_with_its_client_still_there_completes() -> None:
    connection = Connection()
    assert await unless_gone(connection.receive, Work(0.2)(), after=0.01) == "done"
    assert connection.receives == 1  # watched, and the watcher is gone with the work


async def test_a_cancel_from_elsewhere_is_not_a_gone_client() -> None:
    """The server stopping cancels the request's task: that stays a cancel."""
    connection, work = Connection(), Work(30)
    task = asyncio.ensure_future(unless_gone(connection.receive, work(), after=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert work.cancelled


def test_a_gone_client_is_logged_as_499() -> None:
    response = error_response(ClientGoneError())
    assert response.status_code == 499
    assert response.body == b'{"error":"Client closed the request"}'
