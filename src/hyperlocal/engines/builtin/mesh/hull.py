"""The ``visual-hull-3d`` engine: a mesh carved from the silhouettes of orthographic views.

Conventions (glTF's): Y is up and the object's front faces +Z. The front view looks from +Z,
the back view from -Z, the left view from -X and the right view from +X, all orthographic,
level, and framing the object at the same scale. Each view is normalised by its silhouette's
bounding box: its height spans y = -1..1 and its centre is the vertical axis, so views need
not share a pixel size.

Views 90 degrees apart give only two independent silhouettes (the back one mirrors the front),
so the hull is the intersection of two extruded outlines: exact for boxes, and for a sphere
the two-cylinder solid of volume 16/3 r^3, 27% more than the sphere. A missing right view is
the left one mirrored, which only matters for colour. Each vertex takes its colour from the
view that its normal faces most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray
from PIL import ImageFilter

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    ProgressCallback,
)
from hyperlocal.engines.builtin.mesh.isosurface import Volume, surface
from hyperlocal.engines.media.alpha import flatten
from hyperlocal.engines.media.glb import Built, mesh_result
from hyperlocal.engines.media.mesh_views import decode_view
from hyperlocal.engines.media.segmentation import segment
from hyperlocal.errors import GenerationError

__all__ = ["VisualHullEngine", "carve", "create"]

Float = NDArray[np.float32]

CELLS = 128  # along the longest side of the object's box: plenty for silhouettes
# name, field, the direction the view looks from, the axis across it, and that axis' sign
_LAYOUT = (
    ("front", "front_image_url", (0.0, 0.0, 1.0), 0, 1.0),
    ("back", "back_image_url", (0.0, 0.0, -1.0), 0, -1.0),
    ("left", "left_image_url", (-1.0, 0.0, 0.0), 2, 1.0),
    ("right", "right_image_url", (1.0, 0.0, 0.0), 2, -1.0),
)


@dataclass(frozen=True, slots=True)
class View:
    name: str
    direction: tuple[float, float, float]
    axis: int  # 0: the view's horizontal is world x; 2: world z
    sign: float  # +1: image right is the axis' positive end
    colour: Float  # H x W x 3, 0..255
    mask: Float  # H x W, 0..1, softened so carving and sampling are smooth
    box: tuple[float, float, float]  # silhouette centre x, centre y, and height, in pixels
    method: str  # how the silhouette was found

    def sample(self, image: Float, across: Float, up: Float) -> Float:
        """``image`` (2D or 3D) at world positions given along the view's axes."""
        from scipy import ndimage  # type: ignore[import-untyped]

        cx, cy, height = self.box
        scale = height / 2  # pixels per world unit
        rows, cols = cy - up * scale, cx + self.sign * across * scale
        if image.ndim == 2:
            return np.asarray(ndimage.map_coordinates(image, [rows, cols], order=1), np.float32)
        channels = [ndimage.map_coordinates(image[..., c], [rows, cols], order=1) for c in range(3)]
        return np.stack(channels, axis=-1).astype(np.float32)

    @property
    def half_extent(self) -> float:
        """Half the silhouette's width in world units (its height spans two)."""
        columns = np.flatnonzero(self.mask.max(axis=0) > 0.5)
        span = (columns[-1] - columns[0] + 1) if columns.size else self.mask.shape[1]
        return float(span / self.box[2])


def create(context: EngineContext) -> VisualHullEngine:
    """The registry factory for the ``visual-hull-3d`` engine."""
    return VisualHullEngine(context)


