"""Dynamic batching (``engines.local.batching``) and the visible steps of ``diffusers-image``.

The batcher is tested first on its own, without torch: its work is a function the test holds
and releases, its clock is fixed and its window is an event the test sets, so "the window was
never awaited" is a fact, not a timing. Then the engine, on a tiny random SD pipeline loaded
through its real path: a job that must queue behind a running batch is made to by holding the
first batch's denoiser in its first step (a forward hook), until the others report that they
wait for a batch. Every wait ends on an event; the timeouts only bound a failure.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image

from hyperlocal.api.routes.jobs import _sse
from hyperlocal.app import create_app
from hyperlocal.core import keys
from hyperlocal.core.events import JobEvent, _wire
from hyperlocal.core.keys import KeySpec
from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    MediaInput,
    MediaKind,
    StepMessage,
)
from hyperlocal.engines.local.batching import Batch, Batcher, Policy, Stopped
from hyperlocal.engines.media.progress import Mailbox
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings
from tests.conftest import SettingsFactory, auth, services_of
from tests.support import TEST_ENGINES, tiny_png

TIMEOUT_S = 120.0  # bounds a failure only
KEY = "one pass"


async def ignore(_fraction: float, _message: str | None) -> None:
    return None


class Work:
    """The batcher's work: records each batch's jobs and answers ``job + "!"``; holds the
    first batch until ``release`` is set when asked to."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.batches: list[tuple[str, ...]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.live_at_release: list[bool] = []
        if not hold_first:
            self.release.set()

    async def __call__(self, key: str, batch: Batch[str]) -> list[str]:
        assert key == KEY
        self.batches.append(batch.jobs)
        first = len(self.batches) == 1
        self.started.set()
        if first:
            await self.release.wait()
            self.live_at_release = [batch.live(i) for i in range(len(batch))]
        return [job + "!" for job in batch.jobs]


