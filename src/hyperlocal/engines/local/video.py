"""The ``diffusers-video`` engine: text- and image-to-video with local diffusers weights.

``DiffusionPipeline.from_pretrained`` picks the pipeline class from the folder's
``model_index.json``: Wan 2.x, LTX-Video, CogVideoX, AnimateDiff (text to video) and Stable
Video Diffusion (image to video) all load this way. Each pipeline is given only the arguments
its ``__call__`` names. The frames are encoded as H.264 MP4 with PyAV. Engine options:

- ``weights`` (required): the folder name under the models directory;
- ``steps`` (30), ``guidance`` (5.0);
- ``fps`` (16): the request's ``fps`` wins; ``duration`` (seconds) x fps gives the frames;
- ``frame_step`` (1): frame counts the model accepts are ``frame_step * n + 1`` (Wan: 4,
  LTX-Video and CogVideoX: 8); ``max_frames`` (121) caps them;
- ``resolution`` ("480p"): used when the request names none; ``multiple`` (16): both sides
  are rounded to it (LTX-Video needs 32);
- ``device`` and ``dtype``: override CUDA/float16 (or CPU/float32).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hyperlocal.engines.base import (
    Artifact,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
)
from hyperlocal.engines.local import diffusion
from hyperlocal.engines.local.options import first_media, integer, number, seed_for, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.image_codec import decode
from hyperlocal.engines.media.image_geometry import Size, cover, parse_size, text_param
from hyperlocal.engines.media.mp4 import Clip, Encoded, encode_mp4
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.engines.media.video_spec import frame_size, seconds
from hyperlocal.errors import GenerationError

__all__ = ["DiffusersVideoEngine", "VideoJob", "create", "frame_count", "video_size"]

ENGINE = "diffusers-video"
LAYOUT = "a diffusers video pipeline (model_index.json)"
SOURCE_FIELDS = ("image", "start_image", "images")
DENOISE_END = 0.85  # of the progress bar; encoding the frames takes the rest


@dataclass(frozen=True, slots=True)
class VideoJob:
    prompt: str
    negative_prompt: str | None
    size: Size
    frames: int
    fps: int
    steps: int
    guidance: float
    seed: int
    source: Image.Image | None  # already fitted to ``size``


def create(context: EngineContext) -> DiffusersVideoEngine:
    """The registry factory for ``diffusers-video``."""
    return DiffusersVideoEngine(context)


class DiffusersVideoEngine:
    """Renders clips with the weights that each request's catalogue entry names."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._pipelines = Resident(ENGINE, _load, context, concurrency)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        folder = locate(self._settings, request.options, ENGINE, LAYOUT)
        await progress(0.0, "preparing")

        def work(report: Report) -> tuple[Encoded, Weights, VideoJob]:
            job = prepare(request)
            frames, placed = self._pipelines.run(
                _weights(folder, request.options),
                lambda p, w: (_render(p, job, w, report), w),
                report,
            )
            return _encode(frames, job, report), placed, job

        encoded, weights, job = await run_reporting(work, progress)
        await progress(1.0, "video generated")
        artifact = Artifact(data=encoded.data, content_type="video/mp4", extension="mp4")
        return GenerationResult(
            artifacts=[artifact], duration=encoded.seconds, extra=_facts(weights, job, encoded)
        )

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return await self._pipelines.apreload(lambda: _weights(folder, options))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._pipelines.clear)  # may wait for a load in progress


def prepare(request: GenerationRequest) -> VideoJob:
    """Everything the pipeline call needs, read and checked before the accelerator is held."""
    params, options = request.params, request.options
    media = first_media(request, SOURCE_FIELDS)
    source = decode(media) if media else None
    size = video_size(params, options, source.width / source.height if source else 16 / 9)
    fps = integer(params, "fps", integer(options, "fps", 16))
    if not 1 <= fps <= 60:
        raise GenerationError(f"fps must be within 1..60, not {fps}")
    return VideoJob(
        prompt=text(params, "prompt"),
        negative_prompt=text(params, "negative_prompt") or None,
        size=size,
        frames=frame_count(seconds(params), fps, options),
        fps=fps,
        steps=integer(options, "steps", 30),
        guidance=number(options, "guidance", 5.0),
        seed=seed_for(request),
        source=cover(source, size) if source else None,
    )