class VisualHullEngine:
    """Multiview silhouettes to a watertight, vertex-coloured GLB (CPU: scipy, scikit-image)."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "finding silhouettes")
        views = await asyncio.to_thread(load_views, request)
        await progress(0.3, "carving the visual hull")
        built = await asyncio.to_thread(build, views)
        await progress(0.85, "writing GLB")
        result = await asyncio.to_thread(mesh_result, "visual-hull-3d", built)
        await progress(1.0, "mesh ready")
        return result

    async def aclose(self) -> None:
        return None


def load_views(request: GenerationRequest) -> list[View]:
    views: list[View] = []
    for name, field, direction, axis, sign in _LAYOUT:
        media = request.media.get(field)
        if media:
            views.append(_load(name, media[0], direction, axis, sign))
        elif name != "right":
            raise GenerationError(f"{field}: this view is required")
    if len(views) == 3:
        views.append(_mirrored(views[2]))
    return views


def _load(
    name: str, media: MediaInput, direction: tuple[float, float, float], axis: int, sign: float
) -> View:
    image = decode_view(media)
    found = segment(image)
    mask = found.alpha.filter(ImageFilter.GaussianBlur(1.0))
    x0, y0, x1, y1 = mask.point(lambda v: 255 if v > 127 else 0).getbbox() or (0, 0, *image.size)
    box = ((x0 + x1) / 2, (y0 + y1) / 2, float(max(1, y1 - y0)))
    colour = np.asarray(flatten(image), np.float32)
    soft = (np.asarray(mask, np.float32) / 255).astype(np.float32)
    return View(name, direction, axis, sign, colour, soft, box, found.method)


def _mirrored(left: View) -> View:
    width = left.mask.shape[1]
    cx, cy, height = left.box
    return View(
        "right (mirrored left)",
        (1.0, 0.0, 0.0),
        2,
        -1.0,
        left.colour[:, ::-1].copy(),
        left.mask[:, ::-1].copy(),
        (width - cx, cy, height),
        left.method,
    )


def carve(views: Sequence[View], cells: int = CELLS) -> Volume:
    """The hull as a field: at each sample, the least silhouette coverage over all views."""
    half = {axis: max(v.half_extent for v in views if v.axis == axis) for axis in (0, 2)}
    step = 2 * max(1.0, half[0], half[2]) / cells
    axes = [
        np.arange(-h - step, h + 1.5 * step, step, dtype=np.float32)
        for h in (half[0], 1.0, half[2])
    ]
    field = np.ones((len(axes[0]), len(axes[1]), len(axes[2])), np.float32)
    for view in views:
        across, up = np.meshgrid(axes[view.axis], axes[1], indexing="ij")
        cover = view.sample(view.mask, across, up)
        field = np.minimum(field, cover[:, :, None] if view.axis == 0 else cover.T[None, :, :])
    origin = (float(axes[0][0]), float(axes[1][0]), float(axes[2][0]))
    return Volume(field, origin, step, level=0.5)


def build(views: Sequence[View]) -> Built:
    mesh = surface(carve(views))
    if len(mesh.faces) == 0:
        raise GenerationError("the silhouettes do not overlap: no object to carve")
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=_colours(mesh, views))
    facts: dict[str, float | str] = {
        "method": "visual hull: silhouette carving and marching cubes",
        "views": ", ".join(v.name for v in views),
        "silhouettes": ", ".join(sorted({v.method for v in views})),
        "grid": float(CELLS),
    }
    return Built(mesh, facts)


def _colours(mesh: trimesh.Trimesh, views: Sequence[View]) -> NDArray[np.uint8]:
    """Each vertex coloured by the view its normal faces most."""
    vertices = np.asarray(mesh.vertices, np.float32)
    facing = np.asarray(mesh.vertex_normals) @ np.array([v.direction for v in views]).T
    choice = facing.argmax(axis=1)
    rgb = np.zeros((len(vertices), 3), np.float32)
    for index, view in enumerate(views):
        chosen = choice == index
        points = vertices[chosen]
        rgb[chosen] = view.sample(view.colour, points[:, view.axis], points[:, 1])
    alpha = np.full((len(vertices), 1), 255, np.float32)
    return np.clip(np.hstack([rgb, alpha]), 0, 255).astype(np.uint8)
