"""The ``visual-hull-3d`` engine, checked against solids whose silhouettes we draw ourselves."""

from __future__ import annotations

import io
from collections.abc import Callable
from importlib.metadata import entry_points

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.builtin.mesh.hull import VisualHullEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.inputs import check_media
from hyperlocal.settings import Settings

RGB = tuple[int, int, int]
RED, BLUE, GREEN, YELLOW = (210, 30, 30), (30, 40, 210), (30, 180, 40), (230, 210, 30)
SIDE = 512  # pixels; the solids below are 300 pixels tall, so 150 pixels is one world unit


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@pytest.fixture
def engine() -> VisualHullEngine:
    return create(EngineContext(settings=Settings()))


def view(draw: Callable[[ImageDraw.ImageDraw, RGB], None], colour: RGB, field: str) -> MediaInput:
    image = Image.new("RGB", (SIDE, SIDE), (255, 255, 255))
    draw(ImageDraw.Draw(image), colour)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data = buffer.getvalue()
    return MediaInput(
        field, MediaKind.IMAGE, check_media(field, MediaKind.IMAGE, data), data, "data:"
    )


def disc(draw: ImageDraw.ImageDraw, colour: RGB) -> None:
    draw.ellipse((106, 106, 406, 406), fill=colour)


def wide(draw: ImageDraw.ImageDraw, colour: RGB) -> None:
    draw.rectangle((106, 106, 406, 406), fill=colour)  # 2 x 2 units


def narrow(draw: ImageDraw.ImageDraw, colour: RGB) -> None:
    draw.rectangle((181, 106, 331, 406), fill=colour)  # 1 unit deep, 2 tall


def hull_request(**views: MediaInput) -> GenerationRequest:
    return GenerationRequest(
        job_id="job_hull",
        model="tripo3d-multiview-to-3d",
        category=Category.THREE_D,
        params={},
        media={name: [media] for name, media in views.items()},
    )


def sphere_views() -> dict[str, MediaInput]:
    return {
        "front_image_url": view(disc, RED, "front_image_url"),
        "back_image_url": view(disc, BLUE, "back_image_url"),
        "left_image_url": view(disc, GREEN, "left_image_url"),
    }


def box_views() -> dict[str, MediaInput]:
    return {
        "front_image_url": view(wide, RED, "front_image_url"),
        "back_image_url": view(wide, BLUE, "back_image_url"),
        "left_image_url": view(narrow, GREEN, "left_image_url"),
        "right_image_url": view(narrow, YELLOW, "right_image_url"),
    }


def loaded(result: GenerationResult) -> trimesh.Trimesh:
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("model/gltf-binary", "glb")
    assert artifact.data[:4] == b"glTF"
    mesh = trimesh.load(io.BytesIO(artifact.data), file_type="glb", force="mesh")
    assert isinstance(mesh, trimesh.Trimesh)
    return mesh


def vertex_colours(mesh: trimesh.Trimesh) -> NDArray[np.int64]:
    assert isinstance(mesh.visual, trimesh.visual.ColorVisuals)
    return np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.int64)


def iou(mesh: trimesh.Trimesh, inside: Callable[[NDArray[np.float64]], NDArray[np.bool_]]) -> float:
    """Intersection over union with a solid given by its inside test, on a 0.04 voxel grid."""
    pitch = 0.04
    grid = mesh.voxelized(pitch).fill()
    ours = {tuple(p) for p in np.round(grid.points / pitch).astype(int)}
    axis = np.arange(-1.5, 1.5 + pitch / 2, pitch)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    truth = {tuple(p) for p in np.round(points[inside(points)] / pitch).astype(int)}
    return len(ours & truth) / len(ours | truth)


def test_factory_is_registered_and_builds_an_engine(engine: VisualHullEngine) -> None:
    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == "visual-hull-3d"]
    assert entry.load() is create
    assert isinstance(engine, Engine)


async def test_the_hull_of_a_sphere_is_the_two_cylinder_solid(engine: VisualHullEngine) -> None:
    mesh = loaded(await engine.generate(hull_request(**sphere_views()), Progress()))
    assert mesh.is_watertight
    # Front and side circles of radius 1 carve x^2+y^2 <= 1 and z^2+y^2 <= 1: volume 16/3.
    assert mesh.volume == pytest.approx(16 / 3, rel=0.03)
    assert mesh.bounds == pytest.approx(np.array([[-1, -1, -1], [1, 1, 1]]), abs=0.03)

    def steinmetz(p: NDArray[np.float64]) -> NDArray[np.bool_]:
        return (p[:, 0] ** 2 + p[:, 1] ** 2 <= 1) & (p[:, 2] ** 2 + p[:, 1] ** 2 <= 1)

    assert iou(mesh, steinmetz) > 0.9


async def test_the_hull_of_a_box_is_the_box(engine: VisualHullEngine) -> None:
    result = await engine.generate(hull_request(**box_views()), Progress())
    mesh = loaded(result)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4.0, rel=0.03)  # 2 wide, 2 tall, 1 deep

    def box(p: NDArray[np.float64]) -> NDArray[np.bool_]:
        return (np.abs(p[:, 0]) <= 1) & (np.abs(p[:, 1]) <= 1) & (np.abs(p[:, 2]) <= 0.5)

    assert iou(mesh, box) > 0.9
    assert result.extra["views"] == "front, back, left, right"


async def test_each_side_takes_the_colour_of_the_view_facing_it(engine: VisualHullEngine) -> None:
    mesh = loaded(await engine.generate(hull_request(**box_views()), Progress()))
    colours = vertex_colours(mesh)
    normals = np.asarray(mesh.vertex_normals)
    for direction, colour in [
        ((0, 0, 1), RED),
        ((0, 0, -1), BLUE),
        ((-1, 0, 0), GREEN),
        ((1, 0, 0), YELLOW),
    ]:
        facing = normals @ np.array(direction) > 0.95
        assert facing.sum() > 50
        assert np.abs(np.median(colours[facing], axis=0) - colour).max() < 25, direction


async def test_without_a_right_view_the_left_is_mirrored(engine: VisualHullEngine) -> None:
    result = await engine.generate(hull_request(**sphere_views()), Progress())
    assert "right (mirrored left)" in str(result.extra["views"])
    mesh = loaded(result)
    colours = vertex_colours(mesh)
    facing_right = np.asarray(mesh.vertex_normals) @ np.array([1, 0, 0]) > 0.95
    assert np.abs(np.median(colours[facing_right], axis=0) - GREEN).max() < 25


async def test_a_missing_required_view_is_a_generation_error(engine: VisualHullEngine) -> None:
    views = sphere_views()
    del views["left_image_url"]
    with pytest.raises(GenerationError, match="left_image_url"):
        await engine.generate(hull_request(**views), Progress())


async def test_progress_rises_to_one(engine: VisualHullEngine) -> None:
    progress = Progress()
    await engine.generate(hull_request(**sphere_views()), progress)
    fractions = [fraction for fraction, _ in progress.calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