class Window:
    """The batcher's window: notes each length asked for, and passes once ``passed`` is set."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.opened = asyncio.Event()
        self.passed = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.opened.set()
        await self.passed.wait()


def batcher(work: Callable[..., Any], window: Window) -> Batcher[str, str, str]:
    return Batcher(work, clock=lambda: 100.0, window=window)


def submit(jobs: Batcher[str, str, str], job: str, policy: Policy) -> asyncio.Task[str]:
    return asyncio.create_task(jobs.submit(KEY, job, ignore, policy))


async def settled(*tasks: asyncio.Task[Any]) -> None:
    done, _ = await asyncio.wait(set(tasks), timeout=TIMEOUT_S)
    assert done == set(tasks), "a job never ended"


# -- the batcher, without torch ----------------------------------------------------------


async def test_a_lone_job_runs_at_once_and_never_awaits_the_window() -> None:
    work, window = Work(), Window()
    window.passed.set()  # were it asked for, it would pass at once: only ``asked`` tells
    jobs = batcher(work, window)
    result = await asyncio.wait_for(jobs.submit(KEY, "a", ignore, Policy(4, 60.0)), TIMEOUT_S)
    assert result == "a!"
    assert work.batches == [("a",)]
    assert window.asked == []


async def test_jobs_that_queue_behind_a_batch_run_together_as_the_next() -> None:
    work, window = Work(hold_first=True), Window()
    jobs, policy = batcher(work, window), Policy(4, 60.0)
    first = submit(jobs, "a", policy)
    await work.started.wait()
    later = [submit(jobs, job, policy) for job in "bcde"]
    await asyncio.sleep(0)  # each task's first step (joining the lane) runs before this resumes
    assert jobs.waiting(KEY) == 4
    work.release.set()
    await settled(first, *later)
    assert [t.result() for t in (first, *later)] == ["a!", "b!", "c!", "d!", "e!"]
    assert work.batches == [("a",), ("b", "c", "d", "e")]
    assert window.asked == []  # full: it left without waiting


async def test_a_gathering_batch_waits_for_its_window_and_takes_who_comes() -> None:
    work, window = Work(hold_first=True), Window()
    jobs, policy = batcher(work, window), Policy(4, 60.0)
    first = submit(jobs, "a", policy)
    await work.started.wait()
    queued = [submit(jobs, "b", policy), submit(jobs, "c", policy)]
    await asyncio.sleep(0)
    work.release.set()
    await window.opened.wait()  # two behind a batch: the window opens for more
    assert window.asked == [60.0]  # from the oldest one's arrival, on the injected clock
    late = submit(jobs, "d", policy)
    await asyncio.sleep(0)
    assert jobs.waiting(KEY) == 3
    window.passed.set()
    await settled(first, *queued, late)
    assert work.batches == [("a",), ("b", "c", "d")]


async def test_jobs_arriving_together_gather_until_the_batch_is_full() -> None:
    work, window = Work(), Window()
    jobs, policy = batcher(work, window), Policy(3, 60.0)
    together = [submit(jobs, "a", policy), submit(jobs, "b", policy)]
    await window.opened.wait()
    third = submit(jobs, "c", policy)
    await settled(*together, third)
    assert work.batches == [("a", "b", "c")]
    assert not window.passed.is_set()  # full before its window passed


async def test_a_job_cancelled_in_the_window_leaves_the_batch() -> None:
    work, window = Work(), Window()
    jobs, policy = batcher(work, window), Policy(4, 60.0)
    first, leaves, third = (submit(jobs, job, policy) for job in "abc")
    await window.opened.wait()
    leaves.cancel()
    await settled(leaves)
    assert leaves.cancelled() and jobs.waiting(KEY) == 2
    window.passed.set()
    await settled(first, third)
    assert (first.result(), third.result()) == ("a!", "c!")
    assert work.batches == [("a", "c")]


async def test_a_job_cancelled_mid_batch_ends_alone_and_the_others_complete() -> None:
    work, window = Work(hold_first=True), Window()
    jobs, policy = batcher(work, window), Policy(2, 60.0)
    leaves, stays = submit(jobs, "a", policy), submit(jobs, "b", policy)
    await work.started.wait()
    assert work.batches == [("a", "b")]
    leaves.cancel()
    await settled(leaves)  # while its batch still runs
    assert leaves.cancelled() and not work.release.is_set()
    work.release.set()
    await settled(stays)
    assert stays.result() == "b!"
    assert work.live_at_release == [False, True]  # the work saw it leave


async def test_the_last_job_cancelled_stops_its_batch_and_waits_for_it() -> None:
    in_step, step_done, stopped = threading.Event(), threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def steps(batch: Batch[str]) -> list[str]:
        try:
            while True:
                batch.report(0.5, "a step")
                in_step.set()
                step_done.wait(TIMEOUT_S)  # a long step, in flight when the job is cancelled
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            stopped.set()

    async def work(_key: str, batch: Batch[str]) -> list[str]:
        return await asyncio.to_thread(steps, batch)

    jobs = batcher(work, Window())
    task = submit(jobs, "a", Policy(4, 60.0))
    assert await asyncio.to_thread(in_step.wait, TIMEOUT_S)
    task.cancel()
    # A wait that ends early can only let this pass wrongly, never fail it wrongly.
    done, _ = await asyncio.wait({task}, timeout=0.3)
    assert not done, "the job ended while its step was in flight"
    step_done.set()
    await settled(task)
    assert task.cancelled() and stopped.is_set()
    assert [type(e) for e in raised] == [Stopped]


async def test_without_batching_the_jobs_of_one_key_run_side_by_side() -> None:
    calls: list[tuple[str, ...]] = []
    both_in = asyncio.Event()  # set once both calls run: a queued second would never come

    async def work(_key: str, batch: Batch[str]) -> list[str]:
        calls.append(batch.jobs)
        if len(calls) == 2:
            both_in.set()
        await both_in.wait()
        return [job + "!" for job in batch.jobs]

    jobs = batcher(work, Window())
    tasks = [submit(jobs, job, Policy(1, 60.0)) for job in "ab"]
    await settled(*tasks)
    assert sorted(calls) == [("a",), ("b",)]
    assert [t.result() for t in tasks] == ["a!", "b!"]


async def test_an_error_of_the_batch_fails_each_of_its_jobs() -> None:
    async def work(_key: str, _batch: Batch[str]) -> list[str]:
        raise GenerationError("the model would not load")

    jobs, policy = batcher(work, Window()), Policy(2, 60.0)
    both = [submit(jobs, "a", policy), submit(jobs, "b", policy)]
    await settled(*both)
    for task in both:
        with pytest.raises(GenerationError, match="would not load"):
            task.result()


async def test_each_job_hears_its_own_reports() -> None:
    def steps(batch: Batch[str]) -> list[str]:
        batch.report(0.1, "for both")
        for index, job in enumerate(batch.jobs):
            batch.post(index, 0.5, f"for {job}")
        return list(batch.jobs)

    async def work(_key: str, batch: Batch[str]) -> list[str]:
        return await asyncio.to_thread(steps, batch)

    heard: dict[str, list[str | None]] = {"a": [], "b": []}

    def listener(job: str) -> Callable[[float, str | None], Any]:
        async def progress(_fraction: float, message: str | None) -> None:
            heard[job].append(message)

        return progress

    jobs, policy = Batcher(work), Policy(2, 60.0)
    tasks = [asyncio.create_task(jobs.submit(KEY, j, listener(j), policy)) for j in "ab"]
    await settled(*tasks)
    assert heard["a"][-1] == "for a" and heard["b"][-1] == "for b"


async def test_closing_fails_the_jobs_that_wait() -> None:
    work, window = Work(hold_first=True), Window()
    jobs, policy = batcher(work, window), Policy(1, 60.0)
    running = submit(jobs, "a", policy)
    await work.started.wait()
    waiting = submit(jobs, "b", policy)
    await asyncio.sleep(0)
    closing = asyncio.create_task(jobs.aclose())
    await settled(waiting)
    with pytest.raises(GenerationError, match="closed before this job ran"):
        waiting.result()
    work.release.set()
    await settled(running, closing)
    assert work.batches == [("a",)]


def test_a_preview_waits_in_the_mailbox_while_later_steps_pass() -> None:
    mailbox = Mailbox()
    mailbox.put(0.2, StepMessage(2, 4, "data:image/jpeg;base64,AA=="))
    mailbox.put(0.3, StepMessage(3, 4))
    taken = mailbox.take()
    assert taken == [(0.2, "step 2/4"), (0.3, "step 3/4")]
    kept = taken[0][1]
    assert isinstance(kept, StepMessage) and kept.preview
    assert mailbox.take() == []
    mailbox.put(0.4, StepMessage(4, 4, "data:image/jpeg;base64,AA=="))
    assert len(mailbox.take()) == 1  # the latest is the preview: sent once


def test_a_step_message_is_the_message_it_always_was() -> None:
    message = StepMessage(3, 40)
    assert message == "step 3/40" and isinstance(message, str)
    assert (message.step, message.steps, message.preview) == (3, 40, None)


# -- the wire -------------------------------------------------------------------------------


async def test_progress_events_carry_steps_and_previews_only_where_known() -> None:
    preview = "data:image/jpeg;base64,AA=="
    step = JobEvent("job_1", "progress", "running", 0.5, 3, 4, preview)

    async def stream() -> AsyncIterator[JobEvent | None]:
        for item in (JobEvent("job_1", "progress", "running", 0.3), step):
            yield item

    sent = [chunk async for chunk in _sse("job_1", stream(), storage=None)]  # type: ignore[arg-type]
    data = [json.loads(chunk.split("data: ", 1)[1]) for chunk in sent]
    assert data == [
        {"jobId": "job_1", "progress": 0.3},
        {"jobId": "job_1", "progress": 0.5, "step": 3, "steps": 4, "preview": preview},
    ]
    assert all(chunk.startswith("event: progress\n") for chunk in sent)
    plain = json.loads(_wire(JobEvent("job_1", "status", "running", 0.0)))
    assert plain == {"job_id": "job_1", "kind": "status", "status": "running", "progress": 0.0}
    assert JobEvent(**json.loads(_wire(step))) == step


# -- the engine, on a tiny random pipeline ------------------------------------------------

WEIGHTS = "tiny-sd"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from tests.engines.tiny_models import one_torch_thread, tiny_sd

    root = tmp_path_factory.mktemp("models")
    with one_torch_thread():
        tiny_sd(root / WEIGHTS)
        yield root


def engine_for(models_dir: Path) -> Any:
    from hyperlocal.engines.local import image

    data = models_dir.parent / "data"
    settings = Settings(_env_file=None, data_dir=data, models_dir=models_dir)
    return image.create(EngineContext(settings=settings))


class Gate:
    """Counts the denoiser's forward passes (one a step, for a whole batch) in the pipeline's
    thread, and holds the ones numbered in ``holds`` until each is released."""

    def __init__(self, holds: Sequence[int]) -> None:
        self.count = 0
        self.reached = {n: threading.Event() for n in holds}
        self.released = {n: threading.Event() for n in holds}

    def step(self) -> None:
        self.count += 1
        if self.count in self.reached:
            self.reached[self.count].set()
            self.released[self.count].wait(TIMEOUT_S)

    async def reach(self, n: int) -> None:
        assert await asyncio.to_thread(self.reached[n].wait, TIMEOUT_S), f"step {n} never came"

    def release(self, n: int) -> None:
        self.released[n].set()


@pytest.fixture
def gate() -> Iterator[Callable[..., Gate]]:
    """``gate(n, ...)`` watches the tiny UNet's passes, holding the n-th ones."""
    import torch
    from diffusers import UNet2DConditionModel

    handles: list[Any] = []
    gates: list[Gate] = []

    def watch(*holds: int) -> Gate:
        watched = Gate(holds)
        gates.append(watched)

        def hook(module: Any, _args: Any) -> None:
            if isinstance(module, UNet2DConditionModel):
                watched.step()

        handles.append(torch.nn.modules.module.register_module_forward_pre_hook(hook))
        return watched

    yield watch
    for handle in handles:
        handle.remove()
    for watched in gates:  # a failed test must not leave the pipeline's thread waiting
        for released in watched.released.values():
            released.set()


