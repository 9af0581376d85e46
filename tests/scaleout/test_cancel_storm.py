"""Issue 15: a cancel storm on the scale-out shape: one API server process and one Celery worker
process, on PostgreSQL and Redis, sharing one storage directory.

200 jobs in a seeded random mix (media jobs, streamed chats and plain chats) are cancelled at
random moments: at once, soon after their submit (most still queued), while running, at about
the moment the work ends (racing the completing transaction), twice at once, and mid-stream.
The worker is killed (SIGKILL) once in the middle, and a new one started. Once every job has
ended:

- nothing is served for a cancelled job: no output file (published or staged), its would-be
  ``/files/...`` URL answers 404, and a cancelled stream ends with ``finish_reason:
  "cancelled"`` and nothing after it but ``[DONE]``;
- no job is both refunded and delivered, and only cancelled media jobs are refunded;
- each job has exactly one charge and at most one refund, and each key's ledger sums to its
  balance;
- every cancel answered consistently with how its job ended (409 names the final status);
- no job is left queued or running, and all the worker's slots run jobs again at once.

The plan (which job, which moment) is seeded. The moments are real time, which is the point:
each run lands its cancels at slightly different places in the jobs' lives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hyperlocal.core.keys import IssuedKey
from hyperlocal.runtime import open_storage
from hyperlocal.storage.local import LocalStorage
from hyperlocal.store import jobs as job_store
from hyperlocal.store.db import Database
from hyperlocal.store.tables import ApiKey, Job, LedgerEntry
from tests.chat.conftest import sse_events
from tests.conftest import auth
from tests.scaleout._processes import TEST_WORKER, Process, server_with_test_engines, spawned
from tests.scaleout._storm import (
    FOLDERS,
    MEDIA,
    SECONDS,
    STREAMS,
    Board,
    Plan,
    make_plans,
    running_ticking_upstream,
    write_catalog,
)
from tests.scaleout.conftest import RedisScope, ScaleOut, new_key
from tests.support import SOAK_SCALE, free_port, work_deadline

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

log = logging.getLogger(__name__)

JOBS = 200 * SOAK_SCALE
SEED = 15
SLOTS = 4  # the worker's concurrency
LEASE_S = 2.0  # short, so that the killed worker's jobs come back within seconds
IN_FLIGHT = 24  # scenarios played at once
PROBE_S = 2.0  # the last jobs, one per slot: long enough to be seen running together
ASK = [{"role": "user", "content": "Count for me."}]
WORKER = [*TEST_WORKER, "--models", "scaleout-storm-*", "--concurrency", str(SLOTS)]
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Cancel:
    sent: float  # time.time() as it was sent
    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class Seen:
    """What the client saw of one job."""

    plan: Plan
    key: IssuedKey | None = None
    job_id: str = ""
    cancels: list[Cancel] = field(default_factory=list)
    finish: str | None = None  # a chat's finish_reason, as its client got it
    after_finish: int = 0  # a stream's chunks after the one with its finish_reason
    done: bool = False  # a stream ended with [DONE]


@dataclass
class Storm:
    client: httpx.AsyncClient
    board: Board
    media_keys: Sequence[IssuedKey]
    chat_key: IssuedKey
    hang_keys: dict[int, IssuedKey]  # one per hanging chat: its job is the key's only one
    deadline: float  # monotonic: no scenario waits past it
    started: int = 0

    async def play(self, plan: Plan, seen: Seen) -> None:
        self.started += 1
        if plan.media:
            await self._media(plan, seen)
        elif plan.kind in STREAMS:
            await self._stream(plan, seen)
        elif plan.kind == "plain":
            await self._plain(seen)
        else:
            await self._hang(plan, seen)

    async def _media(self, plan: Plan, seen: Seen) -> None:
        route, model, _, text_field = MEDIA[plan.kind]
        body = {"model": model, text_field: f"storm {plan.index}", "seconds": plan.seconds}
        key = seen.key = self.media_keys[plan.index % len(self.media_keys)]
        headers = {**auth(key), "Prefer": "respond-async"}
        response = await self.client.post(route, json=body, headers=headers)
        assert response.status_code == 202, response.text
        seen.job_id = response.json()["jobId"]
        if plan.moment == "never":
            return
        await self._moment(plan, seen.job_id)
        await cancel(self.client, seen, times=2 if plan.moment == "twice" else 1)

    async def _moment(self, plan: Plan, job_id: str) -> None:
        """Sleep to the plan's random moment: the moment is this test's input, not a wait for
        a condition (those go through ``Board.until``)."""
        if plan.moment == "soon":
            await asyncio.sleep(plan.delay)
        elif plan.moment in ("running", "twice"):
            await self._until_started(job_id)
            await asyncio.sleep(plan.delay * 0.7 * plan.seconds)
        elif plan.moment == "at-end":
            started = await self._until_started(job_id)
            await asyncio.sleep(max(0.0, started + plan.seconds + plan.delay - time.time()))

    async def _until_started(self, job_id: str) -> float:
        """When the job started running (wall clock), once the board has seen it started."""
        await self.board.until(
            lambda: self.board.status(job_id) not in (None, "queued"), self.deadline, job_id
        )
        return float(self.board.rows[job_id].started_at or time.time())

    async def _stream(self, plan: Plan, seen: Seen) -> None:
        model = f"storm-{plan.kind}"
        body = {"model": model, "messages": ASK, "stream": True}
        seen.key = self.chat_key
        cancelling: asyncio.Future[None] | None = None
        async with self.client.stream(
            "POST", "/v1/chat/completions", json=body, headers=auth(self.chat_key)
        ) as reply:
            assert reply.status_code == 200, await reply.aread()
            chunks = 0
            async for data in sse_events(reply):
                chunks += 1
                _take(seen, data)
                if cancelling is None and plan.chunks and chunks >= plan.chunks:
                    cancelling = asyncio.ensure_future(cancel(self.client, seen))
        if cancelling is not None:
            await cancelling
        else:  # it ended untouched: cancelling it now is too late
            await cancel(self.client, seen)

    async def _plain(self, seen: Seen) -> None:
        body = {"model": "storm-echo", "messages": ASK, "stream": False}
        seen.key = self.chat_key
        reply = await self.client.post("/v1/chat/completions", json=body, headers=auth(seen.key))
        assert reply.status_code == 200, reply.text
        seen.job_id = reply.json()["id"]
        seen.finish = reply.json()["choices"][0]["finish_reason"]
        await cancel(self.client, seen)

    async def _hang(self, plan: Plan, seen: Seen) -> None:
        key = seen.key = self.hang_keys[plan.index]
        body = {"model": "storm-hang", "messages": ASK, "stream": False}
        reply = asyncio.ensure_future(
            self.client.post("/v1/chat/completions", json=body, headers=auth(key))
        )
        await self.board.until(
            lambda: self.board.chat_of(key.info.id) is not None or reply.done(),
            self.deadline,
            f"hanging chat {plan.index} to be charged",
        )
        assert not reply.done(), (await reply).text
        seen.job_id = str(self.board.chat_of(key.info.id))
        await asyncio.sleep(plan.delay)  # a random moment of its wait
        await cancel(self.client, seen)
        response = await reply
        assert response.status_code == 200, response.text
        seen.finish = response.json()["choices"][0]["finish_reason"]


def _take(seen: Seen, data: str) -> None:
    """One SSE event of a stream: the chat's id, and how (and whether) it ended."""
    assert not seen.done, f"an event after [DONE]: {data}"
    if data == "[DONE]":
        seen.done = True
        return
    chunk = json.loads(data)
    seen.job_id = chunk["id"]
    if seen.finish is not None:
        seen.after_finish += 1
    choices = chunk.get("choices") or [{}]
    seen.finish = choices[0].get("finish_reason") or seen.finish


