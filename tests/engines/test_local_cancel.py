"""Cancelling a local-weights job stops its model at the next step (spec §12).

A job is cancelled by cancelling the task that awaits ``engine.generate``. The adapters run the
model in a worker thread, and each step's progress report raises there once the job is
cancelled, which ends the model's loop. Each test here holds the model's third step in flight
(as a long step on a real accelerator would be), cancels the job, checks that ``generate`` gave
up without waiting for that step, lets the step finish, and counts the steps: none may start
after the one in flight, and the model call must end by raising, so no frames are decoded or
encoded for nobody. The models are the tiny random ones, loaded through the real paths; only
``hy3dgen``, which cannot be installed here, is a stand-in that keeps its published contract.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.machinery
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.local import diffusion, image, mesh, music, video
from hyperlocal.settings import Settings
from tests.engines.tiny_models import (
    one_torch_thread,
    tiny_animatediff,
    tiny_musicgen,
    tiny_sd,
    tiny_svd,
)
from tests.support import tiny_png

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

pytestmark = pytest.mark.filterwarnings(  # diffusers' Euler scheduler vs numpy 2; see image tests
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

STEPS = 40  # asked for; a job that ignored the cancel would run all of them
HELD = 3  # the step held in flight when the job is cancelled
TIMEOUT_S = 120.0  # bounds a failure only: every wait below ends on an event
STEP = re.compile(r"step (\d+)/\d+")


class HeldStep:
    """Counts a model's steps in the worker thread and holds the ``hold``-th in flight until
    ``release`` is set; each ``step()`` call is one step starting."""

    def __init__(self) -> None:
        self.hold = HELD
        self.count = 0
        self.in_flight = threading.Event()
        self.release = threading.Event()

    def step(self) -> None:
        self.count += 1
        if self.count == self.hold:
            self.in_flight.set()
            self.release.wait(TIMEOUT_S)


class Call:
    """Notes when a wrapped model call ends, and whether it returned or raised."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.raised: BaseException | None = None

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            self.raised = exc
            raise
        finally:
            self.ended.set()