class Progress:
    """One job's progress: every message, and an event for "waiting for a batch"."""

    def __init__(self) -> None:
        self.messages: list[str | None] = []
        self.queued = asyncio.Event()

    async def __call__(self, _fraction: float, message: str | None) -> None:
        self.messages.append(message)
        if message == "waiting for a batch":
            self.queued.set()

    @property
    def steps(self) -> list[StepMessage]:
        return [m for m in self.messages if isinstance(m, StepMessage)]


async def waited(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"never {what}") from None


def request(
    seed: int,
    *,
    prompt: str = "a lighthouse",
    params: dict[str, InputValue] | None = None,
    options: dict[str, InputValue] | None = None,
    source: tuple[int, int, int] | None = None,
) -> GenerationRequest:
    media = {}
    if source is not None:
        picture = tiny_png(source, (64, 64))
        media = {"image": [MediaInput("image", MediaKind.IMAGE, "image/png", picture, "data:")]}
    return GenerationRequest(
        job_id=f"job_{seed}",
        model="local-sd",
        category=Category.IMAGE,
        params={"prompt": prompt, "size": "64x64", "seed": seed, **(params or {})},
        media=media,
        options={"weights": WEIGHTS, "steps": 3, "max_batch": 4, **(options or {})},
    )


def pixels(result: GenerationResult) -> np.ndarray[Any, Any]:
    return np.asarray(Image.open(io.BytesIO(result.artifacts[0].data)), dtype=np.int16)