@dataclass
class Fleet:
    """The worker processes: the first is killed midway, and another started."""

    stack: ExitStack
    env: dict[str, str]
    logs: Path
    workers: list[Process] = field(default_factory=list)

    def start(self) -> None:
        name = f"worker-{len(self.workers) + 1}"
        self.workers.append(self.stack.enter_context(spawned(name, WORKER, self.env, self.logs)))

    def tails(self) -> str:
        return "\n".join(f"{p.name}:\n{p.read_text()[-4000:]}" for p in self.logs.glob("*.log"))


async def test_a_cancel_storm_with_a_killed_worker_loses_nothing(
    scale_out: ScaleOut, database: Database, tmp_path: Path
) -> None:
    plans = make_plans(random.Random(SEED), JOBS)
    port = free_port()
    with ExitStack() as stack:
        upstream = stack.enter_context(running_ticking_upstream())
        values = {
            "job_lease_seconds": LEASE_S,
            "public_url": f"http://127.0.0.1:{port}",
            "catalog": write_catalog(tmp_path / "storm.toml", upstream.url),
            "shutdown_grace_seconds": 2.0,
        }
        storage = open_storage(scale_out.settings(**values))
        assert isinstance(storage, LocalStorage)
        fleet = Fleet(stack, scale_out.env(**values), tmp_path / "logs")
        fleet.start()
        url = stack.enter_context(server_with_test_engines("api", fleet.env, fleet.logs, port))
        began = time.monotonic()
        try:
            seen, lost = await _storm(scale_out, database, url, plans, fleet)
            log.info("the storm ended after %.1f s", time.monotonic() - began)
            await _audit(database, url, seen, lost, storage.root)
            await _probe_slots(scale_out, database, url)
        except BaseException:
            log.error("logs:\n%s", fleet.tails())
            raise
        killed, last = fleet.workers
        assert not killed.running()
        assert last.terminate() == 0, last.output()  # a graceful stop, when idle


