"""The ``inflate-3d`` engine: one picture to a closed, textured mesh."""

from __future__ import annotations

import io
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import pytest
import trimesh
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
from hyperlocal.engines.builtin.mesh.inflate import InflateEngine, create
from hyperlocal.errors import GenerationError
from hyperlocal.inputs import check_media
from hyperlocal.settings import Settings


async def no_progress(fraction: float, message: str | None) -> None:
    return None


@pytest.fixture
def engine() -> InflateEngine:
    return create(EngineContext(settings=Settings()))


def disc_png(mode: str = "RGB") -> bytes:
    """A red disc of radius 150 on a 640x480 picture: 0.625 units, as the picture is 2 tall."""
    backdrop = (0, 0, 0, 0) if mode == "RGBA" else (240, 240, 236)
    image = Image.new(mode, (640, 480), backdrop)
    draw = ImageDraw.Draw(image)
    draw.ellipse((170, 90, 470, 390), fill=(200, 40, 40))
    draw.rectangle((300, 220, 340, 260), fill=(20, 60, 220))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def inflate_request(
    data: bytes, params: Mapping[str, Any] | None = None, model: str = "tripo3d-2-5-i3d"
) -> GenerationRequest:
    checked = check_media("image", MediaKind.IMAGE, data)
    return GenerationRequest(
        job_id="job_inflate",
        model=model,
        category=Category.THREE_D,
        params=params or {},
        media={"image": [MediaInput("image", MediaKind.IMAGE, checked, data, "data:")]},
    )


def scene_of(result: GenerationResult) -> trimesh.Scene:
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("model/gltf-binary", "glb")
    scene = trimesh.load(io.BytesIO(artifact.data), file_type="glb")
    assert isinstance(scene, trimesh.Scene)
    return scene


def mesh_of(result: GenerationResult) -> trimesh.Trimesh:
    (artifact,) = result.artifacts
    mesh = trimesh.load(io.BytesIO(artifact.data), file_type="glb", force="mesh")
    assert isinstance(mesh, trimesh.Trimesh)
    return mesh


def test_factory_is_registered_and_builds_an_engine(engine: InflateEngine) -> None:
    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == "inflate-3d"]
    assert entry.load() is create
    assert isinstance(engine, Engine)


async def test_a_disc_inflates_to_a_closed_flattened_sphere(engine: InflateEngine) -> None:
    result = await engine.generate(inflate_request(disc_png()), no_progress)
    mesh = mesh_of(result)
    assert mesh.is_watertight
    radius = 150 / 240
    extents = mesh.extents
    assert extents[0] == pytest.approx(2 * radius, rel=0.05)
    assert extents[1] == pytest.approx(2 * radius, rel=0.05)
    assert extents[2] == pytest.approx(2 * radius * 0.6, rel=0.1)  # THICKNESS
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3 * 0.6, rel=0.1)
    assert result.extra["silhouette"] == "border-colour"


async def test_the_picture_is_the_texture(engine: InflateEngine) -> None:
    scene = scene_of(await engine.generate(inflate_request(disc_png()), no_progress))
    (mesh,) = scene.geometry.values()
    material = mesh.visual.material
    texture = np.asarray(material.baseColorTexture.convert("RGB"))
    uv = np.asarray(mesh.visual.uv)
    centre = np.linalg.norm(mesh.vertices[:, :2], axis=1) < 0.05  # the blue square's middle
    u, v = uv[centre].mean(axis=0)
    pixel = texture[int((1 - v) * texture.shape[0]), int(u * texture.shape[1])]
    assert pixel[2] > 150 and pixel[0] < 80


async def test_a_transparent_picture_is_cut_out_by_its_alpha(engine: InflateEngine) -> None:
    result = await engine.generate(inflate_request(disc_png("RGBA")), no_progress)
    assert result.extra["silhouette"] == "alpha"
    assert mesh_of(result).is_watertight


@pytest.mark.parametrize("target", [500, 5000, 60000])
async def test_target_polycount_is_met_within_a_factor_of_two(
    engine: InflateEngine, target: int
) -> None:
    params = {"target_polycount": target, "topology": "triangle"}
    result = await engine.generate(
        inflate_request(disc_png(), params, "meshy6-image-to-3d"), no_progress
    )
    mesh = mesh_of(result)
    assert target / 2 <= len(mesh.faces) <= target * 2
    assert mesh.is_watertight


async def test_pbr_and_quad_requests_are_honoured_or_explained(engine: InflateEngine) -> None:
    params = {"enable_pbr": True, "topology": "quad"}
    result = await engine.generate(
        inflate_request(disc_png(), params, "meshy6-image-to-3d"), no_progress
    )
    (mesh,) = scene_of(result).geometry.values()
    assert mesh.visual.material.roughnessFactor == pytest.approx(0.85)
    assert "triangles" in str(result.extra["topology"])


async def test_a_missing_image_is_a_generation_error(engine: InflateEngine) -> None:
    request = GenerationRequest("job", "tripo3d-2-5-i3d", Category.THREE_D, params={})
    with pytest.raises(GenerationError, match="image"):
        await engine.generate(request, no_progress)
