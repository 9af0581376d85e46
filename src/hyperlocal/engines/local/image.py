"""The ``diffusers-image`` engine: text-to-image and image-to-image with local diffusers weights.

Any folder that ``AutoPipelineForText2Image`` loads works: SD-Turbo, SDXL-Turbo and
FLUX.1-schnell are the fast ones. Image-to-image reuses the loaded parts through
``AutoPipelineForImage2Image.from_pipe``, so one load serves both. Engine options:

- ``weights`` (required): the folder name under the models directory;
- ``steps`` (4) and ``guidance`` (0.0): right for the distilled turbo/schnell models; a
  classic SD/SDXL checkpoint wants about 30 and 7;
- ``strength`` (0.6): how far image-to-image departs from the source;
- ``long_side`` (1024): the long side when the request gives ``aspect_ratio`` but no ``size``
  or ``resolution`` (512 suits SD-Turbo and SDXL-Turbo);
- ``device`` and ``dtype``: override CUDA/float16 (or CPU/float32); FLUX wants bfloat16;
- ``max_batch`` (1, which turns batching off) and ``batch_window_ms`` (20): dynamic batching,
  below;
- ``preview_every`` (5): how many steps apart a job that asked for previews gets one.

The seed is the request's ``seed``, else derived from the job id, so a retried job repeats.

**Steps and previews.** Each denoising step reaches the job's progress as a ``StepMessage``
(``step`` and ``steps``, which the job's events carry). A request with ``preview: true`` (a
boolean input: an operator's catalogue entry declares it, ``inputs.preview = { type =
"boolean" }``, to offer it) also gets, every ``preview_every`` steps, a JPEG of at most 64 px
on its long side, projected from the latents with ComfyUI's fixed "latent2rgb" factors (SD 1.x
and 2.x, and SDXL; none for other latent families): no VAE decode, no extra weights. Previews
travel in the job's events only; nothing stores them. A cancel is honoured at the next step:
the step's report raises in the pipeline's thread, which stops the call.

**Dynamic batching** (:mod:`.batching`). Jobs whose pipeline calls could be one run as one:
the same weights (hence scheduler), size, steps and guidance, the same mode (text-to-image, or
image-to-image at the same strength), and negative prompts given by all of them or by none
(SDXL treats "no negative prompt" and an empty one differently). Up to ``max_batch`` of them
run as one call, with a list of prompts and one ``torch.Generator`` per job, so each job's
seed draws the noise it would draw alone and it gets the image it would get alone (up to the
rounding of batched kernels). A job that arrives to an idle model starts at once; the
``batch_window_ms`` window opens only for jobs that queue behind a running batch or arrive
together. Each job keeps its own progress, previews, cancel and result; one that fails its
checks (a bad size) fails before it joins. Batches form only when the worker runs that many
jobs at once (``HYPERLOCAL_WORKER_CONCURRENCY``, or the in-process queue's concurrency). With
batching on, a process runs one batch of a pass at a time: to spread one model's batches over
several GPUs, run a worker process per GPU (``hyperlocal worker --gpus``). With it off, jobs
run side by side as before, and the device manager may give them copies on several GPUs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
    StepMessage,
)
from hyperlocal.engines.local import diffusion
from hyperlocal.engines.local.batching import Batch, Batcher, Policy
from hyperlocal.engines.local.options import first_media, integer, number, seed_for, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.image_codec import decode, encode, output_format
from hyperlocal.engines.media.image_geometry import Size, cover, output_size, text_param
from hyperlocal.errors import GenerationError

__all__ = ["DiffusersImageEngine", "ImageJob", "Pass", "create", "image_size"]

ENGINE = "diffusers-image"
LAYOUT = "a diffusers pipeline (model_index.json)"
SOURCE_FIELDS = ("image", "images")
MULTIPLE = 8  # the VAE downsamples by 8: other sizes are cropped or refused by the pipeline


@dataclass(frozen=True, slots=True)
class ImageJob:
    prompt: str
    negative_prompt: str | None
    size: Size
    steps: int
    guidance: float
    strength: float
    seed: int
    fmt: str
    source: Image.Image | None  # already fitted to ``size``
    preview_every: int = 0  # steps between previews; 0: none asked for

    def previews(self, step: int) -> bool:
        return self.preview_every > 0 and step % self.preview_every == 0


@dataclass(frozen=True, slots=True)
class Pass:
    """What jobs must share to run as one pipeline call: the batching key."""

    weights: Weights
    size: Size
    steps: int
    guidance: float
    strength: float | None  # image-to-image; None for text-to-image
    negative: bool  # negative prompts given

    @classmethod
    def of(cls, job: ImageJob, weights: Weights) -> Pass:
        strength = job.strength if job.source is not None else None
        negative = job.negative_prompt is not None
        return cls(weights, job.size, job.steps, job.guidance, strength, negative)


@dataclass(frozen=True, slots=True)
class Painted:
    image: Image.Image
    device: str  # where the weights were placed: "cuda:0", "cpu"
    batch: int  # the jobs painted in the same call


@dataclass(frozen=True, slots=True)
class Pipelines:
    text: Any
    image: Any | None  # None when the family has no image-to-image pipeline


def create(context: EngineContext) -> DiffusersImageEngine:
    """The registry factory for ``diffusers-image``."""
    return DiffusersImageEngine(context)


class DiffusersImageEngine:
    """Paints with the weights that each request's catalogue entry names, batching the jobs
    that can share a call (see the module's docstring)."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._pipelines = Resident(ENGINE, _load, context, concurrency)
        self._batcher: Batcher[Pass, ImageJob, Painted] = Batcher(self._paint_batch)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        folder = locate(self._settings, request.options, ENGINE, LAYOUT)
        await progress(0.0, "preparing")
        job, weights, policy = await asyncio.to_thread(_checked, request, folder)
        painted = await self._batcher.submit(Pass.of(job, weights), job, progress, policy)
        await progress(0.97, "encoding")
        artifact = await asyncio.to_thread(encode, _fit(painted.image, job.size), job.fmt)
        await progress(1.0, "image generated")
        return GenerationResult(artifacts=[artifact], extra=_facts(painted, job, weights))

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return await self._pipelines.apreload(lambda: _weights(folder, options))

    async def aclose(self) -> None:
        await self._batcher.aclose()
        await asyncio.to_thread(self._pipelines.clear)  # may wait for a load in progress

    async def _paint_batch(self, key: Pass, batch: Batch[ImageJob]) -> list[Painted]:
        return await asyncio.to_thread(self._paint_blocking, key, batch)

    def _paint_blocking(self, key: Pass, batch: Batch[ImageJob]) -> list[Painted]:
        def work(pipes: Pipelines, placed: Weights) -> list[Painted]:
            images = _paint(pipes, batch, placed)
            return [Painted(image, placed.device, len(batch)) for image in images]

        return self._pipelines.run(key.weights, work, batch.report)


def prepare(request: GenerationRequest) -> ImageJob:
    """Everything the pipeline call needs, read and checked before the accelerator is held."""
    params, options = request.params, request.options
    source = _source(request)
    size = image_size(params, options, source.size if source else (1, 1))
    strength = number(options, "strength", 0.6)
    if not 0 < strength <= 1:
        raise GenerationError(f"strength must be in (0, 1], not {strength}")
    return ImageJob(
        prompt=text(params, "prompt"),
        negative_prompt=text(params, "negative_prompt") or None,
        size=size,
        steps=_positive(options, "steps", 4),
        guidance=number(options, "guidance", 0.0),
        strength=strength,
        seed=seed_for(request),
        fmt=output_format(params),
        source=cover(source, size) if source else None,
        preview_every=_positive(options, "preview_every", 5) if _flag(params, "preview") else 0,
    )


def batch_policy(options: Mapping[str, InputValue]) -> Policy:
    """The ``max_batch`` and ``batch_window_ms`` engine options."""
    window_ms = number(options, "batch_window_ms", 20.0)
    if window_ms < 0:
        raise GenerationError(f"batch_window_ms must not be negative, not {window_ms:g}")
    return Policy(_positive(options, "max_batch", 1), window_ms / 1000)


def image_size(
    params: Mapping[str, InputValue], options: Mapping[str, InputValue], fallback: Size
) -> Size:
    """``size``, else ``aspect_ratio`` (or ``fallback``'s shape) at ``resolution``, else at the
    ``long_side`` option; both sides rounded to a multiple of 8."""
    width, height = output_size(params, fallback)
    if not text_param(params, "size") and not text_param(params, "resolution"):
        scale = integer(options, "long_side", 1024) / max(width, height)
        width, height = round(width * scale), round(height * scale)
    return _multiple(width), _multiple(height)


def _checked(request: GenerationRequest, folder: Path) -> tuple[ImageJob, Weights, Policy]:
    """Blocking (decodes the source, finds torch): the job, its weights and its batching."""
    return prepare(request), _weights(folder, request.options), batch_policy(request.options)


def _positive(options: Mapping[str, InputValue], key: str, default: int) -> int:
    value = integer(options, key, default)
    if value < 1:
        raise GenerationError(f"{key} must be at least 1, not {value}")
    return value


def _flag(params: Mapping[str, InputValue], key: str) -> bool:
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise GenerationError(f"{key} must be true or false, not {value!r}")
    return value is True


def _multiple(side: int) -> int:
    return max(MULTIPLE, MULTIPLE * round(side / MULTIPLE))


def _source(request: GenerationRequest) -> Image.Image | None:
    media = first_media(request, SOURCE_FIELDS)
    if media is None and request.category is Category.IMAGE_EDIT:
        raise GenerationError("image_edit needs at least one source image")
    return decode(media) if media else None


def _weights(folder: Path, options: Mapping[str, InputValue]) -> Weights:
    require(ENGINE, "torch", "diffusers")
    return diffusion.torch_weights(folder, options)


def _load(weights: Weights) -> Pipelines:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    text_pipe = diffusion.load_pipeline(AutoPipelineForText2Image.from_pretrained, weights)
    try:  # shares the loaded modules: no second copy of the weights
        image_pipe = AutoPipelineForImage2Image.from_pipe(text_pipe)
    except ValueError:  # this family has no image-to-image pipeline
        image_pipe = None
    return Pipelines(text_pipe, image_pipe)


def _paint(pipes: Pipelines, batch: Batch[ImageJob], weights: Weights) -> list[Image.Image]:
    """One pipeline call for the whole batch; its jobs share a ``Pass``."""
    jobs = batch.jobs
    first = jobs[0]
    pipe, steps = _pipe_for(pipes, first, weights)
    width, height = first.size
    result = diffusion.call_supported(
        pipe,
        {
            "prompt": [job.prompt for job in jobs],
            "negative_prompt": _negatives(jobs),
            "image": [job.source for job in jobs] if first.source is not None else None,
            "strength": first.strength if first.source is not None else None,
            "width": width,
            "height": height,
            "num_inference_steps": steps,
            "guidance_scale": first.guidance,
            "generator": [diffusion.generator(weights, job.seed) for job in jobs],
            "callback_on_step_end": diffusion.on_each_step(
                _step_reports(pipe, batch), 0.05, 0.95, steps
            ),
            "output_type": "pil",
        },
    )
    images: list[Image.Image] = list(result.images)
    return images


def _pipe_for(pipes: Pipelines, job: ImageJob, weights: Weights) -> tuple[Any, int]:
    if job.source is None:
        return pipes.text, job.steps
    if pipes.image is None:
        raise GenerationError(f"{weights.folder.name} has no image-to-image pipeline")
    # img2img runs steps x strength of the schedule: at least one step must remain
    return pipes.image, max(job.steps, math.ceil(1 / job.strength))


def _negatives(jobs: Sequence[ImageJob]) -> list[str] | None:
    """Every job's negative prompt, or None when none gives one (a ``Pass`` has all or none)."""
    given = [job.negative_prompt for job in jobs if job.negative_prompt is not None]
    return given if len(given) == len(jobs) else None


def _step_reports(pipe: Any, batch: Batch[ImageJob]) -> Callable[[diffusion.Step], None]:
    """Each step, to each live job of the batch, with its preview when it asked for one now.
    Raises (in the pipeline's thread) once every job is cancelled: the call stops there."""

    def see(step: diffusion.Step) -> None:
        batch.check()
        palette = diffusion.palette_for(pipe, step.latents)
        for index, job in enumerate(batch.jobs):
            if not batch.live(index):
                continue
            preview = None
            if palette is not None and job.previews(step.step):
                preview = diffusion.latent_preview(step.latents[index], palette)
            batch.post(index, step.fraction, StepMessage(step.step, step.steps, preview))

    return see


def _fit(image: Image.Image, size: Size) -> Image.Image:
    """FLUX snaps sizes to multiples of 16; the caller asked for ``size``, so it gets it."""
    return image if image.size == size else cover(image, size)


def _facts(painted: Painted, job: ImageJob, weights: Weights) -> dict[str, float | str]:
    return {
        "engine": ENGINE,
        "weights": weights.folder.name,
        "device": painted.device,
        "mode": "image-to-image" if job.source is not None else "text-to-image",
        "steps": float(job.steps),
        "seed": float(job.seed),
        "batch": float(painted.batch),
    }
