"""Closed meshes from sampled volumes: marching cubes, sized to a face budget.

The volume is padded with empty space before marching cubes, so every surface closes on
itself and the mesh is watertight by construction. The face count of a marching-cubes surface
grows with the square of the grid's resolution, so a budget is met by re-sampling the volume
at the resolution that should give it, rather than by decimating (which can open holes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray

__all__ = ["Volume", "fitted_surface", "surface"]

MIN_CELLS, MAX_CELLS = 12, 256  # along the volume's longest side


@dataclass(frozen=True, slots=True)
class Volume:
    """Samples of a field on a regular grid; inside is where ``values`` exceed ``level``."""

    values: NDArray[np.float32]  # indexed [x, y, z]
    origin: tuple[float, float, float]  # the world position of values[0, 0, 0]
    step: float  # the world distance between neighbouring samples
    level: float = 0.0


def surface(volume: Volume) -> trimesh.Trimesh:
    """The closed surface where the field crosses its level, largest piece only, facing out."""
    from skimage.measure import marching_cubes

    outside = float(min(volume.values.min(), volume.level)) - 1.0
    padded = np.pad(volume.values, 1, constant_values=outside)
    vertices, faces, _, _ = marching_cubes(  # type: ignore[no-untyped-call]
        padded, volume.level, spacing=(volume.step,) * 3
    )
    vertices += np.asarray(volume.origin) - volume.step  # undo the padding's one-sample shift
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    mesh = _largest_piece(mesh)
    if mesh.volume < 0:
        # A new mesh, not invert(): in trimesh 5, invert() leaves cached normals pointing in.
        mesh = trimesh.Trimesh(mesh.vertices, np.fliplr(mesh.faces), process=False)
    return mesh


def fitted_surface(
    sample: Callable[[int], Volume], cells: int, target: int | None
) -> trimesh.Trimesh:
    """``surface(sample(cells))``, then once more at the resolution that should meet ``target``."""
    mesh = surface(sample(cells))
    if target is None or len(mesh.faces) == 0:
        return mesh
    better = round(cells * math.sqrt(target / len(mesh.faces)))
    better = min(max(better, MIN_CELLS), MAX_CELLS)
    return mesh if better == cells else surface(sample(better))


def _largest_piece(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Drops the crumbs that noisy silhouettes leave: a real object is one piece."""
    pieces = mesh.split(only_watertight=False)
    if len(pieces) <= 1:
        return mesh
    return max(pieces, key=lambda piece: len(piece.faces))
