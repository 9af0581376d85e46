"""The ``image-to-3d`` engine: a single picture to a GLB mesh with local Hunyuan3D-2 weights.

It runs the shape stage of Hunyuan3D-2 (``hy3dgen``, from Tencent's Hunyuan3D-2 repository:
``pip install hy3dgen``, with torch) on the weights folder, laid out as the
``tencent/Hunyuan3D-2`` repository is::

    <models dir>/<weights>/
        hunyuan3d-dit-v2-0/          (the ``subfolder`` option)
            config.yaml
            model.fp16.safetensors   (or model.fp16.ckpt)

``hyperlocal models pull hunyuan3d-2`` fetches just that subfolder. The object is cut out
from its backdrop here, with the classical segmentation the CPU mesh engines use, because
``hy3dgen``'s own background remover downloads its model at run time. Engine options:
``weights`` (required), ``subfolder``, ``steps`` (30), ``octree_resolution`` (256), ``device``
and ``dtype``. The mesh is untextured: the paint stage needs a compiled rasteriser.

Neither ``hy3dgen`` nor these weights can be fetched offline, so this adapter's tests cover
what it checks before inference: missing weights, a wrong layout and a missing package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from hyperlocal.engines.local.options import first_media, integer, seed_for, text
from hyperlocal.engines.local.runtime import Resident, Weights, locate, require
from hyperlocal.engines.media.glb import glb_artifact
from hyperlocal.engines.media.mesh_views import decode_view
from hyperlocal.engines.media.progress import Report, run_reporting
from hyperlocal.engines.media.segmentation import segment
from hyperlocal.errors import GenerationError, InputError

__all__ = ["Checkpoint", "ImageTo3DEngine", "checkpoint", "create"]

ENGINE = "image-to-3d"
SUBFOLDER = "hunyuan3d-dit-v2-0"
LAYOUT = f"Hunyuan3D-2's shape model ({SUBFOLDER}/config.yaml and model.fp16.safetensors)"
CHECKPOINTS = ("model.fp16.safetensors", "model.safetensors", "model.fp16.ckpt", "model.ckpt")
SOURCE_FIELDS = ("image", "images", "front_image_url")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    config: Path
    weights: Path


def create(context: EngineContext) -> ImageTo3DEngine:
    """The registry factory for ``image-to-3d``."""
    return ImageTo3DEngine(context)


class ImageTo3DEngine:
    """Builds an untextured mesh of the picture's object; one job at a time."""

    def __init__(self, context: EngineContext, *, concurrency: int = 1) -> None:
        self._settings = context.settings
        self._pipelines = Resident(ENGINE, _load, context, concurrency)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        found = self._checkpoint(request.options)
        await progress(0.0, "preparing")

        def work(report: Report) -> tuple[Artifact, Weights]:
            picture = _cut_out(request)
            mesh, placed = self._pipelines.run(
                _weights(found, request.options),
                lambda p, w: (_shape(p, picture, request, report), w),
                report,
            )
            return glb_artifact(mesh), placed

        artifact, weights = await run_reporting(work, progress)
        await progress(1.0, "mesh generated")
        return GenerationResult(
            artifacts=[artifact],
            extra={
                "engine": ENGINE,
                "weights": text(request.options, "weights"),
                "device": weights.device,
            },
        )

    async def preload(self, options: Mapping[str, InputValue]) -> str:
        found = self._checkpoint(options)
        return await self._pipelines.apreload(lambda: _weights(found, options))

    def _checkpoint(self, options: Mapping[str, InputValue]) -> Checkpoint:
        folder = locate(self._settings, options, ENGINE, LAYOUT)
        return checkpoint(folder / text(options, "subfolder", SUBFOLDER))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._pipelines.clear)  # may wait for a load in progress


def checkpoint(folder: Path) -> Checkpoint:
    """The config and weights files in ``folder``; GenerationError naming what is missing."""
    config = folder / "config.yaml"
    weights = next((folder / n for n in CHECKPOINTS if (folder / n).is_file()), None)
    if not config.is_file() or weights is None:
        raise GenerationError(
            f"{ENGINE}: {folder} must hold config.yaml and one of {', '.join(CHECKPOINTS)}"
        )
    return Checkpoint(config, weights)


def _cut_out(request: GenerationRequest) -> Image.Image:
    """RGBA with the backdrop transparent, which is what the shape model was trained on."""
    media = first_media(request, SOURCE_FIELDS)
    if media is None:
        raise InputError("image", "a picture of the object is required")
    picture = decode_view(media)
    alpha = Image.fromarray(segment(picture).mask.astype("uint8") * 255)
    cut = picture.convert("RGBA")
    cut.putalpha(alpha)
    return cut


def _weights(found: Checkpoint, options: Mapping[str, InputValue]) -> Weights:
    require(ENGINE, "torch", "hy3dgen")
    return diffusion.torch_weights(found.config.parent, options)


def _load(weights: Weights) -> Any:
    import torch
    from hy3dgen.shapegen import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        Hunyuan3DDiTFlowMatchingPipeline,
    )

    found = checkpoint(weights.folder)
    try:  # from_single_file, not from_pretrained: the latter falls back to a hub download
        return Hunyuan3DDiTFlowMatchingPipeline.from_single_file(
            str(found.weights),
            str(found.config),
            device=weights.device,
            dtype=getattr(torch, weights.dtype),
            use_safetensors=found.weights.suffix == ".safetensors",
        )
    except Exception as exc:  # hy3dgen raises KeyError, RuntimeError, FileNotFoundError...
        raise GenerationError(f"{found.weights}: not loadable by hy3dgen ({exc})") from exc


def _shape(pipe: Any, picture: Image.Image, request: GenerationRequest, report: Report) -> Any:
    import torch

    steps = integer(request.options, "steps", 30)

    def on_step(step: int, _timestep: Any, _outputs: Any) -> None:
        # hy3dgen calls it after each denoising step: it moves the bar, and it raises there
        # once the job is cancelled, which ends the loop before the costly surface extraction
        report(0.05 + 0.85 * (step + 1) / steps, f"step {step + 1}/{steps}")

    meshes = pipe(
        image=picture,
        num_inference_steps=steps,
        octree_resolution=integer(request.options, "octree_resolution", 256),
        generator=torch.Generator().manual_seed(seed_for(request)),
        callback=on_step,
        callback_steps=1,
    )
    if not meshes or meshes[0] is None:
        raise GenerationError("the shape model found no surface in this picture")
    return meshes[0]