async def _storm(
    scale_out: ScaleOut, db: Database, url: str, plans: Sequence[Plan], fleet: Fleet
) -> tuple[list[Seen], set[str]]:
    """Play every plan, and kill the worker once midway; once every job has ended, what the
    clients saw, and the jobs that the killed worker was running."""
    media = [p for p in plans if p.media]
    budget = work_deadline(len(media), max(SECONDS), SLOTS, overhead=60 + 3 * LEASE_S)
    deadline = time.monotonic() + budget
    board = Board(db)
    keys = [await new_key(db, scale_out.scope) for _ in range(3)]
    hang_keys = {p.index: await new_key(db, scale_out.scope) for p in plans if p.kind == "hang"}
    seen = [Seen(p) for p in plans]
    slots = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(keepalive_expiry=1.0)  # see test_fleet.submit_all
    lost: set[str] = set()
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as client,
        asyncio.TaskGroup() as group,
    ):
        watching = group.create_task(board.run())
        storm = Storm(client, board, keys[:2], keys[2], hang_keys, deadline)

        async def play(plan: Plan) -> None:
            async with slots:
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await storm.play(plan, seen[plan.index])
                except TimeoutError as exc:
                    stuck = await _stuck(db, scale_out.scope, seen[plan.index])
                    raise AssertionError(stuck) from exc

        async def kill_once() -> None:
            lost.update(await _kill_midway(storm, db, fleet))

        async with asyncio.TaskGroup() as plays:
            plays.create_task(kill_once())
            for plan in plans:
                plays.create_task(play(plan))
        try:
            await board.until(lambda: board.active() == 0, deadline, "every job to end")
        except AssertionError:
            active = [one for one in seen if board.status(one.job_id) in ("queued", "running")]
            raise AssertionError(
                [await _stuck(db, scale_out.scope, one) for one in active]
            ) from None
        watching.cancel()
    log.info("plan: %s", Counter(p.kind + (f"/{p.moment}" if p.media else "") for p in plans))
    return seen, lost


async def _stuck(db: Database, scope: RedisScope, seen: Seen) -> str:
    """What a scenario that never ended was waiting for: its job's row, and its messages."""
    async with db.read() as session:
        row = await job_store.get(session, seen.job_id) if seen.job_id else None
    columns = ("status", "attempts", "lease_owner", "started_at", "cancel_requested_at")
    shown = {name: getattr(row, name) for name in columns} if row is not None else None
    marked = scope.client.exists(f"{scope.namespace}:dispatched:{seen.job_id}")
    unacked = scope.client.hvals(f"{scope.namespace}:unacked")
    held = sum(seen.job_id.encode() in message for message in unacked)
    return (
        f"stuck: {seen.plan} {seen.job_id}: {shown}; dispatch mark: {marked}, unacknowledged "
        f"messages: {held}; the client saw {seen.cancels}"
    )


async def _kill_midway(storm: Storm, db: Database, fleet: Fleet) -> set[str]:
    """SIGKILL the worker once a third of the plans have started and it runs at least two
    media jobs, and start another at once. The ids of the jobs it was running."""
    board = storm.board
    await board.until(
        lambda: storm.started >= JOBS // 3 and board.count("running") >= 2,
        storm.deadline,
        "the worker to be busy midway",
    )
    fleet.workers[0].kill()
    async with db.read() as session:
        running = select(Job.id).where(Job.status == "running", Job.category != "chat")
        lost = set((await session.scalars(running)).all())
    fleet.start()
    log.info("killed the worker as it ran %d jobs", len(lost))
    return lost


