"""Unit primitives, tessellated to a face budget, for composing text-to-3D models.

Every shape fits the unit cube centred on the origin and stands along +Y, so a part is just
a shape, a scale, a turn and a place. Each shape reaches its budget with its own parameter
(sections, rings, subdivision level) and then by midpoint subdivision, which keeps the shape
and, for quad topology, keeps triangles paired into quads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import trimesh
from numpy.typing import NDArray

from hyperlocal.engines.builtin.mesh.polycount import subdivide_to

__all__ = ["SHAPES", "build_shape", "rotation"]

MIN_SECTIONS, MAX_SECTIONS = 4, 256  # 4: square legs are fine on a 100-face budget

MIN_SECTIONS, MAX_SECTIONS = 4, 256  # 4: square legs are fine on a 100-face budget
Builder = Callable[[int, bool], trimesh.Trimesh]


def rotation(degrees: float, axis: int) -> NDArray[np.float64]:
    """A 4x4 turn of ``degrees`` about world axis 0 (x), 1 (y) or 2 (z), right-handed."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(4)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


_STAND = rotation(-90, 0)  # trimesh builds along +Z; our shapes stand along +Y


def _checked(mesh: object) -> trimesh.Trimesh:
    """trimesh.creation is untyped: check what it returns rather than trust it blindly."""
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"expected a Trimesh, got {type(mesh).__name__}")
    return mesh


def _box(faces: int, quad: bool) -> trimesh.Trimesh:
    del faces, quad  # a box is two triangles a side at any size; subdivision does the rest
    return _checked(trimesh.creation.box((1.0, 1.0, 1.0)))


def _sphere(faces: int, quad: bool) -> trimesh.Trimesh:
    if quad:  # latitude-longitude rings: quads everywhere but the two pole fans
        count = max(4, round(1 + math.sqrt(1 + faces / 4)))
        return _checked(trimesh.creation.uv_sphere(radius=0.5, count=[count, count]))
    level = max(0, min(7, round(math.log(max(faces, 20) / 20, 4))))
    return _checked(trimesh.creation.icosphere(subdivisions=level, radius=0.5))


def _cylinder(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad  # side quads and cap fans either way
    sections = min(MAX_SECTIONS, max(MIN_SECTIONS, round(faces / 4)))
    return _checked(trimesh.creation.cylinder(0.5, 1.0, sections=sections)).apply_transform(_STAND)


def _cone(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad
    sections = min(MAX_SECTIONS, max(MIN_SECTIONS, round(faces / 2)))
    cone = _checked(trimesh.creation.cone(0.5, 1.0, sections=sections))
    cone.apply_translation([0, 0, -0.5])  # trimesh's cone stands on z = 0; ours is centred
    return cone.apply_transform(_STAND)


def _torus(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad  # a torus is all quads
    minor = min(MAX_SECTIONS, max(4, round(math.sqrt(faces / 4))))  # 2 x 2m x m faces
    ring = _checked(
        trimesh.creation.torus(0.35, 0.15, major_sections=2 * minor, minor_sections=minor)
    )
    return ring.apply_transform(_STAND)


def _prism(faces: int, quad: bool) -> trimesh.Trimesh:
    """A gable roof: a triangle across X, apex up, extruded along Z."""
    del faces, quad
    vertices = np.array(
        [[-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [0.0, 0.5, -0.5],
         [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.5, 0.5]]
    )  # fmt: skip
    faces_ = [
        [0, 2, 1],
        [3, 4, 5],
        [0, 1, 4],
        [0, 4, 3],
        [1, 2, 5],
        [1, 5, 4],
        [2, 0, 3],
        [2, 3, 5],
    ]
    prism = trimesh.Trimesh(vertices, faces_, process=True)
    prism.fix_normals()
    return prism


SHAPES: dict[str, Builder] = {
    "box": _box,
    "sphere": _sphere,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "prism": _prism,
}


def build_shape(shape: str, faces: int, quad: bool) -> trimesh.Trimesh:
    """The unit ``shape`` with about ``faces`` faces (within a factor of two where it can)."""
    return subdivide_to(SHAPES[shape](faces, quad), faces)
