"""Face budgets: sharing a target polycount between parts, and reaching a part's share.

Meshes grow toward a budget by midpoint subdivision (each triangle into four, so the count
lands within a factor of two of any target). Meshes are never decimated here: the volume
engines meet a budget by re-sampling instead (see ``isosurface.py``), which keeps them closed,
and primitives start from their coarsest tessellation.
"""

from __future__ import annotations

from collections.abc import Sequence

import trimesh

__all__ = ["MAX_FACES", "shares", "subdivide_to"]

MAX_FACES = 400_000  # the catalogue allows 300,000; subdivision may land a little past it


def subdivide_to(mesh: trimesh.Trimesh, target: int) -> trimesh.Trimesh:
    """``mesh`` subdivided while that brings its face count nearer ``target``."""
    while len(mesh.faces) * 2 < target and len(mesh.faces) * 4 <= MAX_FACES:
        mesh = mesh.subdivide()
    return mesh


def shares(weights: Sequence[float], target: int) -> list[int]:
    """``target`` split in proportion to ``weights``, each share at least one face."""
    total = sum(weights) or 1.0
    return [max(1, round(target * weight / total)) for weight in weights]
