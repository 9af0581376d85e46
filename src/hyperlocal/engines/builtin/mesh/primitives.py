"""The ``primitive-3d`` engine: text to 3D as a composition of simple shapes.

No text-to-3D weights ship offline, so the prompt's words pick a recipe (a house is a box under
a gable roof, a snowman three spheres and a hat; see ``recipes.py``), and the art style, colour
words and ``enable_pbr`` pick the materials. The face budget is shared between the parts by
their surface area and met by each shape's own tessellation. ``extra`` names the recipe, so
nobody mistakes the result for a generated model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np
import trimesh

from hyperlocal.engines.base import (
    EngineContext,
    GenerationRequest,
    GenerationResult,
    InputValue,
    ProgressCallback,
)
from hyperlocal.engines.builtin.mesh.finishes import ART_STYLES, finish_for, sculpture_finish
from hyperlocal.engines.builtin.mesh.materials import Finish, painted
from hyperlocal.engines.builtin.mesh.polycount import shares
from hyperlocal.engines.builtin.mesh.recipes import Part, Recipe, choose_recipe
from hyperlocal.engines.builtin.mesh.shapes import build_shape, rotation
from hyperlocal.engines.media.glb import Built, mesh_result
from hyperlocal.errors import GenerationError

__all__ = ["PrimitiveEngine", "compose", "create"]

DEFAULT_FACES = 30_000
MIN_FACES, MAX_FACES = 100, 300_000


def create(context: EngineContext) -> PrimitiveEngine:
    """The registry factory for the ``primitive-3d`` engine."""
    return PrimitiveEngine(context)


class PrimitiveEngine:
    """Prompt words to a GLB composed of primitives, with realistic or sculpted materials."""

    def __init__(self, context: EngineContext) -> None:
        self._context = context

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await progress(0.0, "composing primitives")
        built = await asyncio.to_thread(compose, request)
        await progress(0.7, "writing GLB")
        result = await asyncio.to_thread(mesh_result, "primitive-3d", built)
        await progress(1.0, "mesh ready")
        return result

    async def aclose(self) -> None:
        return None


def compose(request: GenerationRequest) -> Built:
    params = request.params
    prompt = _text(params, "prompt")
    style = _text(params, "art_style") or "realistic"
    if style not in ART_STYLES:
        raise GenerationError(f"art_style must be one of {', '.join(ART_STYLES)}")
    quad = _text(params, "topology") == "quad"
    recipe = choose_recipe(prompt)
    meshes = _tessellated(recipe.parts, _target(params.get("target_polycount")), quad)
    scene, material = _dress(recipe, meshes, prompt, style, pbr=params.get("enable_pbr") is True)
    facts: dict[str, float | str] = {
        "method": "composed primitives (no text-to-3D model)",
        "recipe": recipe.name,
        "art_style": style,
        "material": material,
        "target_polycount": float(_target(params.get("target_polycount"))),
    }
    if quad:
        facts["topology"] = "GLB stores triangles; they pair into quads on import"
    return Built(scene, facts)


def _text(params: Mapping[str, InputValue], key: str) -> str:
    value = params.get(key)
    return value.strip().lower() if isinstance(value, str) else ""


def _target(value: InputValue) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, MIN_FACES), MAX_FACES)
    return DEFAULT_FACES


def _tessellated(parts: Sequence[Part], target: int, quad: bool) -> list[trimesh.Trimesh]:
    budgets = shares([_area(part) for part in parts], target)
    return [
        _placed(part, build_shape(part.shape, budget, quad))
        for part, budget in zip(parts, budgets, strict=True)
    ]


def _area(part: Part) -> float:
    """A part's surface area, near enough to share faces fairly: a scaled unit box's."""
    x, y, z = part.size
    return x * y + y * z + z * x


def _placed(part: Part, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    matrix = np.eye(4)
    matrix[:3, 3] = part.at
    for axis in (2, 1, 0):  # x turns first, so its matrix is rightmost
        matrix = matrix @ rotation(part.turn[axis], axis)
    matrix = matrix @ np.diag([*part.size, 1.0])
    return mesh.apply_transform(matrix)


def _dress(
    recipe: Recipe, meshes: Sequence[trimesh.Trimesh], prompt: str, style: str, *, pbr: bool
) -> tuple[trimesh.Scene, str]:
    """One geometry per material, so a GLB viewer shows (and can edit) each one."""
    if style == "sculpture":
        name, finish = sculpture_finish(prompt)
        groups = {name: (finish, list(meshes))}
    else:
        groups = {}
        for part, mesh in zip(recipe.parts, meshes, strict=True):
            finish = finish_for(part.role, recipe.main, prompt)
            groups.setdefault(part.role, (finish, []))[1].append(mesh)
        name = "per part: " + ", ".join(groups)
    scene = trimesh.Scene()
    for role, (finish, group) in groups.items():
        scene.add_geometry(_painted_group(group, finish, pbr), geom_name=role)
    return scene, name


def _painted_group(group: Sequence[trimesh.Trimesh], finish: Finish, pbr: bool) -> trimesh.Trimesh:
    merged = trimesh.util.concatenate(list(group))
    if not isinstance(merged, trimesh.Trimesh):
        raise GenerationError("a recipe produced no geometry")
    return painted(merged, finish, pbr=pbr)