# -- the audit -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Books:
    rows: dict[str, Job]
    kinds: dict[str, list[str]]  # job id: its ledger lines' kinds, sorted
    entries: list[LedgerEntry]
    keys: list[ApiKey]


async def _books(db: Database) -> Books:
    async with db.read() as session:
        rows = {j.id: j for j in (await session.scalars(select(Job))).all()}
        entries = list((await session.scalars(select(LedgerEntry))).all())
        keys = list((await session.scalars(select(ApiKey))).all())
    kinds: dict[str, list[str]] = {job_id: [] for job_id in rows}
    for entry in entries:
        if entry.job_id is not None:
            kinds.setdefault(entry.job_id, []).append(entry.kind)
    return Books(rows, {k: sorted(v) for k, v in kinds.items()}, entries, keys)


async def _audit(db: Database, url: str, seen: Sequence[Seen], lost: set[str], root: Path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        await _cancel_every_job_again(client, seen)
        books = await _books(db)
        assert len(books.rows) == JOBS
        assert {s.job_id for s in seen} == set(books.rows)
        assert Counter(r.status for r in books.rows.values()).keys() <= {"completed", "canceled"}
        for one in seen:
            row = books.rows[one.job_id]
            _check_cancels(one, row)
            if one.plan.media:
                _check_media(one, row, books.kinds[row.id], root)
                await _check_served(client, one, row)
            else:
                _check_chat(one, row, books.kinds[row.id])
        await _check_no_leftovers(client, books, lost, root)
    _check_ledger(books)
    await _check_nothing_runs(db, books)
    outcome = Counter(
        f"{s.plan.kind}/{s.plan.moment or '-'}:{_ended(books.rows[s.job_id])}" for s in seen
    )
    answers = Counter(_answer(c) for s in seen for c in s.cancels[:-1])
    log.info("outcomes: %s", dict(sorted(outcome.items())))
    log.info("cancel answers during the storm: %s; lost at the kill: %d", answers, len(lost))


def _ended(row: Job) -> str:
    """How the job ended, for the log: a media job cancelled before it started says so."""
    queued = row.status == "canceled" and row.category != "chat" and row.started_at is None
    return f"{row.status} while queued" if queued else row.status


def _answer(cancel: Cancel) -> str:
    return f"{cancel.status} {cancel.body.get('status') or cancel.body.get('error')}"


async def cancel(client: httpx.AsyncClient, seen: Seen, times: int = 1) -> None:
    """Cancel the job ``times`` times at once, keeping every answer."""
    assert seen.key is not None

    async def one(key: IssuedKey) -> None:
        sent = time.time()
        response = await client.post(f"/v1/jobs/{seen.job_id}/cancel", headers=auth(key))
        seen.cancels.append(Cancel(sent, response.status_code, response.json()))

    await asyncio.gather(*(one(seen.key) for _ in range(times)))


async def _cancel_every_job_again(client: httpx.AsyncClient, seen: Sequence[Seen]) -> None:
    """Every job has ended: each cancel now must answer 409, naming how the job ended (checked
    with the rest), and refund nothing (the ledger is read after these)."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def again(one: Seen) -> None:
        async with slots:
            await cancel(client, one)

    await asyncio.gather(*(again(one) for one in seen))


def _check_cancels(one: Seen, row: Job) -> None:
    *during, final = one.cancels
    ended = {"error": f"Job already {row.status}"}
    assert (final.status, final.body) == (409, ended), (one.plan, row.id, final)
    for answer in during:
        _check_answer(one, row, answer)


def _check_answer(one: Seen, row: Job, answer: Cancel) -> None:
    what = f"{one.plan} {row.id} ended {row.status}; a cancel answered {answer}"
    if answer.status == 409:  # the job had ended: the answer names how, for good
        assert answer.body == {"error": f"Job already {row.status}"}, what
        return
    assert answer.status == 200, what
    shown = answer.body["status"]
    if row.status == "canceled":  # shown as it ended, or still stopping after the wait
        assert shown in ("failed", "processing"), what
        assert shown == "processing" or answer.body["error"] == "canceled", what
        return
    # Completed although a cancel was accepted: only a cancel that met the job at its very end
    # (a media job that had done its work, a chat whose last chunk was out) may find it so. A
    # media job claimed after the cancel was sent cannot have been at its end when the cancel
    # was read (unless reading it took longer than the whole job): the cancel was lost.
    assert shown == "completed", what
    if one.plan.media:
        assert row.started_at is not None and row.started_at < answer.sent, f"lost: {what}"


def _output_key(row: Job) -> str:
    """Where the job's output is (or would be) published."""
    return f"{FOLDERS[row.model]}/{row.result_id or row.id}.png"


def _check_media(one: Seen, row: Job, kinds: list[str], root: Path) -> None:
    key, what = _output_key(row), f"{one.plan} {row.id} ended {row.status}"
    if row.status == "completed":
        assert kinds == ["charge"], what
        assert row.output_keys == [key], what
        assert (root / key).is_file(), what
        return
    assert one.plan.moment != "never", what
    assert kinds == ["charge", "refund"], what
    assert not row.output_keys and row.output_url is None, what
    assert not (root / key).exists(), what


async def _check_served(client: httpx.AsyncClient, one: Seen, row: Job) -> None:
    assert one.key is not None
    key = _output_key(row)
    served = await client.get(f"/files/{key}")
    job = (await client.get(f"/v1/jobs/{row.id}", headers=auth(one.key))).json()
    if row.status == "completed":
        assert served.status_code == 200 and served.content.startswith(PNG), row.id
        assert job["status"] == "completed" and job["outputUrl"].endswith(f"/files/{key}"), job
    else:
        assert served.status_code == 404, (row.id, served.status_code)
        assert (job["status"], job["error"]) == ("failed", "canceled"), job
        assert "outputUrl" not in job, job


# How each kind of chat must end; "ticks" may end either way.
CHAT_ENDS = {"endless": "canceled", "hang": "canceled", "echo": "completed", "plain": "completed"}


def _check_chat(one: Seen, row: Job, kinds: list[str]) -> None:
    what = f"{one.plan} {row.id} ended {row.status}, its client saw {one.finish}"
    assert kinds == ["charge"], what  # a chat keeps its charge, cancelled or not
    assert row.status == CHAT_ENDS.get(one.plan.kind, row.status), what
    assert one.finish == ("cancelled" if row.status == "canceled" else "stop"), what
    if one.plan.kind in STREAMS:
        assert one.done and one.after_finish == 0, what  # nothing after its last chunk


def _check_ledger(books: Books) -> None:
    for key in books.keys:
        own = [e.amount for e in books.entries if e.key_id == key.id]
        assert key.credits == sum(own), key.id
    for entry in books.entries:
        if entry.job_id is not None:
            credits = books.rows[entry.job_id].credits
            assert entry.amount == {"charge": -credits, "refund": credits}[entry.kind], entry.id


async def _check_no_leftovers(
    client: httpx.AsyncClient, books: Books, lost: set[str], root: Path
) -> None:
    """On disk: the outputs of the completed jobs; besides them, at most what the killed worker
    had staged for the jobs it was running (no process was left to delete it), never served."""
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    done = [r for r in books.rows.values() if r.status == "completed"]
    outputs = {key for row in done for key in row.output_keys or ()}
    assert outputs <= files, outputs - files
    for path in sorted(files - outputs):
        assert (await client.get(f"/files/{path}")).status_code == 404, path
        owner = next((row for job_id, row in books.rows.items() if job_id in path), None)
        assert owner is not None and owner.id in lost, (
            f"{path} left behind by a run the kill did not lose: "
            f"{owner and (owner.id, owner.status, owner.attempts)}"
        )


async def _check_nothing_runs(db: Database, books: Books) -> None:
    async with db.read() as session:
        for key in books.keys:
            assert await job_store.count_running_for_key(session, key.id) == 0, key.id


async def _probe_slots(scale_out: ScaleOut, db: Database, url: str) -> None:
    """One job per worker slot, all at once: each slot is free again if all run together."""
    key = await new_key(db, scale_out.scope)
    body = {"model": "scaleout-storm-video", "prompt": "the last one", "seconds": PROBE_S}
    headers = {**auth(key), "Prefer": "respond-async"}
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        replies = [
            await client.post("/v1/videos/generate", json=body, headers=headers)
            for _ in range(SLOTS)
        ]
    ids = [r.json()["jobId"] for r in replies]
    board = Board(db, key.info.id)
    deadline = time.monotonic() + work_deadline(SLOTS, PROBE_S, 1, overhead=30)
    async with asyncio.TaskGroup() as group:
        watching = group.create_task(board.run())
        await board.until(lambda: board.count("running") == SLOTS, deadline, "every slot busy")
        await board.until(lambda: board.count("completed") == SLOTS, deadline, "the last jobs")
        watching.cancel()
    assert set(board.rows) == set(ids)