def start(
    engine: Any, job: GenerationRequest, progress: Progress | None = None
) -> asyncio.Task[Any]:
    return asyncio.create_task(engine.generate(job, progress or Progress()))


async def behind_a_held_batch(
    engine: Any, gate: Gate, jobs: Sequence[GenerationRequest]
) -> list[asyncio.Task[Any]]:
    """Starts a job that the gate holds in its first step, then ``jobs``, which queue behind
    it; returns once each of them waits for a batch (the first held job's task first)."""
    params = {**jobs[0].params, "seed": 999}  # a job for the same pass as ``jobs``
    blocker = start(engine, replace(jobs[0], job_id="job_blocker", params=params))
    await gate.reach(1)
    listening = [Progress() for _ in jobs]
    tasks = [start(engine, job, heard) for job, heard in zip(jobs, listening, strict=True)]
    for heard in listening:
        await waited(heard.queued, "queued for a batch")
    return [blocker, *tasks]


pytestmark = pytest.mark.filterwarnings(  # diffusers' Euler scheduler vs numpy 2; see image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

PROMPTS = ("a lighthouse", "a red barn", "two cats", "the sea at night")
SOURCES = ((200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 20))


@pytest.mark.parametrize("mode", ["text-to-image", "image-to-image"])
async def test_batched_jobs_paint_what_each_paints_alone(
    models_dir: Path, gate: Callable[..., Gate], mode: str
) -> None:
    sources = SOURCES if mode == "image-to-image" else (None,) * 4
    jobs = [
        request(seed, prompt=prompt, source=source)
        for seed, prompt, source in zip((11, 22, 33, 44), PROMPTS, sources, strict=True)
    ]
    alone_engine = engine_for(models_dir)
    alone = [await alone_engine.generate(job, Progress()) for job in jobs]
    await alone_engine.aclose()
    assert {r.extra["batch"] for r in alone} == {1.0}

    engine = engine_for(models_dir)
    held = gate(1)
    blocker, *batched = await behind_a_held_batch(engine, held, jobs)
    held.release(1)
    await settled(blocker, *batched)
    for job, one, many in zip(jobs, alone, (t.result() for t in batched), strict=True):
        assert many.extra["batch"] == 4.0 and many.extra["mode"] == mode
        assert many.extra["seed"] == float(job.params["seed"])  # type: ignore[arg-type]
        difference = np.abs(pixels(one) - pixels(many))
        assert difference.max() <= 2, f"seed {job.params['seed']} drew another picture"
    assert not np.array_equal(pixels(alone[0]), pixels(alone[1]))  # the seeds matter
    await engine.aclose()


async def test_a_job_cancelled_mid_batch_ends_alone_while_the_others_complete(
    models_dir: Path, gate: Callable[..., Gate]
) -> None:
    engine = engine_for(models_dir)
    options: dict[str, InputValue] = {"steps": 4, "max_batch": 3}
    jobs = [request(seed, options=options) for seed in (1, 2, 3)]
    held = gate(1, 4 + 2)  # the blocker's first step, and the batch's second
    blocker, first, leaving, third = await behind_a_held_batch(engine, held, jobs)
    held.release(1)
    await held.reach(6)
    leaving.cancel()
    await settled(leaving)  # while its batch's step is still held
    assert leaving.cancelled()
    held.release(6)
    await settled(blocker, first, third)
    assert [t.result().extra["batch"] for t in (first, third)] == [3.0, 3.0]
    assert held.count == 4 + 4  # the batch ran all its steps for the others
    await engine.aclose()


async def test_the_window_adds_no_wait_for_a_lone_job(models_dir: Path) -> None:
    engine = engine_for(models_dir)
    job = request(5, options={"batch_window_ms": 600_000})  # a ten-minute window
    result = await asyncio.wait_for(engine.generate(job, Progress()), TIMEOUT_S)
    assert result.extra["batch"] == 1.0
    await engine.aclose()


async def test_a_job_that_fails_its_checks_fails_alone(
    models_dir: Path, gate: Callable[..., Gate]
) -> None:
    engine = engine_for(models_dir)
    held = gate(1)
    good = [request(seed, options={"max_batch": 2}) for seed in (1, 2)]
    blocker, *tasks = await behind_a_held_batch(engine, held, good)
    bad = request(3, params={"size": "huge"}, options={"max_batch": 2})
    with pytest.raises(GenerationError, match="size must be WIDTHxHEIGHT"):
        await engine.generate(bad, Progress())
    held.release(1)
    await settled(blocker, *tasks)
    assert [t.result().extra["batch"] for t in tasks] == [2.0, 2.0]
    await engine.aclose()


async def test_steps_and_previews_reach_the_progress(models_dir: Path) -> None:
    engine = engine_for(models_dir)
    heard, quiet = Progress(), Progress()
    options: dict[str, InputValue] = {"steps": 4, "preview_every": 2}
    wide: dict[str, InputValue] = {
        "size": "320x128"
    }  # latents of 80x32 (the tiny VAE downsamples by 4): shrunk
    await engine.generate(request(7, params={**wide, "preview": True}, options=options), heard)
    await engine.generate(request(7, params=wide, options=options), quiet)

    assert heard.steps and all(m.steps == 4 and 1 <= m.step <= 4 for m in heard.steps)
    numbers = [m.step for m in heard.steps]
    assert numbers == sorted(numbers)
    previews = [m for m in heard.steps if m.preview is not None]
    assert previews and all(m.step % 2 == 0 for m in previews)
    for message in previews:
        assert message.preview is not None
        head, _, data = message.preview.partition(",")
        assert head == "data:image/jpeg;base64"
        picture = Image.open(io.BytesIO(base64.b64decode(data)))
        assert picture.format == "JPEG" and picture.size[0] == 64 and picture.size[1] < 32
    assert quiet.steps and all(m.preview is None for m in quiet.steps)
    await engine.aclose()


async def test_a_bad_preview_flag_fails_the_job(models_dir: Path) -> None:
    engine = engine_for(models_dir)
    with pytest.raises(GenerationError, match="preview must be true or false"):
        await engine.generate(request(1, params={"preview": "yes"}), Progress())
    await engine.aclose()


@pytest.mark.parametrize("jobs", [1, 2], ids=["alone", "a batch of two"])
async def test_a_cancel_stops_the_pipeline_at_the_next_step(
    models_dir: Path, gate: Callable[..., Gate], jobs: int
) -> None:
    engine = engine_for(models_dir)
    options: dict[str, InputValue] = {"steps": 50, "max_batch": jobs}
    batch = [request(seed, options=options) for seed in range(1, jobs + 1)]
    if jobs == 1:
        before, held = 0, gate(3)
        tasks = [start(engine, batch[0])]
    else:  # the two queue behind a held job of 50 steps, then run as one batch
        before, held = 50, gate(1, 50 + 3)
        blocker, *tasks = await behind_a_held_batch(engine, held, batch)
        held.release(1)
        await settled(blocker)
    await held.reach(before + 3)  # step 3 in flight: steps 1 and 2 are done
    for task in tasks:
        task.cancel()
    # While its step is in flight the last job is not over (the model is not free): a wait
    # that ends early can only let this pass wrongly, never fail it wrongly.
    done, _ = await asyncio.wait(set(tasks), timeout=0.3)
    assert done != set(tasks), "every job ended while the step was in flight"
    held.release(before + 3)
    await settled(*tasks)
    assert all(t.cancelled() for t in tasks)
    assert held.count == before + 3, "a step started after the cancel"
    await engine.aclose()


# -- through the job runner: the job's events ------------------------------------------------

CATALOG = """
[[model]]
id = "local-sd"
category = "image"
name = "Tiny SD"
engine = "diffusers-image"
engine_options = { weights = "tiny-sd", steps = 4, preview_every = 2, max_batch = 4 }
price = { kind = "flat", credits = 1 }
inputs.prompt = { type = "string", required = true }
inputs.size = { type = "string" }
inputs.preview = { type = "boolean" }
"""


async def test_the_jobs_events_carry_its_steps_and_previews(
    models_dir: Path, make_settings: SettingsFactory, gate: Callable[..., Gate]
) -> None:
    catalog = models_dir.parent / "batching-catalog.toml"
    catalog.write_text(CATALOG)
    app = create_app(make_settings(catalog=catalog, models_dir=models_dir), engines=TEST_ENGINES)
    held = gate(1)  # the job waits in its first step until the test listens
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        services = services_of(app)
        spec = KeySpec(name="test", credits=100, rate_limit=1000, max_running_jobs=15)
        key = await keys.create_key(services.db, spec)
        body = {"model": "local-sd", "prompt": "a lighthouse", "size": "64x64", "preview": True}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = {**auth(key), "Prefer": "respond-async"}
            response = await client.post("/v1/images/generate", json=body, headers=headers)
            assert response.status_code == 202, response.text
            job_id = response.json()["jobId"]
            events: list[JobEvent] = []
            async with services.events.subscribe(job_id) as stream:
                held.release(1)
                async for event in stream:
                    events.append(event)
                    if event.terminal:
                        break
    assert events[-1].status == "completed"
    stepped = [e for e in events if e.kind == "progress" and e.step is not None]
    assert stepped and all(e.steps == 4 for e in stepped)
    previews = [e.preview for e in stepped if e.preview is not None]
    assert previews, "no preview reached the job's events"
    picture = Image.open(io.BytesIO(base64.b64decode(previews[-1].partition(",")[2])))
    assert picture.format == "JPEG" and max(picture.size) <= 64
