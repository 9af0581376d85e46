"""The world of ``test_cancel_storm``: its plan (which job, cancelled at which moment), the
catalogue of its models, a chat upstream whose streams end on cue, and a board that watches
every job's row for its scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hyperlocal.store.db import Database
from hyperlocal.store.tables import Job
from tests.chat.fake_upstream import FakeUpstream
from tests.support import serve_in_thread

# kind: (route, model, output folder, the input field that carries the text)
MEDIA = {
    "video": ("/v1/videos/generate", "scaleout-storm-video", "videos", "prompt"),
    "image": ("/v1/images/generate", "scaleout-storm-image", "images", "prompt"),
    "audio": ("/v1/audio/generate", "scaleout-storm-audio", "audio", "text"),
}
# Chats: "endless" streams until cancelled after a few chunks; "ticks" streams TICKS chunks and
# is cancelled at about its last one, racing its end; "echo" and "plain" (a whole reply) end
# untouched and are cancelled after; "hang" is a plain chat whose upstream never answers,
# cancelled meanwhile.
KINDS = {
    "video": 20,
    "image": 18,
    "audio": 17,
    "endless": 12,
    "ticks": 10,
    "echo": 8,
    "plain": 9,
    "hang": 6,
}
STREAMS = ("endless", "ticks", "echo")
TICKS = 20  # the chunks of a "ticks" stream, 10 ms apart
FOLDERS = {model: folder for _, model, folder, _ in MEDIA.values()}
# When a media job is cancelled.
MOMENTS = {"never": 25, "at-once": 15, "soon": 15, "running": 20, "at-end": 20, "twice": 5}
SECONDS = (0.4, 0.6, 0.8, 1.0)  # how long a media job's engine works
POLL_S = 0.1  # how often a board reads the jobs' rows


@dataclass(frozen=True, slots=True)
class Plan:
    index: int
    kind: str
    moment: str = ""  # a media job's (MOMENTS)
    seconds: float = 0.0  # a media job's work
    delay: float = 0.0  # the random part of its cancel's moment, in seconds
    chunks: int = 0  # a stream's chunks before its cancel

    @property
    def media(self) -> bool:
        return self.kind in MEDIA


def make_plans(rng: random.Random, jobs: int) -> list[Plan]:
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=jobs)
    return [_plan(i, kind, rng) for i, kind in enumerate(kinds)]


def _plan(index: int, kind: str, rng: random.Random) -> Plan:
    if kind in MEDIA:
        moment = rng.choices(list(MOMENTS), weights=list(MOMENTS.values()))[0]
        # at-end: from 80 ms before the work ends (the job has not completed yet) to 120 ms
        # after (staging the output, the completing transaction, publishing it).
        delay = rng.uniform(-0.08, 0.12) if moment == "at-end" else rng.uniform(0.0, 1.0)
        return Plan(index, kind, moment, rng.choice(SECONDS), delay)
    chunks = {"endless": rng.randint(1, 40), "ticks": rng.randint(TICKS - 8, TICKS + 1)}
    return Plan(index, kind, delay=rng.uniform(0.05, 0.5), chunks=chunks.get(kind, 0))


def write_catalog(path: Path, upstream: str) -> Path:
    media = [
        _media_model("scaleout-storm-video", "video", "prompt"),
        _media_model("scaleout-storm-image", "image", "prompt"),
        _media_model("scaleout-storm-audio", "audio", "text"),
    ]
    chats = [_chat_model(f"storm-{name}", upstream, name) for name in (*STREAMS, "hang")]
    path.write_text("".join(media + chats))
    return path


def _media_model(model_id: str, category: str, text_field: str) -> str:
    return f"""
[[model]]
id = "{model_id}"
category = "{category}"
name = "{model_id}"
engine = "test-slow"
timeout_s = 30
price = {{ kind = "flat", credits = 3 }}
inputs.{text_field} = {{ type = "string", required = true }}
inputs.seconds = {{ type = "number", minimum = 0, maximum = 30 }}
"""


def _chat_model(model_id: str, base_url: str, upstream_model: str) -> str:
    return f"""
[[model]]
id = "{model_id}"
category = "chat"
name = "{model_id}"
engine = "openai-upstream"
price = {{ kind = "per_message", credits = 2, chars_per_credit = 2000 }}
engine_options = {{ base_url = "{base_url}", upstream_model = "{upstream_model}" }}
"""


class TickingUpstream(FakeUpstream):
    """The scripted upstream of the chat tests, plus ``ticks``: a stream of ``TICKS`` chunks
    10 ms apart and its end, so that a cancel can be sent at about the moment a stream ends."""

    async def completions(self, request: Request) -> Response:
        body = await request.json()  # kept on the request: the scripted upstream reads it again
        if body["model"] != "ticks":
            return await super().completions(request)
        return StreamingResponse(_ticks(), media_type="text/event-stream")


async def _ticks() -> AsyncIterator[str]:
    for _ in range(TICKS):
        yield _tick({"content": " tick"}, None)
        await asyncio.sleep(0.01)
    yield _tick({}, "stop")
    yield "data: [DONE]\n\n"


def _tick(delta: dict[str, str], finish: str | None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "up-1", "object": "chat.completion.chunk", "model": "ticks", "choices": [choice]}
    return f"data: {json.dumps(chunk)}\n\n"


@contextlib.contextmanager
def running_ticking_upstream() -> Iterator[TickingUpstream]:
    fake = TickingUpstream()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    with serve_in_thread(app) as base:  # type: ignore[arg-type]
        fake.base = base
        yield fake


class Board:
    """Every job's row as last read, for all the scenarios at once: one query every ``POLL_S``
    instead of one per waiting scenario. ``until`` waits on a condition over it."""

    def __init__(self, db: Database, key_id: str | None = None) -> None:
        self._db, self._key_id = db, key_id
        self.rows: dict[str, Any] = {}
        self._tick = asyncio.Event()

    async def run(self) -> None:
        columns = (Job.id, Job.key_id, Job.category, Job.status, Job.started_at)
        while True:
            query = select(*columns)
            if self._key_id is not None:
                query = query.where(Job.key_id == self._key_id)
            async with self._db.read() as session:
                result = await session.execute(query)
            self.rows = {row.id: row for row in result}
            self._tick.set()
            self._tick = asyncio.Event()
            await asyncio.sleep(POLL_S)

    async def until(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        """Return once ``check()`` holds; fail, naming ``what``, at ``deadline`` (monotonic)."""
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tick.wait(), remaining)

    def status(self, job_id: str) -> str | None:
        row = self.rows.get(job_id)
        return None if row is None else str(row.status)

    def count(self, status: str) -> int:
        """Media jobs (not chats) in ``status``."""
        return sum(r.status == status and r.category != "chat" for r in self.rows.values())

    def active(self) -> int:
        return sum(r.status in ("queued", "running") for r in self.rows.values())

    def chat_of(self, key_id: str) -> str | None:
        return next((r.id for r in self.rows.values() if r.key_id == key_id), None)
