"""Binary glTF output: every 3D result is one GLB file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import trimesh

from hyperlocal.engines.base import Artifact, GenerationResult

__all__ = ["CONTENT_TYPE", "Built", "glb_artifact", "mesh_result"]

CONTENT_TYPE = "model/gltf-binary"


@dataclass(frozen=True, slots=True)
class Built:
    """A mesh engine's product: geometry (Y up, front facing +Z, as glTF has it) and facts."""

    geometry: trimesh.Trimesh | trimesh.Scene
    facts: Mapping[str, float | str] = field(default_factory=dict)


def glb_artifact(geometry: trimesh.Trimesh | trimesh.Scene) -> Artifact:
    data = geometry.export(file_type="glb")
    if not isinstance(data, bytes):
        raise TypeError("trimesh returned no GLB bytes")
    return Artifact(data=data, content_type=CONTENT_TYPE, extension="glb")


def mesh_result(engine: str, built: Built) -> GenerationResult:
    """The GLB with the face count and the engine's facts in ``extra``."""
    geometry = built.geometry
    meshes = geometry.geometry.values() if isinstance(geometry, trimesh.Scene) else [geometry]
    faces = sum(len(mesh.faces) for mesh in meshes if isinstance(mesh, trimesh.Trimesh))
    extra: dict[str, float | str] = {"engine": engine, "faces": float(faces), **built.facts}
    return GenerationResult(artifacts=[glb_artifact(geometry)], extra=extra)
