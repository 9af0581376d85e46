"""The ``primitive-3d`` engine: prompt words to a GLB composed of primitives."""

from __future__ import annotations

import io
from collections.abc import Mapping
from importlib.metadata import entry_points

import numpy as np
import pytest
import trimesh

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
)
from hyperlocal.engines.builtin.mesh.primitives import PrimitiveEngine, create
from hyperlocal.engines.builtin.mesh.recipes import RECIPES, SCULPTURE, Recipe
from hyperlocal.engines.builtin.mesh.shapes import SHAPES, build_shape
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings


class Progress:
    def __init__(self) -> None:
        self.fractions: list[float] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.fractions.append(fraction)


@pytest.fixture
def engine() -> PrimitiveEngine:
    return create(EngineContext(settings=Settings()))


def text_request(prompt: str, **params: InputValue) -> GenerationRequest:
    values: Mapping[str, InputValue] = {"prompt": prompt, **params}
    return GenerationRequest("job_text3d", "meshy6-text-to-3d", Category.THREE_D, values)


def scene_of(result: GenerationResult) -> trimesh.Scene:
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("model/gltf-binary", "glb")
    scene = trimesh.load(io.BytesIO(artifact.data), file_type="glb")
    assert isinstance(scene, trimesh.Scene)
    return scene


def faces(scene: trimesh.Scene) -> int:
    return sum(len(mesh.faces) for mesh in scene.geometry.values())


def test_factory_is_registered_and_builds_an_engine(engine: PrimitiveEngine) -> None:
    (entry,) = [e for e in entry_points(group="hyperlocal.engines") if e.name == "primitive-3d"]
    assert entry.load() is create
    assert isinstance(engine, Engine)


@pytest.mark.parametrize(
    ("prompt", "recipe", "material"),
    [
        ("a cosy cottage in the woods", "house", "roof"),
        ("a tall pine tree", "pine tree", "leaf"),
        ("an old oak tree", "tree", "bark"),
        ("a sports car", "car", "tyre"),
        ("a wooden chair", "chair", "fabric"),
        ("a friendly robot", "robot", "light"),
        ("a snowman with a hat", "snowman", "carrot"),
        ("a dragon made of glass", "abstract sculpture", "accent"),
    ],
)
async def test_prompt_words_choose_the_recipe(
    engine: PrimitiveEngine, prompt: str, recipe: str, material: str
) -> None:
    result = await engine.generate(text_request(prompt, target_polycount=2000), Progress())
    assert result.extra["recipe"] == recipe
    assert material in scene_of(result).geometry


@pytest.mark.parametrize("target", [100, 1000, 30000, 120000])
@pytest.mark.parametrize("topology", ["triangle", "quad"])
async def test_target_polycount_is_met_within_a_factor_of_two(
    engine: PrimitiveEngine, target: int, topology: str
) -> None:
    request = text_request("a house with a chimney", target_polycount=target, topology=topology)
    scene = scene_of(await engine.generate(request, Progress()))
    assert target / 2 <= faces(scene) <= target * 2


@pytest.mark.parametrize("recipe", [*RECIPES, SCULPTURE], ids=lambda r: r.name)
async def test_every_recipe_meets_the_default_budget(
    engine: PrimitiveEngine, recipe: Recipe
) -> None:
    prompt = {"pine tree": "a pine"}.get(recipe.name, f"a {recipe.name}")
    result = await engine.generate(text_request(prompt), Progress())
    assert result.extra["recipe"] == recipe.name
    scene = scene_of(result)
    assert 15000 <= faces(scene) <= 60000


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("quad", [False, True])
def test_every_shape_is_closed_and_fits_the_unit_cube(shape: str, quad: bool) -> None:
    mesh = build_shape(shape, 2000, quad)
    assert mesh.is_watertight and mesh.volume > 0
    assert np.all(np.abs(mesh.bounds) <= 0.5 + 1e-9)
    assert 1000 <= len(mesh.faces) <= 4000


async def test_quad_topology_is_explained(engine: PrimitiveEngine) -> None:
    result = await engine.generate(text_request("a robot", topology="quad"), Progress())
    assert "triangles" in str(result.extra["topology"])


async def test_sculpture_is_one_material(engine: PrimitiveEngine) -> None:
    result = await engine.generate(
        text_request("a bronze robot", art_style="sculpture"), Progress()
    )
    scene = scene_of(result)
    assert list(scene.geometry) == ["bronze"]
    assert result.extra["material"] == "bronze"


async def test_pbr_gives_each_material_metal_and_roughness(engine: PrimitiveEngine) -> None:
    scene = scene_of(await engine.generate(text_request("a car", enable_pbr=True), Progress()))
    tyre = scene.geometry["tyre"].visual.material
    paint = scene.geometry["paint"].visual.material
    assert tyre.roughnessFactor == pytest.approx(0.9)
    assert paint.metallicFactor == pytest.approx(0.6)


async def test_a_colour_word_repaints_the_main_part(engine: PrimitiveEngine) -> None:
    scene = scene_of(await engine.generate(text_request("a blue car"), Progress()))
    colours = np.asarray(scene.geometry["paint"].visual.vertex_colors)[:, :3]
    assert tuple(np.median(colours, axis=0).astype(int)) == (40, 90, 200)


async def test_an_unknown_art_style_is_a_generation_error(engine: PrimitiveEngine) -> None:
    with pytest.raises(GenerationError, match="art_style"):
        await engine.generate(text_request("a house", art_style="cartoon"), Progress())


async def test_progress_rises_to_one(engine: PrimitiveEngine) -> None:
    progress = Progress()
    await engine.generate(text_request("a mug"), progress)
    assert progress.fractions[0] == 0.0 and progress.fractions[-1] == 1.0
    assert progress.fractions == sorted(progress.fractions)
