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

from hyperlocal.engines.mesh.polycount import subdivide_to

__all__ = ["SHAPES", "build_shape"]

_STAND = trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0])  # +Z up becomes +Y up
MAX_SECTIONS = 256

Builder = Callable[[int, bool], trimesh.Trimesh]


def _box(faces: int, quad: bool) -> trimesh.Trimesh:
    del faces, quad  # a box is two triangles a side at any size; subdivision does the rest
    return trimesh.creation.box((1.0, 1.0, 1.0))


def _sphere(faces: int, quad: bool) -> trimesh.Trimesh:
    if quad:  # latitude-longitude rings: quads everywhere but the two pole fans
        count = max(4, round(1 + math.sqrt(1 + faces / 4)))
        return trimesh.creation.uv_sphere(radius=0.5, count=[count, count])
    level = max(0, min(7, round(math.log(max(faces, 20) / 20, 4))))
    return trimesh.creation.icosphere(subdivisions=level, radius=0.5)


def _cylinder(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad  # side quads and cap fans either way
    sections = min(MAX_SECTIONS, max(6, round(faces / 4)))
    return trimesh.creation.cylinder(0.5, 1.0, sections=sections).apply_transform(_STAND)


def _cone(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad
    sections = min(MAX_SECTIONS, max(6, round(faces / 2)))
    cone = trimesh.creation.cone(0.5, 1.0, sections=sections)
    return cone.apply_translation([0, 0, -0.5]).apply_transform(_STAND)


def _torus(faces: int, quad: bool) -> trimesh.Trimesh:
    del quad  # a torus is all quads
    minor = min(MAX_SECTIONS, max(4, round(math.sqrt(faces / 4))))  # 2 x 2m x m faces
    ring = trimesh.creation.torus(0.35, 0.15, major_sections=2 * minor, minor_sections=minor)
    return ring.apply_transform(_STAND)


def _prism(faces: int, quad: bool) -> trimesh.Trimesh:
    """A gable roof: a triangle across X, apex up, extruded along Z."""
    del faces, quad
    vertices = np.array(
        [[-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [0.0, 0.5, -0.5],
         [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.5, 0.5]]
    )  # fmt: skip
    faces_ = [[0, 2, 1], [3, 4, 5], [0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 0, 3], [2, 3, 5]]
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