def video_size(
    params: Mapping[str, InputValue], options: Mapping[str, InputValue], source_ratio: float
) -> Size:
    """``size`` if given, else ``aspect_ratio`` (or the source's) at ``resolution`` (or the
    ``resolution`` option), both sides rounded to the ``multiple`` option."""
    if size := text_param(params, "size"):
        width, height = parse_size(size)
    else:
        resolution = text_param(params, "resolution") or text(options, "resolution", "480p")
        width, height = frame_size({**params, "resolution": resolution}, source_ratio)
    multiple = integer(options, "multiple", 16)
    return _round(width, multiple), _round(height, multiple)


def frame_count(duration: float, fps: int, options: Mapping[str, InputValue]) -> int:
    """``duration`` x ``fps`` frames, moved to the nearest count the model accepts."""
    step, cap = integer(options, "frame_step", 1), integer(options, "max_frames", 121)
    frames = max(2, round(duration * fps))
    if step > 1:  # temporal VAEs compress 1 + step*n frames into 1 + n latents
        frames = max(1, round((frames - 1) / step)) * step + 1
        cap = (cap - 1) // step * step + 1
    return min(frames, cap)


def _round(side: int, multiple: int) -> int:
    return max(multiple, multiple * round(side / multiple))


def _weights(folder: Path, options: Mapping[str, InputValue]) -> Weights:
    require(ENGINE, "torch", "diffusers")
    return diffusion.torch_weights(folder, options)


def _load(weights: Weights) -> Any:
    from diffusers import DiffusionPipeline

    return diffusion.load_pipeline(DiffusionPipeline.from_pretrained, weights)


def _render(pipe: Any, job: VideoJob, weights: Weights, report: Report) -> list[Image.Image]:
    _check_inputs(pipe, job, weights)
    width, height = job.size
    result = diffusion.call_supported(
        pipe,
        {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "image": job.source,
            "width": width,
            "height": height,
            "num_frames": job.frames,
            "fps": job.fps,  # SVD conditions on it
            "frame_rate": job.fps,  # LTX-Video's name for it
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance,
            "generator": diffusion.generator(weights, job.seed),
            "callback_on_step_end": diffusion.step_callback(report, 0.02, DENOISE_END, job.steps),
            "output_type": "pil",
        },
    )
    return _images(result.frames[0])


def _check_inputs(pipe: Any, job: VideoJob, weights: Weights) -> None:
    """Refuses what these weights cannot do, rather than quietly ignoring the image."""
    takes_image = diffusion.accepts(pipe, "image")
    if job.source is not None and not takes_image:
        raise GenerationError(f"{weights.folder.name} makes video from text only; omit the image")
    if job.source is None and takes_image and not diffusion.accepts(pipe, "prompt"):
        raise GenerationError(f"{weights.folder.name} animates an image: give one in `image`")


def _images(frames: Sequence[Any] | np.ndarray[Any, Any]) -> list[Image.Image]:
    """PIL frames, whichever of PIL or float arrays in [0, 1] the pipeline returned."""
    return [f if isinstance(f, Image.Image) else _from_array(np.asarray(f)) for f in frames]


def _from_array(frame: np.ndarray[Any, Any]) -> Image.Image:
    return Image.fromarray((np.clip(frame, 0.0, 1.0) * 255).round().astype(np.uint8))


def _encode(frames: list[Image.Image], job: VideoJob, report: Report) -> Encoded:
    if not frames:
        raise GenerationError("the pipeline returned no frames")
    fitted = (f if f.size == job.size else cover(f.convert("RGB"), job.size) for f in frames)
    clip = Clip(frames=fitted, count=len(frames), size=job.size, fps=Fraction(job.fps))
    return encode_mp4(
        clip, lambda share: report(DENOISE_END + (1 - DENOISE_END) * share, "encoding")
    )


def _facts(weights: Weights, job: VideoJob, encoded: Encoded) -> dict[str, float | str]:
    return {
        "engine": ENGINE,
        "weights": weights.folder.name,
        "device": weights.device,
        "mode": "image-to-video" if job.source is not None else "text-to-video",
        "frames": float(encoded.frames),
        "fps": float(job.fps),
        "seed": float(job.seed),
    }
