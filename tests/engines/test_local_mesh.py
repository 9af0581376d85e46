"""The ``image-to-3d`` adapter (Hunyuan3D-2). Neither ``hy3dgen`` nor its weights can be had
offline, so these tests cover exactly what the adapter checks before inference: the weights
folder, its layout, the input picture and the package. No mesh is faked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hyperlocal.engines.base import (
    Category,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.local.mesh import ImageTo3DEngine, checkpoint, create
from hyperlocal.errors import EngineUnavailableError, GenerationError, InputError
from hyperlocal.settings import Settings
from tests.support import tiny_png


async def ignore(fraction: float, message: str | None) -> None:
    return None


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def engine(models_dir: Path, tmp_path: Path) -> ImageTo3DEngine:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", models_dir=models_dir)  # type: ignore[call-arg]
    return create(EngineContext(settings=settings))


def mesh_request(options: dict[str, InputValue], *, with_image: bool = True) -> GenerationRequest:
    picture = MediaInput("image", MediaKind.IMAGE, "image/png", tiny_png(size=(64, 64)), "")
    return GenerationRequest(
        job_id="job_1",
        model="local-3d",
        category=Category.THREE_D,
        params={},
        media={"image": [picture]} if with_image else {},
        options=options,
    )


def lay_out(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(b"placeholder")
    return folder


async def test_missing_weights_describe_the_expected_layout(engine: ImageTo3DEngine) -> None:
    with pytest.raises(GenerationError) as caught:
        await engine.generate(mesh_request({"weights": "hunyuan3d-2"}), ignore)
    assert "hunyuan3d-dit-v2-0/config.yaml" in caught.value.message
    assert "hyperlocal models pull hunyuan3d-2" in caught.value.message


async def test_a_folder_without_the_checkpoint_says_what_is_missing(
    engine: ImageTo3DEngine, models_dir: Path
) -> None:
    lay_out(models_dir / "hunyuan3d-2" / "hunyuan3d-dit-v2-0", "config.yaml")
    with pytest.raises(GenerationError, match=r"must hold config\.yaml and one of model\.fp16"):
        await engine.generate(mesh_request({"weights": "hunyuan3d-2"}), ignore)


@pytest.mark.skipif(
    importlib.util.find_spec("hy3dgen") is not None, reason="hy3dgen is installed here"
)
async def test_without_hy3dgen_the_engine_is_unavailable(
    engine: ImageTo3DEngine, models_dir: Path
) -> None:
    lay_out(models_dir / "h3d" / "custom", "config.yaml", "model.fp16.ckpt")
    request = mesh_request({"weights": "h3d", "subfolder": "custom"})
    with pytest.raises(EngineUnavailableError, match="image-to-3d"):
        await engine.generate(request, ignore)


async def test_a_picture_is_required(engine: ImageTo3DEngine, models_dir: Path) -> None:
    lay_out(models_dir / "h3d" / "hunyuan3d-dit-v2-0", "config.yaml", "model.fp16.safetensors")
    with pytest.raises(InputError, match="image"):
        await engine.generate(mesh_request({"weights": "h3d"}, with_image=False), ignore)


def test_checkpoint_prefers_half_precision_safetensors(tmp_path: Path) -> None:
    folder = lay_out(tmp_path / "sub", "config.yaml", "model.fp16.ckpt", "model.fp16.safetensors")
    found = checkpoint(folder)
    assert (found.config.name, found.weights.name) == ("config.yaml", "model.fp16.safetensors")