class Progress:
    """The job's progress callback; ``reported()`` waits for a report of step 2 or later."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()

    async def __call__(self, fraction: float, message: str | None) -> None:
        if message and (found := STEP.fullmatch(message)) and int(found[1]) >= 2:
            self.reached.set()

    async def reported(self) -> bool:
        try:
            await asyncio.wait_for(self.reached.wait(), TIMEOUT_S)
        except TimeoutError:
            return False
        return True


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny_sd(root / "tiny-sd")
    tiny_animatediff(root / "tiny-animatediff")
    tiny_svd(root / "tiny-svd")
    tiny_musicgen(root / "tiny-musicgen")
    return root


def context(models_dir: Path) -> EngineContext:
    settings = Settings(_env_file=None, data_dir=models_dir.parent / "data", models_dir=models_dir)  # type: ignore[call-arg]
    return EngineContext(settings=settings)


@pytest.fixture
def held() -> Iterator[HeldStep]:
    held = HeldStep()
    yield held
    held.release.set()  # a failed test must not leave the worker thread waiting


@pytest.fixture
def model_steps(held: HeldStep) -> Iterator[Callable[..., HeldStep]]:
    """Makes each forward pass of the given model class (the denoiser, or MusicGen's model:
    one pass a step) a step of ``held``, through a global torch hook removed afterwards."""
    handles: list[Any] = []

    def watch(model: type, hold: int = HELD) -> HeldStep:
        held.hold = hold

        def hook(module: Any, _args: Any) -> None:
            if isinstance(module, model):
                held.step()

        handles.append(torch.nn.modules.module.register_module_forward_pre_hook(hook))
        return held

    yield watch
    for handle in handles:
        handle.remove()


def request(
    weights: str,
    params: dict[str, InputValue],
    *,
    options: dict[str, InputValue] | None = None,
    image_input: bool = False,
    category: Category = Category.IMAGE,
) -> GenerationRequest:
    picture = MediaInput("image", MediaKind.IMAGE, "image/png", tiny_png(size=(64, 64)), "")
    return GenerationRequest(
        job_id="job_1",
        model="local",
        category=category,
        params=params,
        media={"image": [picture]} if image_input else {},
        options={"weights": weights, "steps": STEPS, **(options or {})},
    )


async def cancel_mid_step(
    engine: Engine, job: GenerationRequest, held: HeldStep, call: Call
) -> None:
    """Runs ``job``, cancels it while the held step is in flight, and checks that the model
    stops once that step ends."""
    progress = Progress()
    task = asyncio.create_task(engine.generate(job, progress))
    assert await asyncio.to_thread(held.in_flight.wait, TIMEOUT_S), "the model never got going"
    assert await progress.reported(), "no step reached the job's progress"

    task.cancel()
    # While the model is inside its step, the job is not over: generate waits for the step,
    # so the job's refund and worker slot wait for the work to stop (spec §12). A wait that
    # ends early can only let this pass wrongly, never fail it wrongly.
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert not done and not call.ended.is_set()

    held.release.set()
    done, _ = await asyncio.wait({task}, timeout=TIMEOUT_S)
    assert task in done and task.cancelled()
    assert call.ended.is_set(), "generate returned before the model stopped"
    assert held.count == held.hold  # the step in flight finished; no other started
    assert call.raised is not None  # so nothing was decoded or encoded after it


@pytest.fixture
def pipeline_call(monkeypatch: pytest.MonkeyPatch) -> Call:
    """Watches the diffusers pipeline call that the image and video adapters make."""
    call = Call()
    monkeypatch.setattr(
        diffusion, "call_supported", functools.partial(call.run, diffusion.call_supported)
    )
    return call


@pytest.mark.parametrize("image_input", [False, True], ids=["text-to-image", "image-to-image"])
async def test_image_stops_at_the_next_denoising_step(
    models_dir: Path,
    model_steps: Callable[..., HeldStep],
    pipeline_call: Call,
    image_input: bool,
) -> None:
    from diffusers import UNet2DConditionModel

    held = model_steps(UNet2DConditionModel)
    engine = image.create(context(models_dir))
    params: dict[str, InputValue] = {"prompt": "a lighthouse", "size": "64x64"}
    options: dict[str, InputValue] = {"strength": 1.0}  # image-to-image: all 40 steps
    job = request("tiny-sd", params, options=options, image_input=image_input)
    await cancel_mid_step(engine, job, held, pipeline_call)

    # the model is free again, and sound: the next job runs on it
    result = await engine.generate(request("tiny-sd", params, options={"steps": 1}), Progress())
    assert result.artifacts
    await engine.aclose()


@pytest.mark.parametrize(
    ("weights", "image_input"),
    [("tiny-animatediff", False), ("tiny-svd", True)],
    ids=["text-to-video", "image-to-video"],
)
async def test_video_stops_at_the_next_denoising_step(
    models_dir: Path,
    model_steps: Callable[..., HeldStep],
    pipeline_call: Call,
    weights: str,
    image_input: bool,
) -> None:
    from diffusers import UNetMotionModel, UNetSpatioTemporalConditionModel

    held = model_steps(UNetSpatioTemporalConditionModel if image_input else UNetMotionModel)
    engine = video.create(context(models_dir))
    params: dict[str, InputValue] = {"prompt": "waves", "size": "96x64", "duration": 0.25}
    options: dict[str, InputValue] = {"fps": 8, "guidance": 1.0}
    job = request(
        weights, params, options=options, image_input=image_input, category=Category.VIDEO
    )
    await cancel_mid_step(engine, job, held, pipeline_call)
    await engine.aclose()


async def test_music_stops_at_the_next_decoding_step(
    models_dir: Path,
    model_steps: Callable[..., HeldStep],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformers import MusicgenForConditionalGeneration

    # one forward pass per new token, but transformers 5 runs MusicGen's first (prefill) pass
    # twice: holding the fourth pass still holds a step after step 2 is reported
    held = model_steps(MusicgenForConditionalGeneration, hold=HELD + 1)
    call = Call()
    generate = MusicgenForConditionalGeneration.generate
    monkeypatch.setattr(
        MusicgenForConditionalGeneration,
        "generate",
        lambda model, *args, **kwargs: call.run(generate, model, *args, **kwargs),
    )
    engine = music.create(context(models_dir))
    job = request("tiny-musicgen", {"prompt": "calm piano", "duration": 2}, category=Category.AUDIO)
    await cancel_mid_step(engine, job, held, call)
    await engine.aclose()


def hy3dgen(held: HeldStep, call: Call) -> types.ModuleType:
    """A stand-in for ``hy3dgen`` (Tencent's Hunyuan3D-2 package, which cannot be installed
    here) with its shape pipeline's contract: ``callback``/``callback_steps`` in the keyword
    arguments, ``callback(step, t, outputs)`` after each denoising step, then the mesh."""

    class Pipeline:
        @classmethod
        def from_single_file(cls, *_args: Any, **_kwargs: Any) -> Pipeline:
            return cls()

        def __call__(self, *, num_inference_steps: int = 50, **kwargs: Any) -> list[Any]:
            return call.run(self._denoise, num_inference_steps, **kwargs)  # type: ignore[no-any-return]

        def _denoise(self, steps: int, **kwargs: Any) -> list[Any]:
            callback, every = kwargs.pop("callback", None), kwargs.pop("callback_steps", None)
            for i in range(steps):
                held.step()
                if callback is not None and i % every == 0:
                    callback(i, 1.0 - i / steps, None)
            return [None]  # no surface found: the adapter refuses it

    package = types.ModuleType("hy3dgen")
    package.__spec__ = importlib.machinery.ModuleSpec("hy3dgen", None)
    shapegen = types.ModuleType("hy3dgen.shapegen")
    shapegen.Hunyuan3DDiTFlowMatchingPipeline = Pipeline  # type: ignore[attr-defined]
    package.shapegen = shapegen  # type: ignore[attr-defined]
    return package


async def test_mesh_stops_at_the_next_denoising_step(
    tmp_path: Path, held: HeldStep, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = Call()
    package = hy3dgen(held, call)
    monkeypatch.setitem(sys.modules, "hy3dgen", package)
    monkeypatch.setitem(sys.modules, "hy3dgen.shapegen", package.shapegen)
    shape = tmp_path / "models" / "hunyuan3d-2" / mesh.SUBFOLDER
    shape.mkdir(parents=True)
    for name in ("config.yaml", "model.fp16.safetensors"):
        (shape / name).write_bytes(b"placeholder")
    engine = mesh.create(context(tmp_path / "models"))
    job = request("hunyuan3d-2", {}, image_input=True, category=Category.THREE_D)
    await cancel_mid_step(engine, job, held, call)
    await engine.aclose()
