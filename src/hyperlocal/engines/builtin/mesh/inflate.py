"""The ``inflate-3d`` engine: one picture's silhouette, inflated like a cushion.

No single-image 3D model ships offline (TripoSR and depth estimators download weights), so
this is the classical answer: find the object, then give every point inside its outline a
thickness that grows with its distance from the outline, so that a disc becomes a sphere and a
long shape a rounded bar. The back is the mirror of the front, so the mesh is closed (it is
carved from a volume by marching cubes), and the picture is its texture, seen through from the
back: nothing about the hidden side is invented.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray
from PIL import Image

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from hyperlocal.engines.builtin.mesh.isosurface import Volume, fitted_surface
from hyperlocal.engines.builtin.mesh.materials import textured
from hyperlocal.engines.media.alpha import flatten
from hyperlocal.engines.media.glb import Built, mesh_result
from hyperlocal.engines.media.mesh_views import decode_view
from hyperlocal.engines.media.segmentation import Segmentation, segment
from hyperlocal.errors import GenerationError

__all__ = ["InflateEngine", "create", "inflate"]

Float = NDArray[np.float32]

CELLS = 160  # samples along the picture's longest side
PAD = 2  # empty samples around the silhouette, so the distance field has room
THICKNESS = 0.6  # of a perfect round inflation: a disc becomes a slightly flattened sphere


@dataclass(frozen=True, slots=True)
class Cutout:
    image: Image.Image  # RGB, the texture
    segmentation: Segmentation


def create(context: EngineContext) -> InflateEngine:
    """The registry factory for the ``inflate-3d`` engine."""
    return InflateEngine(context)


class InflateEngine:
    """Single image to a watertight, textured GLB by silhouette inflation (CPU)."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "finding the object")
        cutout = await asyncio.to_thread(load_cutout, request)
        await progress(0.3, "inflating the silhouette")
        built = await asyncio.to_thread(build, cutout, request)
        await progress(0.85, "writing GLB")
        result = await asyncio.to_thread(mesh_result, "inflate-3d", built)
        await progress(1.0, "mesh ready")
        return result

    async def aclose(self) -> None:
        return None


def load_cutout(request: GenerationRequest) -> Cutout:
    media = request.media.get("image")
    if not media:
        raise GenerationError("image: an input image is required")
    image = decode_view(media[0])
    return Cutout(flatten(image), segment(image))


def build(cutout: Cutout, request: GenerationRequest) -> Built:
    target = request.params.get("target_polycount")
    budget = target if isinstance(target, int) and not isinstance(target, bool) else None
    mask = cutout.segmentation.mask
    mesh = fitted_surface(lambda cells: inflate(mask, cells), CELLS, budget)
    mesh = textured(
        mesh, cutout.image, _uv(mesh, mask.shape), pbr=request.params.get("enable_pbr") is True
    )
    facts: dict[str, float | str] = {
        "method": "silhouette inflation (distance-transform height field, mirrored back)",
        "silhouette": cutout.segmentation.method,
        "back": "the front picture seen through; the hidden side is not invented",
    }
    if request.params.get("topology") == "quad":
        facts["topology"] = "GLB stores triangles; marching cubes gives no quad structure"
    return Built(mesh, facts)


def inflate(mask: NDArray[np.bool_], cells: int) -> Volume:
    """The inflated solid as a field: positive inside, sampled ``cells`` along the long side.

    The picture's height spans y = -1..1 and x is centred, as the multiview engine has it.
    """
    from scipy import ndimage  # type: ignore[import-untyped]

    small = _resized(mask, cells)
    inside = ndimage.distance_transform_edt(small)
    outside = ndimage.distance_transform_edt(~small)
    signed = np.where(small, inside, -outside).astype(np.float32)
    radius = max(float(inside.max()), 1.0)
    # A circle's profile: over a disc of radius R, height sqrt(R^2 - r^2) with d = R - r.
    height = THICKNESS * np.sqrt(np.clip(2 * radius * signed - signed**2, 0, None))
    depth = np.arange(-height.max() - 1, height.max() + 1.5, 1.0, dtype=np.float32)
    shell = np.where(signed > 0, height, signed)[:, :, None] - np.abs(depth)[None, None, :]
    field = np.transpose(shell[::-1], (1, 0, 2))  # rows run down the picture, y runs up
    step = 2.0 / (small.shape[0] - 2 * PAD)
    # Sample centres sit half a step inside the picture's edges, with PAD samples beyond them.
    inset = (PAD - 0.5) * step
    width = (small.shape[1] - 2 * PAD) * step
    origin = (-width / 2 - inset, -1.0 - inset, float(depth[0]) * step)
    return Volume(np.ascontiguousarray(field, np.float32), origin, step)


def _resized(mask: NDArray[np.bool_], cells: int) -> NDArray[np.bool_]:
    height, width = mask.shape
    scale = cells / max(height, width)
    size = (max(4, round(width * scale)), max(4, round(height * scale)))
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)
    return np.pad(np.asarray(image) > 127, PAD)


def _uv(mesh: trimesh.Trimesh, shape: tuple[int, ...]) -> Float:
    """Texture coordinates straight down the view: (x, y) on the mesh is (x, y) on the picture."""
    height, width = shape[:2]
    vertices = np.asarray(mesh.vertices, np.float32)
    u = vertices[:, 0] * height / (2 * width) + 0.5
    v = (vertices[:, 1] + 1) / 2
    return np.stack([u, v], axis=1).astype(np.float32)
