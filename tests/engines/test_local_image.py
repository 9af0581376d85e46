"""The ``diffusers-image`` adapter, loading a tiny random SD pipeline through its real code path."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from hyperlocal.engines.base import (
    Category,
    Engine,
    EngineContext,
    GenerationRequest,
    InputValue,
    MediaInput,
    MediaKind,
)
from hyperlocal.engines.local import diffusion
from hyperlocal.engines.local.image import DiffusersImageEngine, create, image_size
from hyperlocal.errors import GenerationError
from hyperlocal.settings import Settings
from tests.engines.tiny_models import one_torch_thread, tiny_sd
from tests.support import tiny_png

pytest.importorskip("torch")
pytest.importorskip("diffusers")

# diffusers' Euler scheduler calls np.array() on a torch tensor; numpy 2 deprecates the way
# torch's __array__ answers. Harmless, and not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

WEIGHTS = "tiny-sd"


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []

    async def __call__(self, fraction: float, message: str | None) -> None:
        self.calls.append((fraction, message))


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny_sd(root / WEIGHTS)
    return root


def settings_for(models_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=models_dir.parent / "data", models_dir=models_dir)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> DiffusersImageEngine:
    return create(EngineContext(settings=settings_for(models_dir)))


def image_request(
    params: Mapping[str, InputValue] | None = None,
    *,
    options: Mapping[str, InputValue] | None = None,
    media: Mapping[str, Sequence[MediaInput]] | None = None,
    category: Category = Category.IMAGE,
    job_id: str = "job_1",
) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id,
        model="local-sd",
        category=category,
        params={"prompt": "a lighthouse at dusk", **(params or {})},
        media=media or {},
        options={"weights": WEIGHTS, "steps": 2, **(options or {})},
    )


def source(size: tuple[int, int] = (80, 60)) -> MediaInput:
    data = tiny_png((30, 120, 200), size)
    return MediaInput("image", MediaKind.IMAGE, "image/png", data, "data:")


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_is_an_engine(engine: DiffusersImageEngine) -> None:
    assert isinstance(engine, Engine)


async def test_text_to_image_is_a_png_at_the_requested_size(engine: DiffusersImageEngine) -> None:
    progress = Progress()
    result = await engine.generate(image_request({"size": "96x72"}), progress)
    (artifact,) = result.artifacts
    assert (artifact.content_type, artifact.extension) == ("image/png", "png")
    image = opened(artifact.data)
    assert (image.format, image.size, image.mode) == ("PNG", (96, 72), "RGB")
    assert result.extra["mode"] == "text-to-image"
    assert result.extra["device"] == "cpu"
    fractions = [f for f, _ in progress.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


async def test_aspect_ratio_at_the_long_side_option_gives_multiples_of_8_as_jpeg(
    engine: DiffusersImageEngine,
) -> None:
    params = {"aspect_ratio": "3:2", "output_format": "jpeg"}
    result = await engine.generate(image_request(params, options={"long_side": 100}), Progress())
    image = opened(result.artifacts[0].data)
    assert (image.format, image.size) == ("JPEG", (96, 64))
    assert result.artifacts[0].content_type == "image/jpeg"


async def test_image_to_image_starts_from_the_source(engine: DiffusersImageEngine) -> None:
    progress = Progress()
    request = image_request(
        {"aspect_ratio": "match_input_image"},
        options={"strength": 0.5, "long_side": 96},
        media={"image": [source((80, 60))]},
    )
    result = await engine.generate(request, progress)
    image = opened(result.artifacts[0].data)
    assert image.size == (96, 72)  # the source's 4:3
    assert result.extra["mode"] == "image-to-image"


async def test_concurrent_jobs_take_turns_and_the_job_id_seeds_the_noise(
    engine: DiffusersImageEngine,
) -> None:
    requests = [image_request({"size": "64x64"}, job_id=j) for j in ("job_a", "job_a", "job_b")]
    first, again, other = await asyncio.gather(*(engine.generate(r, Progress()) for r in requests))
    assert opened(first.artifacts[0].data).size == (64, 64)
    assert first.artifacts[0].data == again.artifacts[0].data
    assert first.artifacts[0].data != other.artifacts[0].data


async def test_weights_load_once_per_engine(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = create(EngineContext(settings=settings_for(models_dir)))
    with caplog.at_level(logging.INFO, logger="hyperlocal.engines.local.runtime"):
        for job in ("job_x", "job_y"):
            await fresh.generate(image_request({"size": "64x64"}, job_id=job), Progress())
    loads = [r for r in caplog.records if r.getMessage().startswith(f"loaded {WEIGHTS}")]
    assert len(loads) == 1
    await fresh.aclose()


def test_each_denoising_step_moves_the_bar_within_its_share() -> None:
    # The engine forwards only the latest report a few times a second, so steps are checked
    # here, on the callback the pipelines are given.
    posted: list[tuple[float, str]] = []
    callback = diffusion.step_callback(lambda f, m: posted.append((f, m)), 0.1, 0.9, steps=4)
    pipe = SimpleNamespace(num_timesteps=2)  # img2img: strength cut the 4 steps to 2
    tensors = {"latents": object()}
    assert callback(pipe, 0, 999, tensors) is tensors
    callback(pipe, 1, 500, tensors)
    assert posted == [(0.5, "step 1/2"), (pytest.approx(0.9), "step 2/2")]


def test_sizes_round_to_multiples_of_8() -> None:
    assert image_size({"size": "100x70"}, {}, (1, 1)) == (96, 72)
    assert image_size({"aspect_ratio": "16:9"}, {"long_side": 512}, (1, 1)) == (512, 288)
    assert image_size({}, {"long_side": 512}, (300, 200)) == (512, 344)


async def test_an_edit_needs_a_source(engine: DiffusersImageEngine) -> None:
    with pytest.raises(GenerationError, match="source image"):
        await engine.generate(image_request(category=Category.IMAGE_EDIT), Progress())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weights": "sd-turbo"}, r"not installed: .*sd-turbo.*hyperlocal models pull sd-turbo"),
        ({"weights": "../escape"}, "one folder name"),
        ({"weights": ""}, "sets no engine_options.weights"),
    ],
)
async def test_weights_that_are_not_installed_say_where_they_were_looked_for(
    engine: DiffusersImageEngine, options: dict[str, InputValue], message: str
) -> None:
    with pytest.raises(GenerationError, match=message):
        await engine.generate(image_request(options=options), Progress())


async def test_a_folder_that_is_no_pipeline_fails_cleanly(models_dir: Path) -> None:
    (models_dir / "empty").mkdir(exist_ok=True)
    fresh = create(EngineContext(settings=settings_for(models_dir)))
    with pytest.raises(GenerationError, match="empty: not a loadable diffusers pipeline"):
        await fresh.generate(image_request(options={"weights": "empty"}), Progress())
