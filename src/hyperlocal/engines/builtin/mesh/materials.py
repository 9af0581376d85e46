"""Surface looks for GLB output: vertex colours, textures, and PBR metal/roughness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray
from PIL import Image

__all__ = ["Finish", "painted", "textured"]

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Finish:
    """A base colour and how it reflects: what glTF's metallic-roughness model stores."""

    colour: RGB
    metallic: float = 0.0
    roughness: float = 0.8


def textured(
    mesh: trimesh.Trimesh, image: Image.Image, uv: NDArray[np.float32], *, pbr: bool
) -> trimesh.Trimesh:
    """``mesh`` wearing ``image``; with ``pbr``, a matte dielectric rather than glTF's default."""
    material = trimesh.visual.material.PBRMaterial(  # type: ignore[no-untyped-call]
        baseColorTexture=image,
        metallicFactor=0.0 if pbr else None,
        roughnessFactor=0.85 if pbr else None,
    )
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)  # type: ignore[no-untyped-call]
    return mesh


def painted(mesh: trimesh.Trimesh, finish: Finish, *, pbr: bool) -> trimesh.Trimesh:
    """One colour over the whole part: a PBR material with ``pbr``, else vertex colours."""
    if pbr:
        material = trimesh.visual.material.PBRMaterial(  # type: ignore[no-untyped-call]
            baseColorFactor=[*finish.colour, 255],
            metallicFactor=finish.metallic,
            roughnessFactor=finish.roughness,
        )
        mesh.visual = trimesh.visual.TextureVisuals(material=material)  # type: ignore[no-untyped-call]
    else:
        colours = np.tile(np.array([*finish.colour, 255], np.uint8), (len(mesh.vertices), 1))
        mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    return mesh
