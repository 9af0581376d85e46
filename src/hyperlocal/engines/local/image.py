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
- ``device`` and ``dtype``: override CUDA/float16 (or CPU/float32); FLUX wants bfloat16.

The seed is the request's ``seed``, else derived from the job id, so a retried job repeats.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hyperlocal.engines.base import (
    Artifact,
    Category,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
)
from hyperlocal.engines.local import diffusion
from hyperlocal.engines.local.options import first_media, integer, number, seed_for, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.image_codec import decode, encode, output_format
from hyperlocal.engines.media.image_geometry import Size, cover, output_size, text_param
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.errors import GenerationError

__all__ = ["DiffusersImageEngine", "ImageJob", "create", "image_size"]

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


@dataclass(frozen=True, slots=True)
class Pipelines:
    text: Any
    image: Any | None  # None when the family has no image-to-image pipeline


def create(context: EngineContext) -> DiffusersImageEngine:
    """The registry factory for ``diffusers-image``."""
    return DiffusersImageEngine(context)


class DiffusersImageEngine:
    """Paints with the weights that each request's catalogue entry names; one job at a time."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._pipelines = Resident(ENGINE, _load, context, concurrency)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        folder = locate(self._settings, request.options, ENGINE, LAYOUT)
        await progress(0.0, "preparing")

        def work(report: Report) -> tuple[Artifact, Weights, ImageJob]:
            job = prepare(request)
            image, placed = self._pipelines.run(
                _weights(folder, request.options),
                lambda p, w: (_paint(p, job, w, report), w),
                report,
            )
            report(0.97, "encoding")
            return encode(_fit(image, job.size), job.fmt), placed, job

        artifact, weights, job = await run_reporting(work, progress)
        await progress(1.0, "image generated")
        return GenerationResult(artifacts=[artifact], extra=_facts(weights, job))

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return await self._pipelines.apreload(lambda: _weights(folder, options))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._pipelines.clear)  # may wait for a load in progress


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
        steps=integer(options, "steps", 4),
        guidance=number(options, "guidance", 0.0),
        strength=strength,
        seed=seed_for(request),
        fmt=output_format(params),
        source=cover(source, size) if source else None,
    )


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


def _paint(pipes: Pipelines, job: ImageJob, weights: Weights, report: Report) -> Image.Image:
    pipe, steps = pipes.text, job.steps
    if job.source is not None:
        if pipes.image is None:
            raise GenerationError(f"{weights.folder.name} has no image-to-image pipeline")
        # img2img runs steps x strength of the schedule: at least one step must remain
        pipe, steps = pipes.image, max(steps, math.ceil(1 / job.strength))
    width, height = job.size
    result = diffusion.call_supported(
        pipe,
        {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "image": job.source,
            "strength": job.strength if job.source is not None else None,
            "width": width,
            "height": height,
            "num_inference_steps": steps,
            "guidance_scale": job.guidance,
            "generator": diffusion.generator(weights, job.seed),
            "callback_on_step_end": diffusion.step_callback(report, 0.05, 0.95, steps),
            "output_type": "pil",
        },
    )
    image: Image.Image = result.images[0]
    return image


def _fit(image: Image.Image, size: Size) -> Image.Image:
    """FLUX snaps sizes to multiples of 16; the caller asked for ``size``, so it gets it."""
    return image if image.size == size else cover(image, size)


def _facts(weights: Weights, job: ImageJob) -> dict[str, float | str]:
    return {
        "engine": ENGINE,
        "weights": weights.folder.name,
        "device": weights.device,
        "mode": "image-to-image" if job.source is not None else "text-to-image",
        "steps": float(job.steps),
        "seed": float(job.seed),
    }
